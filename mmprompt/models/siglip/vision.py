# Copyright (c) mmprompt contributors. All rights reserved.
"""SigLIP's image tower: timm's ``VisionTransformer(class_token=False,
global_pool='map')`` on MMPreTrain's ``VisionTransformer``."""
import copy
from typing import Optional, Tuple

import torch
from mmpretrain.models import VisionTransformer

from mmprompt.registry import MODELS


@MODELS.register_module()
class MAPVisionTransformer(VisionTransformer):
    """MMPreTrain's ViT without class token, its normed patch tokens
    pooled by ``attn_pool`` into the joint space.

    Args:
        attn_pool (dict, optional): Config of the pooling head. Defaults to
            timm's: ``AttentionPool`` with the tower's width, heads and MLP
            ratio.
        **kwargs: Arguments of MMPreTrain's ``VisionTransformer`` except
            ``with_cls_token`` and ``out_type``.
    """

    #: The output is pooled by the tower itself (see :class:`CLIP`).
    pooled_by = 'attn_pool'

    def __init__(self, attn_pool: Optional[dict] = None, **kwargs) -> None:
        for key in ('with_cls_token', 'out_type'):
            if key in kwargs:
                raise TypeError(f'{type(self).__name__} sets {key} itself')
        super().__init__(with_cls_token=False, out_type='raw', **kwargs)
        settings = self.arch_settings
        head = dict(
            type='AttentionPool',
            num_heads=settings['num_heads'],
            mlp_ratio=settings['feedforward_channels'] / self.embed_dims)
        head.update(copy.deepcopy(attn_pool or {}))
        head.setdefault('in_features', self.embed_dims)
        self.attn_pool = MODELS.build(head)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor]:
        """The pooled ``(N, C)`` features of images ``(N, 3, H, W)``."""
        return (self.attn_pool(super().forward(x)[-1]), )
