# Copyright (c) mmprompt contributors. All rights reserved.
"""Tag images with RAM, RAM++ or SigLIP, in MMPreTrain's inferencer style.

Example:
    >>> from mmprompt.apis import ImageTagger
    >>> tagger = ImageTagger('ram_swin-large-p4-w12_384px_normal')
    >>> tagger('dog.jpg')[0]['tags']
    ['dog', 'grass', 'lawn', ...]
"""
import os.path as osp
import threading
from collections import OrderedDict
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
from .builder import get_model
from .model_zoo import check_task, get_model_info, list_models, load_zoo
from .tag_calibration import calibrated_thresholds
from .utils import speed_up

ImageInput = Union[str, np.ndarray, Image.Image]
ModelType = Union[str, Config, BaseModel]
# Open-set categories: names, {name: [descriptions]} (RAM++), or a file.
Categories = Union[str, Sequence[Union[str, Mapping[str, Sequence[str]]]],
                   Mapping[str, Sequence[str]], TagVocabulary]
SORT_BY = ('index', 'score')
#: How many SigLIP open sets an ImageTagger keeps.
CACHE_SIZE = 8


def text_encoder_from(checkpoint: str) -> dict:
    """The ``model`` override that loads an open-set RAM's text tower (CLIP
    ViT-B/16's) from a converted CLIP checkpoint, for offline use:
    ``ImageTagger(config, ram_ckpt, text_encoder=text_encoder_from(clip))``.

    Args:
        checkpoint (str): A converted CLIP ViT-B/16 checkpoint.
    """
    return dict(
        init_cfg=dict(
            _delete_=True,  # whatever the config names (or None)
            type='Pretrained',
            checkpoint=checkpoint,
            prefix='text_encoder.'))


def is_ram(model: BaseModel) -> bool:
    """Whether ``model`` is a RAM / RAM++ tagger (else a SigLIP-like
    zero-shot model of sigmoid scores)."""
    return hasattr(model, 'select_tags')


def build_tagging_model(model: ModelType,
                        pretrained: Union[bool, str, None] = True,
                        device: Union[str, torch.device, None] = None,
                        **kwargs) -> BaseModel:
    """Build a RAM / RAM++ tagger: :func:`mmprompt.apis.get_model`
    (``model`` a zoo name, a ``mmprompt::`` config name, a config file, a
    :class:`Config` or a built model; ``pretrained`` True for the zoo's
    official weights or the config's ``load_from``, a checkpoint path
    loaded by :func:`~mmprompt.models.ram.load_ram_checkpoint`, or False /
    None for random weights).
    """
    check_task(model, ('Image Tagging', 'Open-set Image Tagging',
                       'Zero-shot Image Classification'), 'ImageTagger')
    if isinstance(model, str) and model.lower() in load_zoo():
        info = get_model_info(model)
        if info.task == 'Zero-shot Image Classification' and \
                'siglip' not in info.architecture.lower():
            # Refused before anything is downloaded.
            raise InvalidInputError(
                f'{info.name} ({info.architecture}) scores with a softmax '
                'over its categories, not a probability per tag: tag with '
                'RAM, RAM++ or a SigLIP model (list_models("siglip*"))')
    return get_model(model, pretrained, device, **kwargs)


