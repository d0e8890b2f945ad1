# Copyright (c) mmprompt contributors. All rights reserved.
"""Tag images with RAM or RAM++, in MMPreTrain's inferencer style.

Example:
    >>> from mmprompt.apis import ImageTagger
    >>> tagger = ImageTagger('ram_swin-large-p4-w12_384px_normal',
    ...                      pretrained='ram_swin_large_14m_mmprompt.pth')
    >>> tagger('dog.jpg')[0]['pred_tags']
    ['dog', 'grass', 'lawn', ...]
"""
import copy
import glob
import logging
import os.path as osp
from typing import Any, Callable, List, Mapping, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import default_collate
from mmengine.logging import print_log
from mmengine.model import BaseModel
from mmpretrain.apis.base import BaseInferencer
from mmpretrain.structures import DataSample
from PIL import Image

from mmprompt.models.ram import load_ram_checkpoint, ram_preprocess
from mmprompt.utils.errors import InputTypeError, InvalidInputError
from mmprompt.utils.image_io import decode_image
from . import hub
from .utils import build_from_config, ready_for_inference, speed_up

ImageInput = Union[str, np.ndarray, Image.Image]
ModelType = Union[str, Config, BaseModel]
# Open-set categories: names, {name: [descriptions]} (RAM++), or a file.
Categories = Union[str, Sequence[Union[str, Mapping[str, Sequence[str]]]],
                   Mapping[str, Sequence[str]]]
SORT_BY = ('index', 'score')


def list_tagging_models() -> List[str]:
    """Names of the RAM configs in ``configs/ram``.

    Returns:
        list[str]: Sorted names, e.g. ``'ram_swin-large-p4-w12_384px_normal'``.
    """
    folder = osp.join(hub.get_configs_dir(), 'ram')
    return sorted(
        osp.splitext(osp.basename(p))[0]
        for p in glob.glob(osp.join(folder, '*.py')))


def _load_config(model: Union[str, Config]) -> Config:
    if isinstance(model, Config):
        return copy.deepcopy(model)
    if osp.isfile(model):
        return Config.fromfile(model)
    path = osp.join(hub.get_configs_dir(), 'ram', f'{model}.py')
    if osp.isfile(path):
        return Config.fromfile(path)
    raise ValueError(f'model {model!r} is neither a config file nor one of '
                     f'{list_tagging_models()}')


def build_tagging_model(model: ModelType,
                        pretrained: Union[bool, str, None] = None,
                        device: Union[str, torch.device, None] = None,
                        **kwargs) -> BaseModel:
    """Build a RAM / RAM++ tagger from a name, a config or a model.

    Args:
        model (str | Config | BaseModel): A config name of
            :func:`list_tagging_models`, a config file, a :class:`Config` or
            a built model.
        pretrained (bool | str, optional): A checkpoint converted by
            ``tools/model_converters/ram_to_mmprompt.py``, loaded with
            :func:`~mmprompt.models.ram.load_ram_checkpoint` (weights,
            thresholds, tag names; open-set categories of the config are
            embedded); True for the config's ``load_from``; None or False
            for random weights. Defaults to None.
        device (str | torch.device, optional): Where to run. Defaults to
            None (CPU, or the model's current device).
        **kwargs: Overrides of the config's ``model`` dict, e.g.
            ``categories=...``.

    Returns:
        BaseModel: The model in eval mode, with ``_config`` set.
    """
    if isinstance(model, BaseModel):
        if kwargs:
            raise ValueError('model overrides need a config, not a model')
        built = model
    else:
        cfg = _load_config(model)
        if kwargs:
            cfg.merge_from_dict(dict(model=copy.deepcopy(kwargs)))
        if pretrained is True:
            pretrained = cfg.get('load_from')
        built = build_from_config(cfg)
    if isinstance(pretrained, str) and pretrained:
        load_ram_checkpoint(built, pretrained)
    elif not isinstance(model, BaseModel):
        print_log(
            'No checkpoint: the tagger keeps random weights',
            logger='current',
            level=logging.WARNING)
    return ready_for_inference(built, device)


def _as_category_list(categories: Categories) -> Any:
    """A ``{name: [descriptions], ...}`` dict becomes the list of one-key
    dicts the models take; anything else passes through."""
    if isinstance(categories, Mapping):
        return [{name: list(texts)} for name, texts in categories.items()]
    return categories


