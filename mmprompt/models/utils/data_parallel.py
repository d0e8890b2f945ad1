# Copyright (c) mmprompt contributors. All rights reserved.
"""The model wrapper of distributed runs: DDP only where it has work to do
(DDP refuses a frozen model, and ``device_ids`` for a CPU one)."""
import os
from typing import Any

import torch.nn as nn
from mmengine.model import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS

from mmprompt.registry import MODEL_WRAPPERS


def has_trainable_parameters(module: nn.Module) -> bool:
    """Whether any parameter of ``module`` requires a gradient."""
    return any(p.requires_grad for p in module.parameters())


@MODEL_WRAPPERS.register_module()
class DistributedWrapper:
    """Wrap a model for a distributed run; a factory, not a module.

    Returns ``module`` unchanged if it has no trainable parameter or
    ``training=False``, else ``MMDistributedDataParallel`` with
    ``device_ids=[LOCAL_RANK]`` for a CUDA module and none on CPU. Not a
    ``DistributedDataParallel`` subclass: the Runner would force
    ``device_ids`` on it.

    Args:
        module (nn.Module): The model, already on its device.
        training (bool): Whether the run trains. Defaults to True.
        **kwargs: Passed to ``MMDistributedDataParallel``.
    """

    def __new__(cls,
                module: nn.Module,
                training: bool = True,
                **kwargs: Any) -> nn.Module:
        if not training or not has_trainable_parameters(module):
            return module
        device = next(module.parameters()).device
        if device.type == 'cuda':
            kwargs.setdefault('device_ids',
                              [int(os.environ.get('LOCAL_RANK', 0))])
        else:
            kwargs.pop('device_ids', None)
        return MMDistributedDataParallel(module=module, **kwargs)


# The Runner looks wrappers up in MMEngine's root registry, which does not
# search grandchildren (mmprompt sits under mmpretrain).
if 'DistributedWrapper' not in MMENGINE_MODEL_WRAPPERS.module_dict:
    MMENGINE_MODEL_WRAPPERS.register_module(module=DistributedWrapper)
