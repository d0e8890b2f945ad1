# Copyright (c) mmprompt contributors. All rights reserved.
"""Tag images with RAM, RAM++ or SigLIP, in MMPreTrain's inferencer style."""
import os.path as osp
from typing import (Any, Callable, Dict, List, Mapping, Optional, Sequence,
                    Union)

import numpy as np
import torch
from mmengine.config import Config
from mmengine.model import BaseModel
from mmpretrain.apis.base import BaseInferencer
from mmpretrain.structures import DataSample
from PIL import Image

from mmprompt.datasets.ram_transforms import ram_pipeline
from mmprompt.datasets.transforms import build_pipeline, clip_pipeline
from mmprompt.models.ram.label_embedding import (load_categories,
                                                 split_categories)
from mmprompt.models.ram.vocabulary import TagVocabulary, check_threshold
from mmprompt.utils.errors import InputTypeError, InvalidInputError
from .builder import get_model, is_tagger
from .model_zoo import check_task, get_model_info, list_models, load_zoo
from .tag_calibration import calibrated_thresholds
from .utils import InferencerMixin, check_count, speed_up

ImageInput = Union[str, np.ndarray, Image.Image]
ModelType = Union[str, Config, BaseModel]
# Open-set categories: names, {name: [descriptions]} (RAM++), or a file.
Categories = Union[str, Sequence[Union[str, Mapping[str, Sequence[str]]]],
                   Mapping[str, Sequence[str]], TagVocabulary]
Templates = Optional[Union[str, Sequence[str]]]
SORT_BY = ('index', 'score')


def text_encoder_from(checkpoint: str) -> dict:
    """The ``model`` override that loads an open-set RAM's text tower from
    a converted CLIP ViT-B/16 checkpoint, for offline use.

    Args:
        checkpoint (str): A converted CLIP ViT-B/16 checkpoint.
    """
    return dict(
        init_cfg=dict(
            _delete_=True,  # whatever the config names (or None)
            type='Pretrained',
            checkpoint=checkpoint,
            prefix='text_encoder.'))


def build_tagging_model(model: ModelType,
                        pretrained: Union[bool, str, None] = True,
                        device: Union[str, torch.device, None] = None,
                        **kwargs) -> BaseModel:
    """:func:`mmprompt.apis.get_model` for a tagger (RAM, RAM++, SigLIP);
    a zoo name of another task is refused before any download."""
    check_task(model, ('Image Tagging', 'Open-set Image Tagging',
                       'Zero-shot Image Classification'), 'ImageTagger')
    if isinstance(model, str) and model.lower() in load_zoo():
        info = get_model_info(model)
        if info.task == 'Zero-shot Image Classification' and \
                'siglip' not in info.architecture.lower():
            raise InvalidInputError(
                f'{info.name} ({info.architecture}) scores with a softmax '
                'over its categories, not a probability per tag: tag with '
                'RAM, RAM++ or a SigLIP model (list_models("siglip*"))')
    return get_model(model, pretrained, device, **kwargs)


