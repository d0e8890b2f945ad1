# Copyright (c) mmprompt contributors. All rights reserved.
"""What the inferencers and the tools share: prompt checks, speed-ups and
the kept vocabularies."""
import contextlib
import threading
from collections import OrderedDict
from typing import Any, Callable, Iterator, Union

import numpy as np
import torch
from mmengine.model import BaseModel

from mmprompt.models.utils import apply_precision, compile_model
from mmprompt.utils.errors import InputTypeError, InvalidInputError, UserError


def speed_up(model: BaseModel,
             precision: str = 'fp32',
             compile: Union[bool, str] = False) -> BaseModel:
    """The inferencers' ``precision=`` and ``compile=``, in place.

    Args:
        model (BaseModel): A model ready for inference.
        precision (str): See :func:`mmprompt.models.utils.apply_precision`.
            Defaults to ``'fp32'``.
        compile (bool | str): True, or a ``torch.compile`` mode, to run
            :func:`mmprompt.models.utils.compile_model` after the cast.
            Defaults to False.
    """
    apply_precision(model, precision)
    if compile:
        compile_model(model, mode=None if compile is True else compile)
    return model


@contextlib.contextmanager
def prompt_errors() -> Iterator[None]:
    """The models' refusals of categories and templates (``ValueError``,
    ``TypeError``, each one line) as :class:`InvalidInputError`."""
    try:
        yield
    except (ValueError, TypeError) as e:
        if isinstance(e, UserError):
            raise
        raise InvalidInputError(f'--categories / --templates: {e}') from None


def check_prompts(categories: Any = None,
                  templates: Any = None,
                  open_set: bool = False) -> None:
    """Refuse, before a model is built, the categories and templates it
    would refuse, with its own checks (see :func:`prompt_errors`).

    Args:
        categories (str | Sequence, optional): As the zero-shot classifier
            or, with ``open_set``, RAM's open set takes them. Defaults to
            None (not checked).
        templates (str | Sequence[str], optional): Likewise. Defaults to
            None.
        open_set (bool): Check as RAM's open set. Defaults to False.
    """
    from mmprompt.models.clip.prompts import (resolve_categories,
                                              resolve_templates)
    from mmprompt.models.ram.label_embedding import (load_categories,
                                                     resolve_ram_templates,
                                                     split_categories)
    with prompt_errors():
        if categories is not None:
            if open_set:
                split_categories(load_categories(categories))
            else:
                resolve_categories(categories)
        if templates is not None:
            (resolve_ram_templates if open_set else resolve_templates)(
                templates)


def check_count(value: Any, name: str) -> int:
    """A positive int (not a bool), or a clear error."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InputTypeError(
            f'{name} must be a positive integer, not {value!r}')
    if value < 1:
        raise InvalidInputError(
            f'{name} must be a positive integer, got {value}')
    return int(value)


def weights_state(model: torch.nn.Module) -> int:
    """The sum of the parameters' version counters: it changes when any
    parameter is changed in place (a weights load)."""
    return sum(p._version for p in model.parameters())


class InferencerMixin:
    """What both inferencers share: inputs as a list, no visualisation, and
    the last :attr:`cache_size` vocabularies, kept by what built them and
    the state of the weights (call :meth:`_init_cache` in ``__init__``)."""
    #: How many vocabularies are kept.
    cache_size: int = 8

    def _init_cache(self) -> None:
        self._vocabularies: 'OrderedDict[tuple, Any]' = OrderedDict()
        self._lock = threading.Lock()

    def _cached(self, key: tuple, build: Callable[[], Any]) -> Any:
        key = (weights_state(self.model), key)
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

    @torch.no_grad()
    def forward(self, data: dict, vocabulary: Any = None, **kwargs) -> list:
        """Predict a collated batch against ``vocabulary``."""
        data = self.model.data_preprocessor(data, False)
        return self.model.predict(
            data['inputs'], data.get('data_samples'), vocabulary=vocabulary)

    def _inputs_to_list(self, inputs: Any) -> list:
        return list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]

    def visualize(self, inputs: list, preds: list, **kwargs) -> None:
        return None
