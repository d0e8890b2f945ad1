# Copyright (c) mmprompt contributors. All rights reserved.
"""Hooks that get frozen prompt models ready for MMEngine's test loop, once
the weights are loaded (``Runner.test()`` never calls ``init_weights()``).
"""
import logging
import os.path as osp
from typing import Any, Optional, Sequence, Union

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from mmprompt.registry import HOOKS
from mmprompt.utils.errors import InvalidInputError


def runner_model(runner):
    """The runner's model, unwrapped from a model wrapper (DDP)."""
    model = runner.model
    return model.module if is_model_wrapper(model) else model


@HOOKS.register_module()
class PrepareOpensetHook(Hook):
    """Build an open-set tagger's vocabulary once the weights are loaded,
    through :meth:`~mmprompt.models.ram.RAM.prepare_vocabulary` (tag names
    from the checkpoint's ``meta``). A model without a category encoder only
    gets its tag names.

    Args:
        categories (str | list, optional): Categories to use instead of the
            model's configured ones. Defaults to None.
    """
    priority = 'HIGH'

    def __init__(self,
                 categories: Optional[Union[str, Sequence]] = None) -> None:
        self.categories = categories
        self._meta: Optional[dict] = None

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Keep the loaded checkpoint's ``meta`` for :meth:`before_test`."""
        meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
        self._meta = meta if isinstance(meta, dict) else {}

    def before_test(self, runner) -> None:
        """Name the tags, initialise the text tower, embed the categories."""
        model = runner_model(runner)
        if not hasattr(model, 'prepare_vocabulary'):
            print_log(
                f'PrepareOpensetHook: {type(model).__name__} is not a RAM '
                'model; nothing to prepare',
                logger='current',
                level=logging.WARNING)
            return
        encoder = model.category_encoder
        if encoder is None:
            print_log(
                f'PrepareOpensetHook: {type(model).__name__} has no open '
                'set; only its tags are named',
                logger='current',
                level=logging.WARNING)
            model.prepare_vocabulary(self._meta)
            return
        if self.categories is None and encoder.categories is None:
            raise ValueError(
                f'PrepareOpensetHook: {type(model).__name__} has no '
                'categories; set model.categories in the config')
        model.prepare_vocabulary(self._meta, self.categories)


#: Keys of a zero-shot config's ``model`` dict that are inputs for the
#: model's caller (:func:`prepare_zero_shot`), not arguments of the model.
ZERO_SHOT_INPUTS = ('examples', 'prototype_cache_dir')


def pop_zero_shot_inputs(model_cfg: Any) -> dict:
    """Take :data:`ZERO_SHOT_INPUTS` out of a ``model`` config dict.

    Args:
        model_cfg (dict): A config's ``model`` dict, changed in place.

    Returns:
        dict: The keys that were set (not None).
    """
    if not hasattr(model_cfg, 'pop'):
        return {}
    found = {key: model_cfg.pop(key, None) for key in ZERO_SHOT_INPUTS}
    return {key: value for key, value in found.items() if value is not None}


def prepare_zero_shot(model,
                      examples: Optional[Union[str, dict]] = None,
                      prototype_cache_dir: Optional[str] = None) -> None:
    """Give a zero-shot CLIP with loaded weights its prototypes (cached
    when ``prototype_cache_dir`` is set) and its example images.

    Args:
        model (CLIPZeroShot): The model, its categories set.
        examples (str | dict, optional): See
            :func:`mmprompt.datasets.resolve_examples`. Defaults to None.
        prototype_cache_dir (str, optional): The cache folder. Defaults to
            None (prototypes built when first needed, not cached).
    """
    from mmprompt.datasets import load_example_images
    from mmprompt.models.clip.prototype_cache import PrototypeCache
    names = model.categories
    if (examples is not None or prototype_cache_dir) and names is None:
        raise InvalidInputError('examples and prototype_cache_dir need '
                                'categories (model.categories)')
    if prototype_cache_dir:
        prototypes = PrototypeCache(prototype_cache_dir).prototypes(
            model, names, model.templates, model.descriptions)
        model.set_categories(names, model.templates,
                             model.description_spec(), prototypes)
    if examples is not None:
        model.set_examples(
            *load_example_images(examples, names, model.preprocess_args))


def default_prototype_cache_dir() -> str:
    """str: ``prototypes/`` under :func:`mmprompt.apis.hub.get_home`."""
    from mmprompt.apis.hub import get_home
    return osp.join(get_home(), 'prototypes')