class ImageTagger(BaseInferencer):
    """Tag images with every label of RAM's or RAM++'s vocabulary, or of an
    open set of categories.

    Images are preprocessed with :func:`~mmprompt.models.ram.ram_preprocess`
    (RAM's exact input tensors) and tagged in batches. A tag is selected
    where its score is strictly above its threshold: RAM's per-tag
    thresholds, the open-set threshold, or ``threshold`` of the call.

    Args:
        model (str | Config | BaseModel): A config name such as
            ``'ram_swin-large-p4-w12_384px_normal'`` or
            ``'ram-plus_swin-large-p4-w12_384px_openset'`` (see
            :func:`list_tagging_models`), a config file or object, or a
            built RAM model.
        pretrained (bool | str, optional): A converted checkpoint, see
            :func:`build_tagging_model`. Defaults to None (random weights,
            with a warning).
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
        ...     pretrained='ram_plus_swin_large_14m_mmprompt.pth')
        >>> tagger(['a.jpg', pil_image], batch_size=2,
        ...        categories={'Crocodilia': ['a photo of a crocodile.']})
    """
    preprocess_kwargs: set = set()
    forward_kwargs: set = set()
    visualize_kwargs: set = set()
    postprocess_kwargs: set = {'threshold', 'sort_by'}

    def __init__(self,
                 model: ModelType,
                 pretrained: Union[bool, str, None] = None,
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
        if not hasattr(built, 'select_tags'):
            raise TypeError(f'{type(built).__name__} is not a RAM tagger')
        speed_up(built, precision, compile)
        super().__init__(built, pretrained=False)

    @staticmethod
    def list_models() -> List[str]:
        """Config names usable as ``model``; see
        :func:`list_tagging_models`."""
        return list_tagging_models()

    @property
    def image_size(self) -> int:
        """int: Side of the square model input."""
        patch_embed = getattr(self.model.visual_encoder, 'patch_embed', None)
        size = getattr(patch_embed, 'init_input_size', None) or 384
        return int(size[0] if isinstance(size, (tuple, list)) else size)

    def _init_pipeline(self, cfg: Config) -> Callable:
        size = self.image_size
        flip = self.array_order == 'bgr'

        def load(image: ImageInput) -> dict:
            if isinstance(image, np.ndarray):
                if image.dtype != np.uint8 or image.ndim not in (2, 3) or (
                        image.ndim == 3 and image.shape[2] != 3):
                    raise InvalidInputError(
                        'an array image must be (H, W) or (H, W, 3) uint8, '
                        f'got {image.dtype} {image.shape}')
                if image.ndim == 3 and flip:
                    image = np.ascontiguousarray(image[..., ::-1])
            elif not isinstance(image, (str, Image.Image)):
                raise InputTypeError(
                    'an image must be a path, a PIL image or a numpy array, '
                    f'got {type(image).__name__}')
            image = decode_image(image, mode='RGB')
            return dict(inputs=ram_preprocess(image, size))

        return load

    @property
    def is_openset(self) -> bool:
        """bool: Whether open-set categories are being tagged."""
        return bool(getattr(self.model, 'is_openset', False))

    def set_categories(self,
                       categories: Categories,
                       templates: Optional[Union[str, Sequence[str]]] = None,
                       threshold: Optional[float] = None) -> None:
        """Tag these open-set categories from now on.

        The model caches the embeddings of recent category sets, so setting
        the same categories again costs nothing.

        Args:
            categories (str | list | dict): Names; ``{name: [descriptions]}``
                items or one dict of them (RAM++); or a file: one name a
                line (``.txt``) or a JSON list (RAM++'s
                ``openimages_rare_200_llm_tag_descriptions.json``).
            templates (str | Sequence[str], optional): Prompt templates of
                the names. Defaults to the config's.
            threshold (float, optional): Threshold of every category.
                Defaults to the config's ``openset_threshold`` (0.5).
        """
        if not hasattr(self.model, 'set_openset'):
            raise TypeError(
                f'categories need an open-set model (RAMOpenset or '
                f'RAMPlusOpenset), not {type(self.model).__name__}; use e.g. '
                "'ram_swin-large-p4-w12_384px_openset'")
        self.model.set_openset(
            _as_category_list(categories), templates, threshold=threshold)

    def clear_categories(self) -> None:
        """Go back to the model's closed vocabulary."""
        if hasattr(self.model, 'clear_openset'):
            self.model.clear_openset()

    def __call__(self,
                 inputs: Union[ImageInput, Sequence[ImageInput]],
                 categories: Optional[Categories] = None,
                 templates: Optional[Union[str, Sequence[str]]] = None,
                 threshold: Optional[float] = None,
                 sort_by: str = 'index',
                 batch_size: int = 1,
                 return_datasamples: bool = False) -> list:
        """Tag images.

        Args:
            inputs (str | np.ndarray | PIL.Image.Image | list): One image or
                a list: file paths, PIL images or ``(H, W, 3)`` / ``(H, W)``
                uint8 arrays (channel order: ``array_order``, BGR by
                default). An unreadable file raises ``ValueError`` naming
                it.
            categories (str | list | dict, optional): Switch to these
                open-set categories (see :meth:`set_categories`); they stay
                for later calls. None keeps the current vocabulary.
                Defaults to None.
            templates (str | Sequence[str], optional): Prompt templates of
                new ``categories``. Defaults to None (the config's).
            threshold (float, optional): Select tags by ``score >
                threshold`` for every tag instead of the model's thresholds
                (deleted tags stay off). Defaults to None.
            sort_by (str): Order of each image's tags: ``'index'``
                (vocabulary order, as RAM prints them) or ``'score'``
                (highest first). Defaults to ``'index'``.
            batch_size (int): Images per forward pass. Defaults to 1.
            return_datasamples (bool): Return the model's
                :class:`DataSample` objects instead of dicts. Defaults to
                False.

        Returns:
            list: Per image, a dict with ``pred_tags`` (English names, None
            if the checkpoint has none), ``pred_tags_chinese`` (None if
            unknown, always for open-set categories), ``pred_scores`` and
            ``pred_labels`` (vocabulary indices) of the selected tags, in
            the order ``sort_by`` says.
        """
        if categories is not None:
            self.set_categories(categories, templates)
        if threshold is not None and not 0 <= threshold <= 1:
            raise ValueError(f'threshold must lie in [0, 1], got {threshold}')
        if sort_by not in SORT_BY:
            raise ValueError(f'sort_by must be one of {SORT_BY}, got '
                             f'{sort_by!r}')
        if batch_size < 1:
            raise ValueError(f'batch_size must be >= 1, got {batch_size}')
        images = self._inputs_to_list(inputs)
        preds = []
        for data in self.preprocess(images, batch_size=batch_size):
            preds.extend(self.forward(data))
        return self.postprocess(
            preds,
            None,
            return_datasamples,
            threshold=threshold,
            sort_by=sort_by)

    def _inputs_to_list(self, inputs: Any) -> list:
        if isinstance(inputs, (list, tuple)):
            return list(inputs)
        return [inputs]

    def preprocess(self, inputs: list, batch_size: int = 1, **kwargs):
        """Preprocess the images in chunks of ``batch_size``.

        Args:
            inputs (list): The images.
            batch_size (int): Images per chunk. Defaults to 1.

        Yields:
            dict: ``inputs``, a ``(B, 3, S, S)`` float tensor.
        """
        chunks = self._get_chunk_data(map(self.pipeline, inputs), batch_size)
        yield from map(default_collate, chunks)

    @torch.no_grad()
    def forward(self, data: dict, **kwargs) -> List[DataSample]:
        """Tag one batch of preprocessed images.

        Args:
            data (dict): ``inputs``, RAM's normalised input tensors.

        Returns:
            list[DataSample]: The model's predictions.
        """
        device = next(self.model.parameters()).device
        return self.model.predict(data['inputs'].to(device))

    def visualize(self, inputs: list, preds: List[DataSample],
                  **kwargs) -> None:
        return None

    def _select(self, sample: DataSample,
                threshold: Optional[float]) -> torch.Tensor:
        """Indices of the selected tags, ascending."""
        if threshold is None:
            return sample.pred_label.cpu().long()
        selected = sample.pred_score.cpu() > threshold
        deleted = list(self.model.deleted_tags())
        if deleted:
            selected[deleted] = False
        return selected.nonzero()[:, 0]

    def postprocess(self,
                    preds: List[DataSample],
                    visualization: Any,
                    return_datasamples: bool = False,
                    threshold: Optional[float] = None,
                    sort_by: str = 'index') -> list:
        """Turn the model's predictions into tag dicts.

        Args:
            preds (list[DataSample]): The model's predictions.
            visualization: Unused.
            return_datasamples (bool): Return ``preds`` as they are.
                Defaults to False.
            threshold (float, optional): See :meth:`__call__`.
            sort_by (str): See :meth:`__call__`.

        Returns:
            list: See :meth:`__call__`.
        """
        if return_datasamples:
            return preds
        english, chinese = self.model.tag_names()
        results = []
        for sample in preds:
            labels = self._select(sample, threshold)
            scores = sample.pred_score.detach().float().cpu()[labels]
            if sort_by == 'score':
                order = scores.argsort(descending=True, stable=True)
                labels, scores = labels[order], scores[order]
            labels = labels.tolist()
            results.append(
                dict(
                    pred_tags=[english[i]
                               for i in labels] if english else None,
                    pred_tags_chinese=[chinese[i]
                                       for i in labels] if chinese else None,
                    pred_scores=scores.tolist(),
                    pred_labels=labels))
        return results
