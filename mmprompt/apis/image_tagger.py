# Copyright (c) mmprompt contributors. All rights reserved.
"""Tag images with RAM or RAM++, in MMPreTrain's inferencer style.

Example:
    >>> from mmprompt.apis import ImageTagger
    >>> tagger = ImageTagger('ram_swin-large-p4-w12_384px_normal')
    >>> tagger('dog.jpg')[0]['pred_tags']
    ['dog', 'grass', 'lawn', ...]
"""
from typing import Any, Callable, List, Mapping, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import default_collate
from mmengine.model import BaseModel
from mmpretrain.apis.base import BaseInferencer
from mmpretrain.structures import DataSample
from PIL import Image

from mmprompt.models.ram import ram_preprocess
from mmprompt.models.ram.vocabulary import check_threshold
from mmprompt.utils.errors import InputTypeError, InvalidInputError
from mmprompt.utils.image_io import decode_image
from .builder import get_model
from .model_zoo import check_task, list_models
from .utils import speed_up

ImageInput = Union[str, np.ndarray, Image.Image]
ModelType = Union[str, Config, BaseModel]
# Open-set categories: names, {name: [descriptions]} (RAM++), or a file.
Categories = Union[str, Sequence[Union[str, Mapping[str, Sequence[str]]]],
                   Mapping[str, Sequence[str]]]
SORT_BY = ('index', 'score')


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
    check_task(model, ('Image Tagging', 'Open-set Image Tagging'),
               'ImageTagger')
    return get_model(model, pretrained, device, **kwargs)


class ImageTagger(BaseInferencer):
    """Tag images with every label of RAM's or RAM++'s vocabulary, or of an
    open set of categories.

    Images are preprocessed with :func:`~mmprompt.models.ram.ram_preprocess`
    (RAM's exact input tensors) and tagged in batches. A tag is selected
    where its score is strictly above its threshold: RAM's per-tag
    thresholds, the open-set threshold, or ``threshold`` of the call.

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
    postprocess_kwargs: set = {'threshold', 'sort_by'}

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
        if not hasattr(built, 'select_tags'):
            raise TypeError(f'{type(built).__name__} is not a RAM tagger')
        speed_up(built, precision, compile)
        super().__init__(built, pretrained=False)

    @staticmethod
    def list_models(pattern: Optional[str] = None) -> List[str]:
        """Zoo names usable as ``model``: the tagging models of
        :func:`mmprompt.apis.list_models`."""
        return sorted(
            list_models(pattern, task='Image Tagging') +
            list_models(pattern, task='Open-set Image Tagging'))

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
                line (``.txt``) or JSON, see
                :func:`~mmprompt.models.ram.label_embedding.load_categories`.

            templates (str | Sequence[str], optional): Prompt templates of
                the names. Defaults to the config's.
            threshold (float, optional): Threshold of every category.
                Defaults to the config's ``openset_threshold`` (0.5).
        """
        if getattr(self.model, 'category_encoder', None) is None:
            raise TypeError(
                f'categories need an open-set model (RAMOpenset or '
                f'RAMPlusOpenset), not {type(self.model).__name__} without a '
                "category_encoder; use e.g. "
                "'ram_swin-large-p4-w12_384px_openset'")
        self.model.set_openset(
            categories, templates, threshold=threshold)

    def clear_categories(self) -> None:
        """Go back to the model's closed vocabulary."""
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
        from .zero_shot_classifier import check_count
        check_count(batch_size, 'batch_size')
        if categories is not None:
            self.set_categories(categories, templates)
        if threshold is not None:
            threshold = check_threshold(threshold)
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
        selected = self.model.vocabulary.select(sample.pred_score.cpu()[None],
                                                threshold)[0]
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
        vocabulary = self.model.vocabulary
        results = []
        for sample in preds:
            labels = self._select(sample, threshold)
            scores = sample.pred_score.detach().float().cpu()[labels]
            if sort_by == 'score':
                order = scores.argsort(descending=True, stable=True)
                labels, scores = labels[order], scores[order]
            labels = labels.tolist()
            english, chinese = vocabulary.names_of(labels)
            results.append(
                dict(
                    pred_tags=english,
                    pred_tags_chinese=chinese,
                    pred_scores=scores.tolist(),
                    pred_labels=labels))
        return results