class ImageTagger(InferencerMixin, BaseInferencer):
    """Tag images with RAM's or RAM++'s vocabulary, or an open set (RAM,
    RAM++ or SigLIP): the tags whose score is above their threshold, in a
    :class:`~mmprompt.models.ram.TagVocabulary` passed to the model.

    Args:
        model (str | Config | BaseModel): A zoo name (see
            :meth:`list_models`), a ``mmprompt::`` config name, a config
            file or object, or a built model.
        pretrained (bool | str, optional): See :func:`get_model`. Defaults
            to True.
        device (str | torch.device, optional): Defaults to None (CPU).
        array_order (str): Channel order of numpy array inputs, ``'rgb'``
            or ``'bgr'`` (``mmcv.imread``'s). Defaults to ``'bgr'``.
        precision (str): See :func:`speed_up`. Defaults to ``'fp32'``.
        compile (bool | str): See :func:`speed_up`. Defaults to False.
        **kwargs: Overrides of the config's ``model`` dict, e.g.
            ``categories=...`` for an open-set config.
    """
    preprocess_kwargs: set = set()
    forward_kwargs: set = set()
    visualize_kwargs: set = set()
    postprocess_kwargs: set = {'threshold', 'sort_by', 'vocabulary'}

    def __init__(self,
                 model: ModelType,
                 pretrained: Union[bool, str, None] = True,
                 device: Union[str, torch.device, None] = None,
                 array_order: str = 'bgr',
                 precision: str = 'fp32',
                 compile: Union[bool, str] = False,
                 **kwargs) -> None:
        if array_order not in ('rgb', 'bgr'):
            raise ValueError("array_order must be 'rgb' or 'bgr', got "
                             f'{array_order!r}')
        self.array_order = array_order
        built = build_tagging_model(model, pretrained, device, **kwargs)
        if not (is_tagger(built) or getattr(built, 'score_activation', None)
                == 'sigmoid'):
            raise TypeError(
                f'{type(built).__name__} is not a tagger: RAM, RAM++ or a '
                'zero-shot model of sigmoid scores (SigLIP)')
        speed_up(built, precision, compile)
        super().__init__(built, pretrained=False)
        # What calls without categories tag (None: the model's own).
        self._default: Optional[TagVocabulary] = None
        # SigLIP's calibrated thresholds (RAM's are in the model).
        self._calibrated: Dict[str, float] = {}
        if not is_tagger(built) and isinstance(pretrained, str) and \
                osp.isfile(pretrained):
            self._calibrated = calibrated_thresholds(pretrained)
        self._init_cache()  # SigLIP's open sets (RAM's encoder keeps its own)

    @staticmethod
    def list_models(pattern: Optional[str] = None) -> List[str]:
        """Zoo names usable as ``model``: the tagging and SigLIP models."""
        siglip = [
            name for name in list_models(
                pattern, task='Zero-shot Image Classification')
            if 'siglip' in get_model_info(name).architecture.lower()
        ]
        return sorted(
            list_models(pattern, task='Image Tagging') +
            list_models(pattern, task='Open-set Image Tagging') + siglip)

    @property
    def image_size(self) -> int:
        """int: Side of the square model input."""
        patch_embed = getattr(self.model.visual_encoder, 'patch_embed', None)
        size = getattr(patch_embed, 'init_input_size', None) or 384
        return int(size[0] if isinstance(size, (tuple, list)) else size)

    @property
    def test_pipeline(self) -> List[dict]:
        """list[dict]: The transforms of an image (RAM's, or CLIP's with
        the model's ``preprocess_args``); bulk inference applies them too.
        """
        if is_tagger(self.model):
            return ram_pipeline(self.image_size, self.array_order)
        return clip_pipeline(self.model.preprocess_args, self.array_order)

    def _init_pipeline(self, cfg: Config) -> Callable:
        pipeline = build_pipeline(self.test_pipeline)

        def load(image: ImageInput) -> dict:
            if isinstance(image, str):
                return pipeline(dict(img_path=image))
            if not isinstance(image, (np.ndarray, Image.Image)):
                raise InputTypeError(
                    'an image must be a path, a PIL image or a numpy array, '
                    f'got {type(image).__name__}')
            return pipeline(dict(img=image))

        return load

    def _siglip_vocabulary(self, categories: Optional[Categories],
                           templates: Templates,
                           threshold: Optional[float]) -> TagVocabulary:
        """SigLIP's tags of ``categories`` (default: the config's), kept."""
        if categories is None:
            categories = getattr(self.model, 'categories', None)
        if categories is None:
            raise InvalidInputError(
                f'{type(self.model).__name__} tags an open set: give '
                'categories (a list, or a .txt / .json file)')
        names, described = split_categories(load_categories(categories))
        if described:
            raise InvalidInputError(
                'descriptions per category need RAM++ (RAMPlusOpenset); '
                f'{type(self.model).__name__} takes category names only')
        thresholds = self._calibrated if threshold is None else \
            check_threshold(threshold)
        key = (names, templates if templates is None
               or isinstance(templates, str) else tuple(templates), threshold)
        return self._cached(
            key, lambda: self.model.build_tag_vocabulary(
                names, templates, thresholds))

    @property
    def model_vocabulary(self) -> TagVocabulary:
        """TagVocabulary: What the model tags by itself, whatever the calls
        before (RAM's own tags or open set, SigLIP's configured ones)."""
        if is_tagger(self.model):
            return self.model.vocabulary
        return self._siglip_vocabulary(None, None, None)

    @property
    def is_openset(self) -> bool:
        """bool: Whether calls without ``categories`` tag open-set ones."""
        return self._default is not None or bool(
            getattr(self.model, 'is_openset', False))

    def vocabulary(self,
                   categories: Optional[Categories] = None,
                   templates: Templates = None,
                   threshold: Optional[float] = None) -> TagVocabulary:
        """The vocabulary of these open-set categories (kept, so asking
        again costs nothing); the model is not changed.

        Args:
            categories (str | list | dict, optional): As
                :func:`~mmprompt.models.ram.label_embedding.load_categories`
                takes them, or a :class:`TagVocabulary`. Defaults to None:
                what calls without ``categories`` tag.
            templates (str | Sequence[str], optional): Prompt templates.
                Defaults to the config's.
            threshold (float, optional): Threshold of every category.
                Defaults to the checkpoint's calibrated ones, else the
                config's ``openset_threshold`` (RAM) or 0.5 (SigLIP).
        """
        if isinstance(categories, TagVocabulary):
            if is_tagger(self.model):
                return self.model.check_vocabulary(categories)
            return categories
        if categories is None and templates is None and threshold is None:
            return self._default or self.model_vocabulary
        if not is_tagger(self.model):
            return self._siglip_vocabulary(categories, templates, threshold)
        if getattr(self.model, 'category_encoder', None) is None:
            raise TypeError(
                f'categories need an open-set model (RAMOpenset or '
                f'RAMPlusOpenset), not {type(self.model).__name__} without a '
                "category_encoder; use e.g. "
                "'ram_swin-large-p4-w12_384px_openset'")
        return self.model.openset_vocabulary(categories, templates, threshold)

    def set_categories(self,
                       categories: Categories,
                       templates: Templates = None,
                       threshold: Optional[float] = None) -> TagVocabulary:
        """Tag these categories in later calls without ``categories`` (the
        arguments and result of :meth:`vocabulary`)."""
        self._default = self.vocabulary(categories, templates, threshold)
        return self._default

    def clear_categories(self) -> None:
        """Go back to the model's own vocabulary."""
        self._default = None

    def __call__(self,
                 inputs: Union[ImageInput, Sequence[ImageInput]],
                 categories: Optional[Categories] = None,
                 templates: Templates = None,
                 threshold: Optional[float] = None,
                 sort_by: str = 'index',
                 batch_size: int = 1,
                 return_datasamples: bool = False) -> list:
        """Tag images (concurrent calls share only the weights and the kept
        vocabularies).

        Args:
            inputs (str | np.ndarray | PIL.Image.Image | list): One image or
                a list: paths, PIL images or ``(H, W, 3)`` / ``(H, W)``
                uint8 arrays in :attr:`array_order`.
            categories (str | list | dict, optional): See :meth:`vocabulary`;
                kept for later calls. Defaults to None (the current ones).
            templates (str | Sequence[str], optional): Defaults to None
                (the config's).
            threshold (float, optional): One threshold for every tag
                (deleted tags stay off). Defaults to None (the vocabulary's).
            sort_by (str): ``'index'`` (vocabulary order) or ``'score'``
                (highest first). Defaults to ``'index'``.
            batch_size (int): Images per forward pass. Defaults to 1.
            return_datasamples (bool): Return :class:`DataSample` objects.
                Defaults to False.

        Returns:
            list: Per image, ``pred_scores`` (every tag's, an array) and,
            for the selected tags in ``sort_by`` order, ``tags``,
            ``tags_chinese`` (None if unknown), ``tag_scores``, ``tag_labels``.
        """
        check_count(batch_size, 'batch_size')
        if threshold is not None:
            threshold = check_threshold(threshold)
        if sort_by not in SORT_BY:
            raise ValueError(f'sort_by must be one of {SORT_BY}, got '
                             f'{sort_by!r}')
        vocabulary = self.vocabulary() if categories is None else \
            self.vocabulary(categories, templates)
        images = self._inputs_to_list(inputs)
        preds = []
        for data in self.preprocess(images, batch_size=batch_size):
            preds.extend(self.forward(data, vocabulary))
        results = self.postprocess(
            preds,
            None,
            return_datasamples,
            threshold=threshold,
            sort_by=sort_by,
            vocabulary=vocabulary)
        if categories is not None:
            self._default = vocabulary
        return results

    @torch.no_grad()
    def forward(self,
                data: dict,
                vocabulary: Optional[TagVocabulary] = None,
                **kwargs) -> List[DataSample]:
        """Tag one collated batch against ``vocabulary`` (default: the
        current one)."""
        return super().forward(data, vocabulary or self.vocabulary())

    @staticmethod
    def _select(sample: DataSample, threshold: Optional[float],
                vocabulary: TagVocabulary) -> torch.Tensor:
        """Indices of the selected tags, ascending."""
        if threshold is None:
            return sample.pred_label.cpu().long()
        selected = vocabulary.select(sample.pred_score.cpu()[None],
                                     threshold)[0]
        return selected.nonzero()[:, 0]

    def postprocess(self,
                    preds: List[DataSample],
                    visualization: Any,
                    return_datasamples: bool = False,
                    threshold: Optional[float] = None,
                    sort_by: str = 'index',
                    vocabulary: Optional[TagVocabulary] = None) -> list:
        """The tag dicts of :meth:`__call__` (the same arguments), or
        ``preds`` as they are with ``return_datasamples``."""
        if return_datasamples:
            return preds
        vocabulary = vocabulary or self.vocabulary()
        results = []
        for sample in preds:
            labels = self._select(sample, threshold, vocabulary)
            all_scores = sample.pred_score.detach().float().cpu()
            scores = all_scores[labels]
            if sort_by == 'score':
                order = scores.argsort(descending=True, stable=True)
                labels, scores = labels[order], scores[order]
            labels = labels.tolist()
            english, chinese = vocabulary.names_of(labels)
            if chinese is not None:
                # RAM's Chinese list ends its names in spaces.
                chinese = [name.strip() for name in chinese]
            results.append(
                dict(
                    pred_scores=all_scores.numpy(),
                    tags=english,
                    tags_chinese=chinese,
                    tag_scores=scores.tolist(),
                    tag_labels=labels))
        return results
