# Copyright (c) mmprompt contributors. All rights reserved.
"""Prompt checks and speed-ups shared by the inferencers and the tools."""
import contextlib
from typing import Any, Iterator, Union

from mmengine.model import BaseModel

from mmprompt.models.utils import apply_precision, compile_model
from mmprompt.utils.errors import InvalidInputError, UserError


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

    Returns:
        BaseModel: ``model``.
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
    would refuse, with its own checks: blank or repeated names, templates
    without exactly one ``{}``.

    Args:
        categories (str | Sequence, optional): As the zero-shot classifier
            (:func:`~mmprompt.models.clip.prompts.resolve_categories`) or,
            with ``open_set``, RAM's open set takes them
            (:func:`~mmprompt.models.ram.label_embedding.load_categories`).
            Defaults to None (not checked).
        templates (str | Sequence[str], optional): Likewise. Defaults to
            None.
        open_set (bool): Check as RAM's open set. Defaults to False.

    Raises:
        InvalidInputError: One line, prefixed ``--categories /
            --templates``.
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
