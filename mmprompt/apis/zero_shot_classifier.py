# Copyright (c) mmprompt contributors. All rights reserved.
"""Classify any image among any categories, in MMPreTrain's inferencer
style.

Example:
    >>> from mmprompt.apis import ZeroShotClassifier
    >>> classifier = ZeroShotClassifier('clip_vit-base-p16')
    >>> classifier('cat.jpg', categories=['tabby cat', 'beagle'])[0]
    {'pred_class': 'tabby cat', 'pred_score': 0.98, 'pred_label': 0,
     'pred_scores': array([0.98, 0.02], dtype=float32),
     'topk_classes': ['tabby cat', 'beagle'], ...}
"""
import hashlib
import threading
from collections import OrderedDict
from typing import Any, Callable, List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.config import Config
from mmengine.model import BaseModel
from mmpretrain.apis.base import BaseInferencer
from mmpretrain.structures import DataSample
from PIL import Image

from mmprompt.datasets import load_example_images
from mmprompt.datasets.transforms import build_pipeline, clip_pipeline
from mmprompt.models.clip.prototype_cache import PrototypeCache
from mmprompt.models.clip.prompts import (resolve_categories,
                                          resolve_descriptions,
                                          resolve_templates)
from mmprompt.utils.errors import InputTypeError, InvalidInputError
from .builder import get_model
from .model_zoo import check_task, list_models, load_config
from .utils import speed_up

ImageInput = Union[str, np.ndarray, Image.Image]
ModelType = Union[str, Config, BaseModel]


def build_zero_shot_model(model: ModelType,
                          pretrained: Union[bool, str, None] = True,
                          device: Union[str, torch.device, None] = None,
                          **kwargs) -> BaseModel:
    """Build a :class:`CLIPZeroShot`: :func:`mmprompt.apis.get_model`
    (``model`` a zoo name, a ``mmprompt::`` config name, a config file, a
    :class:`Config` or a built model; ``pretrained`` True for the zoo's
    official weights or the config's ``load_from``, a checkpoint path, or
    False / None for random weights; ``learned=`` for a learned-prompt
    file).
    """
    check_task(model, ('Zero-shot Image Classification', ),
               'ZeroShotClassifier')
    return get_model(model, pretrained, device, **kwargs)