def cache_prototypes_by_default(runner) -> None:
    """Give a Runner of a zero-shot CLIP a :class:`PrepareZeroShotHook`
    with :func:`default_prototype_cache_dir`, unless its config names a
    cache folder: ImageNet's prototypes are 80,000 prompts.

    Args:
        runner (Runner): A built runner; other models are left alone.
    """
    from mmprompt.models.clip import CLIPZeroShot
    model = runner_model(runner)
    if not isinstance(model, CLIPZeroShot):
        return
    hooks = [h for h in runner.hooks if isinstance(h, PrepareZeroShotHook)]
    if not hooks:
        runner.register_hook(
            PrepareZeroShotHook(
                prototype_cache_dir=default_prototype_cache_dir()))
    elif hooks[0].prototype_cache_dir is None:
        hooks[0].prototype_cache_dir = default_prototype_cache_dir()


@HOOKS.register_module()
class PrepareZeroShotHook(Hook):
    """Run :func:`prepare_zero_shot` before testing, after
    :class:`PrecisionHook` and :class:`CompileHook`, so prototypes and
    examples are encoded by the towers the test runs.

    Args:
        examples (str | dict, optional): See :func:`prepare_zero_shot`.
        prototype_cache_dir (str, optional): See :func:`prepare_zero_shot`.
    """
    priority = 'VERY_LOW'

    def __init__(self,
                 examples: Optional[Union[str, dict]] = None,
                 prototype_cache_dir: Optional[str] = None) -> None:
        self.examples = examples
        self.prototype_cache_dir = prototype_cache_dir

    def before_test(self, runner) -> None:
        """Build (or read) the prototypes and encode the examples."""
        model = runner_model(runner)
        if not hasattr(model, 'set_examples'):
            raise InvalidInputError(
                f'PrepareZeroShotHook: {type(model).__name__} is not a '
                'zero-shot classifier (model.examples and '
                'model.prototype_cache_dir are for CLIPZeroShot)')
        prepare_zero_shot(model, self.examples, self.prototype_cache_dir)


class _ModelOnceHook(Hook):
    """Changes the unwrapped model once, on the first ``before_test``."""

    def __init__(self) -> None:
        self._applied = False

    def apply(self, model) -> str:
        """Change ``model`` in place; return what to log."""
        raise NotImplementedError

    def before_test(self, runner) -> None:
        """Apply to the model once."""
        if self._applied:
            return
        message = self.apply(runner_model(runner))
        self._applied = True
        print_log(f'{type(self).__name__}: {message}', logger='current')


@HOOKS.register_module()
class PrecisionHook(_ModelOnceHook):
    """Run the model's heavy towers in fp16 / bf16 during testing
    (:func:`mmprompt.models.utils.apply_precision`), after
    :class:`PrepareOpensetHook`.

    Args:
        precision (str): ``'fp32'``, ``'fp16'`` or ``'bf16'``.
        strategy (str): ``'cast'`` (weights cast once) or ``'autocast'``.
            Defaults to ``'cast'``.
    """
    priority = 'NORMAL'

    def __init__(self, precision: str, strategy: str = 'cast') -> None:
        from mmprompt.models.utils import PRECISIONS
        if precision not in PRECISIONS:
            raise ValueError(f'precision must be one of {sorted(PRECISIONS)}'
                             f', got {precision!r}')
        super().__init__()
        self.precision = precision
        self.strategy = strategy

    def apply(self, model) -> str:
        from mmprompt.models.utils import apply_precision
        apply_precision(model, self.precision, strategy=self.strategy)
        return (f'{type(model).__name__} runs in {self.precision} '
                f'({self.strategy})')


@HOOKS.register_module()
class CompileHook(_ModelOnceHook):
    """``torch.compile`` the model's frozen towers only, after
    :class:`PrecisionHook` (:func:`mmprompt.models.utils.compile_model`):
    unlike MMEngine's ``compile`` option, the test step and metrics stay
    eager.

    Args:
        mode (str, optional): ``torch.compile`` mode. Defaults to None.
        freeze (bool): Constant-fold the frozen weights. Defaults to True.
    """
    priority = 'LOW'

    def __init__(self,
                 mode: Optional[str] = None,
                 freeze: bool = True) -> None:
        from mmprompt.models.utils import check_compile_mode
        check_compile_mode(mode)
        super().__init__()
        self.mode = mode
        self.freeze = freeze

    def apply(self, model) -> str:
        from mmprompt.models.utils import compile_model
        compile_model(model, mode=self.mode, freeze=self.freeze)
        return (f'{", ".join(model.compile_modules)} of '
                f'{type(model).__name__} compiled (mode '
                f'{self.mode or "default"}, freeze={self.freeze}); each '
                'graph is built on its first batch')
