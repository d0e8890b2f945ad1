# Copyright (c) mmprompt contributors. All rights reserved.
"""Classify any image among any categories, in MMPreTrain's inferencer
style."""
import hashlib
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
from mmprompt.utils.errors import InvalidInputError
from .builder import get_model
from .model_zoo import check_task, list_models, load_config
from .utils import InferencerMixin, check_count, speed_up

ImageInput = Union[str, np.ndarray, Image.Image]
ModelType = Union[str, Config, BaseModel]
Names = Optional[Union[str, Sequence[str]]]
Spec = Optional[Union[str, dict]]


def build_zero_shot_model(model: ModelType,
                          pretrained: Union[bool, str, None] = True,
                          device: Union[str, torch.device, None] = None,
                          **kwargs) -> BaseModel:
    """:func:`mmprompt.apis.get_model` for a zero-shot classifier; a zoo
    name of another task is refused before any download."""
    check_task(model, ('Zero-shot Image Classification', ),
               'ZeroShotClassifier')
    return get_model(model, pretrained, device, **kwargs)


class ZeroShotClassifier(InferencerMixin, BaseInferencer):
    """Classify images among categories given by name, with optional
    descriptions and example images; the weights stay frozen.

    Args:
        model (str | Config | BaseModel): A zoo name (see
            :meth:`list_models`), a ``mmprompt::`` config name, a config
            file or object, or a built :class:`CLIPZeroShot`.
        pretrained (bool | str, optional): See :func:`get_model`. Defaults
            to True.
        device (str | torch.device, optional): Defaults to None (CPU).
        precision (str): See :func:`speed_up`. Defaults to ``'fp32'``.
        compile (bool | str): See :func:`speed_up`. Defaults to False.
        learned (str, optional): A learned-prompt file (CoOp, CoCoOp) whose
            prompts replace templates, descriptions and examples, see
            :func:`get_model`. Defaults to None.
        allow_other_weights (bool): See :func:`get_model`. Defaults to
            False.
        **kwargs: Overrides of the config's ``model`` dict;
            ``prototype_cache_dir`` (also read from the config) keeps every
            category set's text prototypes in a :class:`PrototypeCache`.
    """
    preprocess_kwargs: set = set()
    forward_kwargs: set = {'vocabulary'}
    visualize_kwargs: set = set()
    postprocess_kwargs: set = {'topk', 'vocabulary'}

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
        self._init_cache()
        self.prototype_cache = PrototypeCache(cache_dir) if cache_dir \
            else None

    @staticmethod
    def list_models(pattern: Optional[str] = None) -> List[str]:
        """Zoo names usable as ``model``: the zero-shot classifiers."""
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
                   categories: Names = None,
                   templates: Names = None,
                   descriptions: Spec = None,
                   examples: Spec = None) -> Any:
        """What to classify into, for ``model.predict(..., vocabulary=)``,
        kept by what built it; the model is not changed.

        Args:
            categories (str | Sequence[str], optional): Names, a built-in
                set or a file. Defaults to the current categories.
            templates (str | Sequence[str], optional): Defaults to the
                model's templates.
            descriptions (str | dict, optional): Defaults to None (the
                config's, with the config's categories).
            examples (str | dict, optional): Likewise.

        Returns:
            ClassVocabulary: (a ``PromptLayout`` for CoCoOp's prompts).
        """
        model = self.model
        # The config's categories come with its descriptions and examples.
        from_config = categories is None and self._default is None
        if categories is None:
            categories = self.categories
            if categories is None:
                raise ValueError('no categories: pass categories=[...]')
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

    def set_categories(self,
                       categories: Names = None,
                       templates: Names = None,
                       descriptions: Spec = None,
                       examples: Spec = None) -> Any:
        """Set what later calls without ``categories`` classify into (the
        arguments and result of :meth:`vocabulary`)."""
        vocabulary = self.vocabulary(categories, templates, descriptions,
                                     examples)
        self._default = vocabulary
        return vocabulary

    def __call__(self,
                 inputs: Union[ImageInput, Sequence[ImageInput]],
                 categories: Names = None,
                 templates: Names = None,
                 descriptions: Spec = None,
                 examples: Spec = None,
                 topk: int = 5,
                 batch_size: int = 1,
                 return_datasamples: bool = False) -> list:
        """Classify images (concurrent calls share only the weights and
        the kept vocabularies).

        Args:
            inputs (str | np.ndarray | PIL.Image.Image | list): One image or
                a list: paths, PIL images or ``(H, W, 3)`` uint8 BGR arrays.
            categories (str | Sequence[str], optional): See
                :meth:`vocabulary`. Defaults to the current ones.
            templates (str | Sequence[str], optional): Defaults to the
                model's.
            descriptions (str | dict, optional): ``{name: text or texts}``.
                Defaults to None.
            examples (str | dict, optional): ``{name: images}`` or a folder
                of per-category subfolders. Defaults to None.
            topk (int): Categories returned per image. Defaults to 5.
            batch_size (int): Images per forward pass. Defaults to 1.
            return_datasamples (bool): Return :class:`DataSample` objects.
                Defaults to False.

        Returns:
            list: Per image, MMPreTrain's ``pred_scores``, ``pred_label``,
            ``pred_score``, ``pred_class`` and ``topk_labels``,
            ``topk_scores``, ``topk_classes``.
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
        self._default = vocabulary  # a failed call changes nothing
        return results

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


def _freeze(value: Any) -> Any:
    """A hashable, comparable copy of a spec (lists, dicts, strings)."""
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value