class ImageTagger(BaseInferencer):
    """Tag images with every label of RAM's or RAM++'s vocabulary, or of an
    open set of categories (RAM, RAM++ or SigLIP).

    Images go through the model's test pipeline (:attr:`test_pipeline`),
    its data preprocessor and ``predict``, as in :class:`ZeroShotClassifier`:
    RAM's exact input tensors for RAM; for SigLIP, whose sigmoid scores are
    the model's own probability of each tag, the classifier's. A tag is
    selected where its score is strictly above its threshold: RAM's per-tag
    thresholds, the open-set threshold (0.5 by default, or calibrated), or
    ``threshold`` of the call. What is tagged is a
    :class:`~mmprompt.models.ram.TagVocabulary` passed to the model, never
    set on it.

    Args:
        model (str | Config | BaseModel): A zoo name such as
            ``'ram_swin-large-p4-w12_384px_normal'`` or
            ``'ram-plus_swin-large-p4-w12_384px_openset'`` (see
            :func:`mmprompt.apis.list_models`), a ``mmprompt::`` config
            name, a config file or object, or a built RAM model.
        pretrained (bool | str, optional): As for
            :func:`mmprompt.apis.get_model`: True (the default) for the
            zoo's official weights (downloaded, checked and converted once,
            tag lists and thresholds embedded) or the config's
            ``load_from``; a ``.pth`` / ``.safetensors`` checkpoint; False
            or None for random weights (with a warning).
        device (str | torch.device, optional): Defaults to None (CPU).
        array_order (str): Channel order of numpy array inputs, ``'rgb'``
            (``np.asarray(pil_image)``) or ``'bgr'`` (``mmcv.imread``, the
            convention of MMPreTrain's inferencers and of
            :class:`ZeroShotClassifier`). Defaults to ``'bgr'``.
        precision (str): ``'fp32'``, ``'fp16'`` or ``'bf16'``, see
            :func:`mmprompt.models.utils.apply_precision`.
            Defaults to ``'fp32'``.
        compile (bool | str): ``torch.compile`` the frozen towers (see
            :func:`mmprompt.models.utils.compile_model`), each graph built
            on the first call of each batch shape; a string is the
            ``torch.compile`` mode. Defaults to False.
        **kwargs: Overrides of the config's ``model`` dict, e.g.
            ``categories=...`` for an open-set config.

    Example:
        >>> tagger = ImageTagger(
        ...     'ram-plus_swin-large-p4-w12_384px_openset',
        ...     pretrained='ram_plus_swin_large_14m.safetensors')
        >>> tagger(['a.jpg', pil_image], batch_size=2,
        ...        categories={'Crocodilia': ['a photo of a crocodile.']})
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
        if not (is_ram(built) or getattr(built, 'score_activation', None)
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
        if not is_ram(built) and isinstance(pretrained, str) and \
                osp.isfile(pretrained):
            self._calibrated = calibrated_thresholds(pretrained)
        # SigLIP's open sets, by what built them (RAM's encoder keeps its
        # own).
        self._vocabularies: 'OrderedDict[tuple, TagVocabulary]' = \
            OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def list_models(pattern: Optional[str] = None) -> List[str]:
        """Zoo names usable as ``model``: the tagging models of
        :func:`mmprompt.apis.list_models` and the SigLIP ones."""
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
        """list[dict]: The transforms that make the model's input of an
        image: :func:`~mmprompt.datasets.ram_transforms.ram_pipeline`
        (RAM, RAM++) or :func:`~mmprompt.datasets.transforms.clip_pipeline`
        with the model's ``preprocess_args`` (SigLIP); arrays are read in
        :attr:`array_order`. Bulk inference applies the same."""
        if is_ram(self.model):
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

    def _siglip_vocabulary(self, categories: Categories,
                           templates: Optional[Union[str, Sequence[str]]],
                           threshold: Optional[float]) -> TagVocabulary:
        """SigLIP's tags of ``categories``, kept by what built them (the
        names, templates, threshold and the state of the weights, as
        :class:`ZeroShotClassifier` keeps its vocabularies)."""
        names, described = split_categories(load_categories(categories))
        if described:
            raise InvalidInputError(
                'descriptions per category need RAM++ (RAMPlusOpenset); '
                f'{type(self.model).__name__} takes category names only')
        thresholds = self._calibrated if threshold is None else \
            check_threshold(threshold)
        from .zero_shot_classifier import _weights_state
        key = (_weights_state(self.model), names, templates
               if templates is None or isinstance(templates, str) else
               tuple(templates), threshold)
        with self._lock:
            vocabulary = self._vocabularies.get(key)
            if vocabulary is not None:
                self._vocabularies.move_to_end(key)
                return vocabulary
        vocabulary = self.model.build_tag_vocabulary(names, templates,
                                                     thresholds)
        with self._lock:
            self._vocabularies[key] = vocabulary
            while len(self._vocabularies) > CACHE_SIZE:
                self._vocabularies.popitem(last=False)
        return vocabulary

    def _config_categories(self) -> Optional[List[str]]:
        names = getattr(self.model, 'categories', None)
        return None if names is None else list(names)

    @property
    def model_vocabulary(self) -> TagVocabulary:
        """TagVocabulary: What the model tags by itself, whatever the calls
        before: RAM's own tags (or its configured open set), SigLIP's
        configured categories."""
        if is_ram(self.model):
            return self.model.vocabulary
        names = self._config_categories()
        if names is None:
            raise InvalidInputError(
                f'{type(self.model).__name__} tags an open set: give '
                'categories (a list, or a .txt / .json file)')
        return self._siglip_vocabulary(names, None, None)

    @property
    def is_openset(self) -> bool:
        """bool: Whether calls without ``categories`` tag open-set ones."""
        return self._default is not None or bool(
            getattr(self.model, 'is_openset', False))

    def vocabulary(self,
                   categories: Optional[Categories] = None,
                   templates: Optional[Union[str, Sequence[str]]] = None,
                   threshold: Optional[float] = None) -> TagVocabulary:
        """The vocabulary of these open-set categories; the model is not
        changed.

        The model's category encoder embeds the prompts in batches and
        keeps the embeddings of recent category sets, keyed by the
        categories and templates, so asking again costs nothing.

        Args:
            categories (str | list | dict, optional): Names; ``{name:
                [descriptions]}`` items or one dict of them (RAM++); or a
                file: one name a line (``.txt``) or JSON, see
                :func:`~mmprompt.models.ram.label_embedding.load_categories`;
                or a :class:`TagVocabulary` built already (given back on
                the model's device). None (with no other argument) gives
                what calls without ``categories`` tag. Defaults to None.
            templates (str | Sequence[str], optional): Prompt templates of
                the names. Defaults to the config's.
            threshold (float, optional): Threshold of every category.
                Defaults to the calibrated thresholds of the checkpoint's
                meta, else the config's ``openset_threshold`` (RAM) or 0.5
                (SigLIP).

        Returns:
            TagVocabulary: To pass to :meth:`__call__`'s model.
        """
        if isinstance(categories, TagVocabulary):  # built already
            if is_ram(self.model):
                return self.model.check_vocabulary(categories)
            return categories
        if not is_ram(self.model):
            if categories is None and templates is None and \
                    threshold is None:
                return self._default or self.model_vocabulary
            if categories is None:
                categories = self._config_categories()
            if categories is None:
                raise InvalidInputError(
                    f'{type(self.model).__name__} tags an open set: give '
                    'categories (a list, or a .txt / .json file)')
            return self._siglip_vocabulary(categories, templates, threshold)
        if categories is None and templates is None and threshold is None:
            return self._default or self.model_vocabulary
        if getattr(self.model, 'category_encoder', None) is None:
            raise TypeError(
                f'categories need an open-set model (RAMOpenset or '
                f'RAMPlusOpenset), not {type(self.model).__name__} without a '
                "category_encoder; use e.g. "
                "'ram_swin-large-p4-w12_384px_openset'")
        return self.model.openset_vocabulary(categories, templates, threshold)

    def set_categories(self,
                       categories: Categories,
                       templates: Optional[Union[str, Sequence[str]]] = None,
                       threshold: Optional[float] = None) -> TagVocabulary:
        """Tag these open-set categories in later calls without
        ``categories`` (see :meth:`vocabulary` for the arguments); the
        model is not changed.

        Returns:
            TagVocabulary: The vocabulary, as :meth:`vocabulary` gives it.
        """
        self._default = self.vocabulary(categories, templates, threshold)
        return self._default

    def clear_categories(self) -> None:
        """Go back to the model's own vocabulary."""
        self._default = None

    def __call__(self,
                 inputs: Union[ImageInput, Sequence[ImageInput]],
                 categories: Optional[Categories] = None,
                 templates: Optional[Union[str, Sequence[str]]] = None,
                 threshold: Optional[float] = None,
                 sort_by: str = 'index',
                 batch_size: int = 1,
                 return_datasamples: bool = False) -> list:
        """Tag images.

        Calls share nothing but the model's weights and the category
        encoder's kept embeddings: threads tagging different open sets at
        the same time get the answers they get one at a time.

        Args:
            inputs (str | np.ndarray | PIL.Image.Image | list): One image or
                a list: file paths, PIL images or ``(H, W, 3)`` / ``(H, W)``
                uint8 arrays (channel order: ``array_order``, BGR by
                default). An unreadable file raises ``ValueError`` naming
                it.
            categories (str | list | dict, optional): Tag these open-set
                categories (see :meth:`vocabulary`); a successful call makes
                them the default of later calls. None keeps the current
                vocabulary. Defaults to None.
            templates (str | Sequence[str], optional): Prompt templates of
                ``categories``. Defaults to None (the config's).
            threshold (float, optional): Select tags by ``score >
                threshold`` for every tag instead of the vocabulary's
                thresholds (deleted tags stay off). Defaults to None.
            sort_by (str): Order of each image's tags: ``'index'``
                (vocabulary order, as RAM prints them) or ``'score'``
                (highest first). Defaults to ``'index'``.
            batch_size (int): Images per forward pass. Defaults to 1.
            return_datasamples (bool): Return the model's
                :class:`DataSample` objects instead of dicts. Defaults to
                False.

        Returns:
            list: Per image, a dict with ``pred_scores``, the score of
            every tag of the vocabulary in its order (an ``np.ndarray``, as
            MMPreTrain's inferencers), and the tags over their thresholds,
            in the order ``sort_by`` says: ``tags`` (English names, None if
            the checkpoint has none), ``tags_chinese`` (None if unknown,
            always for open-set categories), ``tag_scores`` and
            ``tag_labels`` (vocabulary indices).
        """
        from .zero_shot_classifier import check_count
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

    def _inputs_to_list(self, inputs: Any) -> list:
        if isinstance(inputs, (list, tuple)):
            return list(inputs)
        return [inputs]

    @torch.no_grad()
    def forward(self,
                data: dict,
                vocabulary: Optional[TagVocabulary] = None,
                **kwargs) -> List[DataSample]:
        """Tag one batch of preprocessed images.

        Args:
            data (dict): ``inputs`` and ``data_samples`` of
                :attr:`test_pipeline`, collated.
            vocabulary (TagVocabulary, optional): What is scored. Defaults
                to :meth:`vocabulary`'s default.

        Returns:
            list[DataSample]: The model's predictions.
        """
        vocabulary = vocabulary or self.vocabulary()
        data = self.model.data_preprocessor(data, False)
        return self.model.predict(
            data['inputs'], data.get('data_samples'), vocabulary=vocabulary)

    def visualize(self, inputs: list, preds: List[DataSample],
                  **kwargs) -> None:
        return None

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
        """Turn the model's predictions into tag dicts.

        Args:
            preds (list[DataSample]): The model's predictions.
            visualization: Unused.
            return_datasamples (bool): Return ``preds`` as they are.
                Defaults to False.
            threshold (float, optional): See :meth:`__call__`.
            sort_by (str): See :meth:`__call__`.
            vocabulary (TagVocabulary, optional): The one ``preds`` were
                scored against. Defaults to :meth:`vocabulary`'s default.

        Returns:
            list: See :meth:`__call__`.
        """
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
