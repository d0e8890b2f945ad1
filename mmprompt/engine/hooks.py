# Copyright (c) mmprompt contributors. All rights reserved.
"""Hooks that get frozen prompt models ready for MMEngine's test loop.

``Runner.test()`` loads ``load_from`` and runs the loop; it never calls
``init_weights()`` and knows nothing of open-set vocabularies, whose label
embeddings must be built from the loaded weights.
"""
import logging
from typing import Optional, Sequence, Union

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from mmprompt.registry import HOOKS


@HOOKS.register_module()
class PrepareOpensetHook(Hook):
    """Build an open-set tagger's vocabulary once the weights are loaded.

    Before the test loop, for a model with ``set_openset`` (RAMOpenset,
    RAMPlusOpenset): the text encoder, whose weights are not in a RAM
    checkpoint, is initialised from its own ``init_cfg`` if it has not been;
    then ``set_openset()`` embeds the model's configured ``categories``.
    Checkpoint loading happens before ``before_test``, so the embeddings come
    from the loaded weights. Tag names stored in a converted checkpoint's
    ``meta`` are also given to the model when it loads (they are not needed
    by the metrics, only by visualisers and dumps).

    A model without ``set_openset`` is left as it is; one without configured
    ``categories`` is an error, since its predictions would not be over the
    open set the evaluation expects.

    Args:
        categories (str | list, optional): Categories to use instead of the
            model's configured ones. Defaults to None.
    """
    priority = 'HIGH'

    def __init__(self,
                 categories: Optional[Union[str, Sequence]] = None) -> None:
        self.categories = categories

    @staticmethod
    def _model(runner):
        model = runner.model
        return model.module if is_model_wrapper(model) else model

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Give the model the tag names of a converted checkpoint.

        Args:
            runner (Runner): The runner.
            checkpoint (dict): The loaded checkpoint.
        """
        model = self._model(runner)
        meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
        if hasattr(model, 'set_tags_from_meta') and isinstance(
                meta, dict) and meta.get('tag_list') is not None:
            model.set_tags_from_meta(meta)

    def before_test(self, runner) -> None:
        """Initialise the text encoder and embed the categories.

        Args:
            runner (Runner): The runner.
        """
        model = self._model(runner)
        if not hasattr(model, 'set_openset'):
            print_log(
                f'PrepareOpensetHook: {type(model).__name__} has no open '
                'set; nothing to prepare',
                logger='current',
                level=logging.WARNING)
            return
        categories = self.categories
        if categories is None and getattr(model, 'categories', None) is None:
            raise ValueError(
                f'PrepareOpensetHook: {type(model).__name__} has no '
                'categories; set model.categories in the config')
        text_encoder = getattr(model, 'text_encoder', None)
        if text_encoder is not None and not text_encoder.is_init:
            text_encoder.init_weights()
        model.set_openset(categories)


class _ModelOnceHook(Hook):
    """Changes the unwrapped model once, on the first ``before_test``."""

    def __init__(self) -> None:
        self._applied = False

    def apply(self, model) -> str:
        """Change ``model`` in place; return what to log."""
        raise NotImplementedError

    def before_test(self, runner) -> None:
        """Apply to the model once.

        Args:
            runner (Runner): The runner.
        """
        if self._applied:
            return
        model = runner.model
        model = model.module if is_model_wrapper(model) else model
        message = self.apply(model)
        self._applied = True
        print_log(f'{type(self).__name__}: {message}', logger='current')


@HOOKS.register_module()
class PrecisionHook(_ModelOnceHook):
    """Run the model's heavy towers in fp16 / bf16 during testing.

    Applied on ``before_test``, after the checkpoint is loaded (and after
    :class:`PrepareOpensetHook`, whose priority is higher), through
    :func:`mmprompt.models.utils.apply_precision`. ``tools/test.py
    --precision`` and a config's top-level ``precision = 'bf16'`` add it.

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
    """``torch.compile`` the model's frozen towers before testing.

    Applied on ``before_test``, after the checkpoint is loaded and after
    :class:`PrecisionHook` (whose priority is higher), through
    :func:`mmprompt.models.utils.compile_model`: the towers only, so the
    test step, data samples and metrics stay eager. ``tools/test.py
    --compile`` adds it. (MMEngine's own ``compile`` runner option compiles
    the whole test step instead.)

    Args:
        mode (str, optional): ``torch.compile`` mode, e.g.
            ``'reduce-overhead'`` for CUDA graphs. Defaults to None.
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
