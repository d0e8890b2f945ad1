# Copyright (c) mmprompt contributors. All rights reserved.
"""A ViT pooled by attention over its patch tokens (SigLIP's image tower).

SigLIP (`Zhai et al., 2023 <https://arxiv.org/abs/2303.15343>`_) and
SigLIP 2 use a ViT without class token whose final-normed patch tokens are
pooled by a multi-head attention probe (the "MAP" head), as timm's
``VisionTransformer(class_token=False, global_pool='map')`` (Apache-2.0).
Here the transformer is MMPreTrain's ``VisionTransformer`` and the head is
:class:`~mmprompt.models.utils.AttentionPool`.
"""
import copy
from typing import Optional, Tuple

import torch
from mmpretrain.models import VisionTransformer

from mmprompt.registry import MODELS


@MODELS.register_module()
class MAPVisionTransformer(VisionTransformer):
    """MMPreTrain's ViT without class token, pooled by an attention head.

    The patch tokens after the last block and the final LayerNorm go
    through ``attn_pool``; the pooled feature is the tower's output, already
    in the joint embedding space (no projection follows in SigLIP).

    Args:
        attn_pool (dict, optional): Config of the pooling head, built with
            ``MODELS``; ``in_features`` defaults to the tower's width.
            Defaults to ``dict(type='AttentionPool', num_heads=<the
            tower's heads>, mlp_ratio=<feedforward / width>)``, timm's
            head for the same ViT.
        **kwargs: Arguments of MMPreTrain's ``VisionTransformer`` except
            ``with_cls_token`` and ``out_type`` (no class token, patch
            tokens into the head).
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
        """Pooled features of images.

        Args:
            x (torch.Tensor): Images, ``(N, 3, H, W)``.

        Returns:
            tuple[torch.Tensor]: One ``(N, C)`` tensor, the pooled feature.
        """
        return (self.attn_pool(super().forward(x)[-1]), )
