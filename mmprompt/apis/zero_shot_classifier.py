# Copyright (c) mmprompt contributors. All rights reserved.
"""Classify any image among any categories, in MMPreTrain's inferencer
style.

Example:
    >>> from mmprompt.apis import ZeroShotClassifier
    >>> classifier = ZeroShotClassifier('clip_vit-base-p16')
    >>> classifier('cat.jpg', categories=['tabby cat', 'beagle'], topk=1)
    [{'pred_classes': ['tabby cat'], 'pred_scores': [0.98], ...}]
"""
from typing import Any, Callable, List, Optional, Sequence, Union

import numpy as np
import torch
from mmcv.transforms import Compose
from mmengine.config import Config
from mmengine.model import BaseModel
from mmpretrain.apis.base import BaseInferencer
from mmpretrain.datasets.transforms import PackInputs
from mmpretrain.structures import DataSample
from PIL import Image

from mmprompt.datasets import load_example_images
from mmprompt.datasets.transforms import (build_image_transform,
                                          image_transform_of)
from mmprompt.models.clip.prototype_cache import PrototypeCache
from mmprompt.models.clip.prompts import (resolve_categories,
                                          resolve_descriptions,
                                          resolve_templates)
from mmprompt.utils.errors import InputTypeError, InvalidInputError
from .model_zoo import check_task, get_model, list_models, load_config
from .utils import ready_for_inference, speed_up

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
    False / None for random weights).
    """
    check_task(model, ('Zero-shot Image Classification', ),
               'ZeroShotClassifier')
    return get_model(model, pretrained, device, **kwargs)


class ZeroShotClassifier(BaseInferencer):
    """Classify images among categories given by name, with optional
    descriptions and example images; the weights stay frozen.

    Categories, templates, descriptions and examples come from the config
    or from each call; the text prototypes are rebuilt only when they
    change. Images are preprocessed as OpenAI does (see
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
            learned on a CLIP of another architecture is refused; on other
            weights of the same architecture it loads with a warning.
            Defaults to None.
        **kwargs: Overrides of the config's ``model`` dict, e.g.
            ``templates='openai_imagenet'``; ``prototype_cache_dir`` (also
            read from the config) keeps the text prototypes of every
            category set in a
            :class:`~mmprompt.models.clip.prototype_cache.PrototypeCache`.

    Example:
        >>> classifier = ZeroShotClassifier(
        ...     'mmprompt::clip/clip_vit-base-p16_zeroshot-cls_in1k.py',
        ...     pretrained='clip_vit-base-p16.safetensors')
        >>> classifier(['a.jpg', pil_image], topk=5)[0]['pred_classes']
    """
    preprocess_kwargs: set = set()
    forward_kwargs: set = set()
    visualize_kwargs: set = set()
    postprocess_kwargs: set = {'topk'}

    def __init__(self,
                 model: ModelType,
                 pretrained: Union[bool, str, None] = True,
                 device: Union[str, torch.device, None] = None,
                 precision: str = 'fp32',
                 compile: Union[bool, str] = False,
                 learned: Optional[str] = None,
                 **kwargs) -> None:
        cache_dir = kwargs.pop('prototype_cache_dir', None)
        if not isinstance(model, BaseModel):
            if cache_dir is None:
                cache_dir = load_config(model)[0].model.get(
                    'prototype_cache_dir')
            # Every category set goes through the cache when it is asked
            # for (set_categories); get_model would build the config's now.
            kwargs['prototype_cache_dir'] = None
        built = build_zero_shot_model(model, pretrained, device, **kwargs)
        if not hasattr(built, 'set_categories'):
            raise TypeError(f'{type(built).__name__} is not a zero-shot '
                            'classifier (no set_categories)')
        self.learned = learned
        if learned is not None:
            from mmprompt.models.prompt_learning.learned import \
                build_learned_model
            built = ready_for_inference(build_learned_model(built, learned))
        speed_up(built, precision, compile)
        super().__init__(built, pretrained=False)
        self._spec = None
        self.prototype_cache = PrototypeCache(cache_dir) if cache_dir \
            else None

    @staticmethod
    def list_models(pattern: Optional[str] = None) -> List[str]:
        """Zoo names usable as ``model``: the zero-shot classifiers of
        :func:`mmprompt.apis.list_models`."""
        return list_models(pattern, task='Zero-shot Image Classification')

    def _init_pipeline(self, cfg: Config) -> Callable:
        pipeline = Compose(
            [build_image_transform(image_transform_of(self.model),
                                   self.model.image_size),
             PackInputs()])

        def load(image: ImageInput) -> dict:
            if isinstance(image, str):
                return pipeline(dict(img_path=image))
            if image is None:
                raise InvalidInputError(
                    'an image is None; give a path, a PIL image or an array')
            return pipeline(dict(img=image))

        return load

    def set_categories(self,
                       categories: Optional[Union[str, Sequence[str]]] = None,
                       templates: Optional[Union[str, Sequence[str]]] = None,
                       descriptions: Optional[Union[str, dict]] = None,
                       examples: Optional[Union[str, dict]] = None) -> None:
        """Set what later calls classify into.

        Text prototypes are rebuilt only when the categories, templates or
        descriptions differ from the current ones; examples are re-encoded
        whenever given.

        Args:
            categories (str | Sequence[str], optional): Names, a built-in
                set or a file. Defaults to the current categories.
            templates (str | Sequence[str], optional): Defaults to the
                current templates.
            descriptions (str | dict, optional): Defaults to None.
            examples (str | dict, optional): Defaults to None.
        """
        model = self.model
        if self.learned is not None:
            self._set_learned_categories(categories, templates, descriptions,
                                         examples)
            return
        if categories is None:
            if model.categories is None:
                raise ValueError('no categories: pass categories=[...]')
            categories = model.categories
        categories = resolve_categories(categories)
        templates = model.templates if templates is None else (
            resolve_templates(templates))
        resolved = resolve_descriptions(descriptions, categories)
        spec = (categories, templates, _freeze(resolved))
        if spec != self._spec or model.text_prototypes is None:
            prototypes = None
            if self.prototype_cache is not None:
                prototypes = self.prototype_cache.prototypes(
                    model, categories, templates, resolved)
            model.set_categories(categories, templates, descriptions,
                                 prototypes)
            self._spec = spec
        if examples is not None or model.example_feats is not None:
            model.set_examples(*load_example_images(
                examples, model.categories, model.image_size,
                model.image_transform))

    def _set_learned_categories(self, categories, templates, descriptions,
                                examples) -> None:
        """Learned prompts: only the category names change."""
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
        if categories is None:
            return
        names = list(resolve_categories(categories))
        if names != list(self.model.categories):
            self.model.set_categories(names)

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

        Args:
            inputs (str | np.ndarray | PIL.Image.Image | list): One image or
                a list: file paths, PIL images or ``(H, W, 3)`` uint8 arrays
                in BGR order (MMCV's, as ``mmcv.imread`` gives).
            categories (str | Sequence[str], optional): Category names, a
                built-in set (``'imagenet'``, ``'cifar100'``) or a text file.
                Defaults to those of the config or the previous call.
            templates (str | Sequence[str], optional): As
                :func:`~mmprompt.models.clip.prompts.resolve_templates`
                takes them. Defaults to the current ones.
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
            list: Per image, a dict with ``pred_classes``, ``pred_scores``
            and ``pred_labels`` (the top-k, best first) and ``pred_class``,
            ``pred_score``, ``pred_label`` (the best).
        """
        check_count(topk, 'topk')
        check_count(batch_size, 'batch_size')
        saved = self._save_state()
        try:
            self.set_categories(categories, templates, descriptions, examples)
            return super().__call__(
                inputs,
                return_datasamples=return_datasamples,
                batch_size=batch_size,
                topk=topk)
        except BaseException:
            # A failed call changes nothing: the next call with
            # categories=None classifies into the previous set.
            self._restore_state(saved)
            raise

    def _save_state(self) -> dict:
        model = self.model
        if self.learned is not None:
            return dict(categories=list(model.categories))
        state = {k: getattr(model, k, None) for k in _MODEL_STATE}
        state['_spec'] = self._spec
        return state

    def _restore_state(self, state: dict) -> None:
        if self.learned is not None:
            if list(self.model.categories) != state['categories']:
                self.model.set_categories(state['categories'])
            return
        self._spec = state.pop('_spec')
        for key, value in state.items():
            setattr(self.model, key, value)

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
                    topk: int = 5) -> list:
        if return_datasamples:
            return preds
        names = self.model.categories
        results = []
        for sample in preds:
            scores = sample.pred_score.detach().float().cpu()
            k = min(int(topk), scores.numel())
            top_scores, top_labels = scores.topk(k)
            labels = top_labels.tolist()
            classes = [names[i] for i in labels] if names else None
            results.append(
                dict(
                    pred_labels=labels,
                    pred_scores=top_scores.tolist(),
                    pred_classes=classes,
                    pred_label=labels[0],
                    pred_score=float(top_scores[0]),
                    pred_class=classes[0] if classes else None))
        return results


# What set_categories / set_examples change on the model.
_MODEL_STATE = ('categories', 'templates', 'descriptions', 'text_prototypes',
                'example_feats', 'example_labels', '_hand_set',
                '_examples_stale')


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
