# Copyright (c) mmprompt contributors. All rights reserved.
"""The model wrapper of distributed runs: DDP only where it has work to do.

MMEngine's Runner wraps every model in ``MMDistributedDataParallel`` with
``device_ids=[LOCAL_RANK]``. Two cases break: DDP refuses a module without a
parameter that requires a gradient (a frozen zero-shot CLIP, RAM), and it
refuses ``device_ids`` for a module on the CPU. :class:`DistributedWrapper`
returns the model itself when nothing is trained (each rank runs its share
of the data; there are no gradients to average), and otherwise
``MMDistributedDataParallel`` with ``device_ids`` only for a CUDA module.
"""
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

    ``DistributedWrapper(module=model, **kwargs)`` (what
    ``model_wrapper_cfg=dict(type='DistributedWrapper', ...)`` builds)
    returns:

    * ``module`` unchanged if it has no trainable parameter, or if
      ``training=False`` (``tools/test.py``: an evaluation computes no
      gradient, even for a model whose weights could be trained);
    * else ``MMDistributedDataParallel(module, device_ids=..., **kwargs)``,
      with ``device_ids=[LOCAL_RANK]`` for a CUDA module and none on CPU.

    It deliberately does not subclass ``DistributedDataParallel``: the
    Runner would then force ``device_ids`` on it.

    Args:
        module (nn.Module): The model, already on its device.
        training (bool): Whether the run trains. Defaults to True.
        **kwargs: Passed to ``MMDistributedDataParallel``
            (``find_unused_parameters``, ``broadcast_buffers``, ...).
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


# The Runner looks the wrapper type up with ``get`` on MMEngine's root
# registry, which searches neither the default scope nor grandchildren
# (mmprompt sits under mmpretrain): the class must be in the root as well.
if 'DistributedWrapper' not in MMENGINE_MODEL_WRAPPERS.module_dict:
    MMENGINE_MODEL_WRAPPERS.register_module(module=DistributedWrapper)
