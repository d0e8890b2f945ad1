# Copyright (c) mmprompt contributors. All rights reserved.
"""Model building and speed-ups shared by the inferencers."""
from typing import Optional, Union

import torch
from mmengine.config import Config
from mmengine.model import BaseModel
from mmengine.registry import DefaultScope

from mmprompt.models.utils import apply_precision, compile_model


def build_from_config(cfg: Config,
                      model_cfg: Optional[dict] = None) -> BaseModel:
    """Build ``cfg.model`` in the mmprompt scope; keep ``cfg`` on it.

    Args:
        cfg (Config): A config with a ``model`` dict.
        model_cfg (dict, optional): What to build instead of ``cfg.model``
            (it, less the keys the caller handles). Defaults to None.

    Returns:
        BaseModel: The model, with ``_config`` set to ``cfg``.
    """
    from mmprompt.registry import MODELS
    from mmprompt.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    with DefaultScope.overwrite_default_scope('mmprompt'):
        model = MODELS.build(cfg.model if model_cfg is None else model_cfg)
    model._config = cfg
    return model


def ready_for_inference(
        model: BaseModel,
        device: Optional[Union[str, torch.device]] = None) -> BaseModel:
    """Give a model the ``_config`` MMPreTrain's inferencers read, move it
    to ``device`` and switch it to eval mode.

    Args:
        model (BaseModel): A built model.
        device (str | torch.device, optional): Where to run. Defaults to
            None (where it is).

    Returns:
        BaseModel: ``model``.
    """
    if not hasattr(model, '_config'):
        model._config = Config(dict(model=dict(type=type(model).__name__)))
    if device is not None:
        model.to(device)
    return model.eval()


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
