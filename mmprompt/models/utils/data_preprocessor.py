# Copyright (c) mmprompt contributors. All rights reserved.
import copy
from typing import Optional, Sequence, Union

import torch.nn as nn

from mmprompt.registry import MODELS


def build_cls_preprocessor(cfg: Optional[Union[dict, nn.Module]],
                           mean: Sequence[float],
                           std: Sequence[float]) -> nn.Module:
    """Build a model's data preprocessor, MMPreTrain's by default.

    Args:
        cfg (dict | nn.Module, optional): A built module, a config (of
            ``ClsDataPreprocessor`` if it has no ``type``), or None for
            ``ClsDataPreprocessor`` with ``mean``, ``std`` and ``to_rgb``.
        mean (Sequence[float]): Default mean of RGB in [0, 255].
        std (Sequence[float]): Default std of RGB in [0, 255].

    Returns:
        nn.Module: The data preprocessor.
    """
    if isinstance(cfg, nn.Module):
        return cfg
    cfg = copy.deepcopy(cfg) if cfg is not None else dict(
        mean=list(mean), std=list(std), to_rgb=True)
    cfg.setdefault('type', 'ClsDataPreprocessor')
    return MODELS.build(cfg)