class ZeroShotClassifier(BaseInferencer):
    """Classify images among categories given by name, with optional
    descriptions and example images; the weights stay frozen.

    Categories, templates, descriptions and examples come from the config
    or from each call; the text prototypes are rebuilt only when they
    change. Images are preprocessed as the model's config says (OpenAI's
    resize and crop unless its ``image_preprocess`` differs, see
    :class:`mmprompt.datasets.CLIPPreprocess`).

    Args:
        model (str | Config | BaseModel): A zoo name such as
            ``'clip_vit-base-p16'`` (see :func:`mmprompt.apis.list_models`),
            a ``mmprompt::`` config name, a config file or object, or a
            built :class:`CLIPZeroShot`.
        pretrained (bool | str, optional): As for
            :func:`mmprompt.apis.get_model`: True (the default) for the
            zoo's official weights (downloaded, checked and converted once)
            or the config's ``load_from``; a ``.pth`` / ``.safetensors``
            checkpoint; False or None for random weights.
        device (str | torch.device, optional): Defaults to None (CPU).
        precision (str): ``'fp32'``, ``'fp16'`` or ``'bf16'``, see
            :func:`mmprompt.models.utils.apply_precision`.
            Defaults to ``'fp32'``.
        compile (bool | str): ``torch.compile`` the frozen towers (see
            :func:`mmprompt.models.utils.compile_model`), each graph built
            on the first call of each batch shape; a string is the
            ``torch.compile`` mode. Defaults to False.
        learned (str, optional): A learned-prompt file of
            ``tools/train.py`` (CoOp, CoCoOp) learned on this CLIP: its
            prompts replace the templates (no templates, descriptions or
            examples then), and the categories default to those it was
            trained on. A unified context takes any names (base-to-novel);
            a class-specific one (CSC) only those it was trained on. A file
            learned on a CLIP of another architecture is refused, and on
            other weights of the same architecture unless
            ``allow_other_weights``. Defaults to None.
        allow_other_weights (bool): Use a ``learned`` file over other CLIP
            weights of its architecture (with a warning). Defaults to
            False.
        **kwargs: Overrides of the config's ``model`` dict, e.g.
            ``templates='openai_imagenet'``; ``prototype_cache_dir`` (also
            read from the config) keeps the text prototypes of every
            category set in a
            :class:`~mmprompt.models.clip.prototype_cache.PrototypeCache`.

    Example:
        >>> classifier = ZeroShotClassifier(
        ...     'mmprompt::clip/clip_vit-base-p16_zeroshot-cls_in1k.py',
        ...     pretrained='clip_vit-base-p16.safetensors')
        >>> classifier(['a.jpg', pil_image], topk=5)[0]['topk_classes']
    """
    preprocess_kwargs: set = set()
    forward_kwargs: set = {'vocabulary'}
    visualize_kwargs: set = set()
    postprocess_kwargs: set = {'topk', 'vocabulary'}
    #: How many vocabularies are kept.
    cache_size: int = 8

    def __init__(self,
                 model: ModelType,
                 pretrained: Union[bool, str, None] = True,
                 device: Union[str, torch.device, None] = None,
                 precision: str = 'fp32',
                 compile: Union[bool, str] = False,
                 learned: Optional[str] = None,
                 allow_other_weights: bool = False,
                 **kwargs) -> None:
        cache_dir = kwargs.pop('prototype_cache_dir', None)
        if not isinstance(model, BaseModel):
            if cache_dir is None:
                cache_dir = load_config(model)[0].model.get(
                    'prototype_cache_dir')
            # Every category set goes through the cache when it is asked
            # for (set_categories); get_model would build the config's now.
            kwargs['prototype_cache_dir'] = None
        built = build_zero_shot_model(
            model,
            pretrained,
            device,
            learned=learned,
            allow_other_weights=allow_other_weights,
            **kwargs)
        if not hasattr(built, 'set_categories'):
            raise TypeError(f'{type(built).__name__} is not a zero-shot '
                            'classifier (no set_categories)')
        self.learned = learned
        speed_up(built, precision, compile)
        super().__init__(built, pretrained=False)
        self._default = None
        self._vocabularies: 'OrderedDict[tuple, Any]' = OrderedDict()
        self._lock = threading.Lock()
        self.prototype_cache = PrototypeCache(cache_dir) if cache_dir \
            else None

    @staticmethod
    def list_models(pattern: Optional[str] = None) -> List[str]:
        """Zoo names usable as ``model``: the zero-shot classifiers of
        :func:`mmprompt.apis.list_models`."""
        return list_models(pattern, task='Zero-shot Image Classification')

    def _init_pipeline(self, cfg: Config) -> Callable:
        pipeline = build_pipeline(clip_pipeline(self.model.preprocess_args))

        def load(image: ImageInput) -> dict:
            if isinstance(image, str):
                return pipeline(dict(img_path=image))
            if image is None:
                raise InvalidInputError(
                    'an image is None; give a path, a PIL image or an array')
            return pipeline(dict(img=image))

        return load

    def vocabulary(self,
                   categories: Optional[Union[str, Sequence[str]]] = None,
                   templates: Optional[Union[str, Sequence[str]]] = None,
                   descriptions: Optional[Union[str, dict]] = None,
                   examples: Optional[Union[str, dict]] = None) -> Any:
        """What to classify into, as a value for ``model.predict(...,
        vocabulary=)``; the model is not changed.

        Vocabularies are kept (the last :attr:`cache_size`) by what built
        them: the names, templates, descriptions, the examples' pixels and
        the state of the weights; the prototype cache, if any, is read
        first.

        Args:
            categories (str | Sequence[str], optional): Names, a built-in
                set or a file. Defaults to the current categories (those of
                :meth:`set_categories`, the previous call or the config).
            templates (str | Sequence[str], optional): Defaults to the
                model's templates.
            descriptions (str | dict, optional): Defaults to None; with
                the config's categories, the config's descriptions.
            examples (str | dict, optional): Defaults to None; with the
                config's categories, the config's examples (encoded when
                the model was built).

        Returns:
            ClassVocabulary: (a :class:`PromptLayout
            <mmprompt.models.prompt_learning.prompt_learner.PromptLayout>`
            for CoCoOp's learned prompts).
        """
        model = self.model
        # The config's categories come with its descriptions and examples.
        from_config = categories is None and self._default is None
        if categories is None:
            if self._default is not None:
                categories = self._default.names
            elif model.categories is None:
                raise ValueError('no categories: pass categories=[...]')
            else:
                categories = model.categories
        names = resolve_categories(categories)
        if self.learned is not None:
            given = [
                name for name, value in (('templates', templates),
                                         ('descriptions', descriptions),
                                         ('examples', examples))
                if value is not None
            ]
            if given:
                raise InvalidInputError(
                    f'{self.learned}: learned prompts replace templates, '
                    f'descriptions and examples; drop {", ".join(given)}')
            return self._cached(('learned', names),
                                lambda: model.build_vocabulary(names))
        templates = model.templates if templates is None else (
            resolve_templates(templates))
        if from_config and descriptions is None:
            descriptions = model.description_spec()
        resolved = resolve_descriptions(descriptions, names)
        images = labels = None
        if examples is not None:
            images, labels = load_example_images(examples, list(names),
                                                 model.preprocess_args)
        # Encoded when the model was built (get_model), kept by the model.
        own = from_config and examples is None and \
            model.example_feats is not None
        key = (names, templates, _freeze(resolved),
               'config examples' if own else _pixels_digest(images, labels))

        def build():
            prototypes = None
            if self.prototype_cache is not None:
                prototypes = self.prototype_cache.prototypes(
                    model, names, templates, resolved)
            vocabulary = model.build_vocabulary(names, templates,
                                                descriptions, prototypes)
            if images is not None and len(images):
                vocabulary = vocabulary.with_examples(
                    *model.encode_examples(images, labels))
            elif own:
                vocabulary = vocabulary.with_examples(model.example_feats,
                                                      model.example_labels)
            return vocabulary

        return self._cached(key, build)

    @property
    def default_vocabulary(self) -> Any:
        """The vocabulary of the last successful call or
        :meth:`set_categories`; None before any."""
        return self._default

    @property
    def categories(self) -> Optional[List[str]]:
        """list[str]: What calls without ``categories`` classify into."""
        if self._default is not None:
            return list(self._default.names)
        names = self.model.categories
        return None if names is None else list(names)

    def _cached(self, key: tuple, build: Callable[[], Any]) -> Any:
        """The vocabulary of ``key`` with the current weights, built once.
        """
        key = (_weights_state(self.model), key)
        with self._lock:
            vocabulary = self._vocabularies.get(key)
            if vocabulary is not None:
                self._vocabularies.move_to_end(key)
                return vocabulary
        vocabulary = build()
        with self._lock:
            self._vocabularies[key] = vocabulary
            while len(self._vocabularies) > self.cache_size:
                self._vocabularies.popitem(last=False)
        return vocabulary

    def set_categories(self,
                       categories: Optional[Union[str, Sequence[str]]] = None,
                       templates: Optional[Union[str, Sequence[str]]] = None,
                       descriptions: Optional[Union[str, dict]] = None,
                       examples: Optional[Union[str, dict]] = None) -> Any:
        """Set what later calls without ``categories`` classify into (see
        :meth:`vocabulary` for the arguments); the model is not changed.

        Returns:
            The vocabulary, as :meth:`vocabulary` gives it.
        """
        vocabulary = self.vocabulary(categories, templates, descriptions,
                                     examples)
        self._default = vocabulary
        return vocabulary

    def __call__(self,
                 inputs: Union[ImageInput, Sequence[ImageInput]],
                 categories: Optional[Union[str, Sequence[str]]] = None,
                 templates: Optional[Union[str, Sequence[str]]] = None,
                 descriptions: Optional[Union[str, dict]] = None,
                 examples: Optional[Union[str, dict]] = None,
                 topk: int = 5,
                 batch_size: int = 1,
                 return_datasamples: bool = False) -> list:
        """Classify images.

        Calls share nothing but the model's weights and the kept
        vocabularies: threads classifying among different categories at the
        same time get the answers they get one at a time.

        Args:
            inputs (str | np.ndarray | PIL.Image.Image | list): One image or
                a list: file paths, PIL images or ``(H, W, 3)`` uint8 arrays
                in BGR order (MMCV's, as ``mmcv.imread`` gives).
            categories (str | Sequence[str], optional): Category names, a
                built-in set (``'imagenet'``, ``'cifar100'``) or a text file.
                Defaults to those of the config or the previous call.
            templates (str | Sequence[str], optional): As
                :func:`~mmprompt.models.clip.prompts.resolve_templates`
                takes them. Defaults to the model's.
            descriptions (str | dict, optional): ``{name: text or texts}``.
                Defaults to None.
            examples (str | dict, optional): ``{name: images}`` (paths, PIL
                images or arrays) or a folder of per-category subfolders.
                Defaults to None.
            topk (int): How many categories to return per image.
                Defaults to 5.
            batch_size (int): Images per forward pass. Defaults to 1.
            return_datasamples (bool): Return :class:`DataSample` objects
                instead of dicts. Defaults to False.

        Returns:
            list: Per image, a dict as MMPreTrain's
            ``ImageClassificationInferencer`` gives: ``pred_scores`` (the
            score of every category, in category order, an ``np.ndarray``)
            and ``pred_label``, ``pred_score``, ``pred_class`` (the best);
            plus ``topk_labels``, ``topk_scores`` and ``topk_classes``
            (the ``topk`` best, best first).
        """
        check_count(topk, 'topk')
        check_count(batch_size, 'batch_size')
        given = (categories, templates, descriptions, examples)
        if any(v is not None for v in given) or self._default is None:
            vocabulary = self.vocabulary(*given)
        else:
            vocabulary = self._default
        results = super().__call__(
            inputs,
            return_datasamples=return_datasamples,
            batch_size=batch_size,
            topk=topk,
            vocabulary=vocabulary)
        # The next call without categories classifies into these; a failed
        # call changes nothing.
        self._default = vocabulary
        return results

    @torch.no_grad()
    def forward(self, inputs: dict, vocabulary: Any = None) -> list:
        """Predict a batch against ``vocabulary``."""
        data = self.model.data_preprocessor(inputs, False)
        return self.model.predict(
            data['inputs'], data.get('data_samples'), vocabulary=vocabulary)

    def _inputs_to_list(self, inputs: Any) -> list:
        if isinstance(inputs, (list, tuple)):
            return list(inputs)
        return [inputs]

    def visualize(self, inputs: list, preds: List[DataSample],
                  **kwargs) -> None:
        return None

    def postprocess(self,
                    preds: List[DataSample],
                    visualization: Any,
                    return_datasamples: bool = False,
                    topk: int = 5,
                    vocabulary: Any = None) -> list:
        if return_datasamples:
            return preds
        names = vocabulary.names if vocabulary is not None else \
            self.model.categories
        results = []
        for sample in preds:
            scores = sample.pred_score.detach().float().cpu()
            k = min(int(topk), scores.numel())
            top_scores, top_labels = scores.topk(k)
            labels = top_labels.tolist()
            classes = [names[i] for i in labels] if names else None
            results.append(
                dict(
                    pred_scores=scores.numpy(),
                    pred_label=labels[0],
                    pred_score=float(top_scores[0]),
                    pred_class=classes[0] if classes else None,
                    topk_labels=labels,
                    topk_scores=top_scores.tolist(),
                    topk_classes=classes))
        return results


def _weights_state(model: torch.nn.Module) -> int:
    """Changes when any parameter is changed in place (a weights load):
    the sum of the parameters' version counters."""
    return sum(p._version for p in model.parameters())


def _pixels_digest(images: Optional[Sequence[torch.Tensor]],
                   labels: Optional[Sequence[int]]) -> Optional[str]:
    """A digest of example images and labels, or None without them."""
    if images is None:
        return None
    digest = hashlib.sha256(repr(list(labels)).encode())
    for image in images:
        digest.update(repr(tuple(image.shape)).encode())
        digest.update(image.contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()


def check_count(value: Any, name: str) -> int:
    """A positive int (not a bool), or a clear error."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InputTypeError(
            f'{name} must be a positive integer, not {value!r}')
    if value < 1:
        raise InvalidInputError(
            f'{name} must be a positive integer, got {value}')
    return int(value)


def _freeze(value: Any) -> Any:
    """A hashable, comparable copy of a spec (lists, dicts, strings)."""
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value
