# Copyright (c) mmprompt contributors. All rights reserved.
"""RAM's normalisation (``recognize-anything``'s ``get_transform``,
Apache-2.0) as a data preprocessor."""
from typing import Sequence

import torch
from mmpretrain.models.utils.data_preprocessor import ClsDataPreprocessor

from mmprompt.registry import MODELS

# ImageNet's mean and std of RGB in [0, 255].
RAM_MEAN = tuple(m * 255 for m in (0.485, 0.456, 0.406))
RAM_STD = tuple(s * 255 for s in (0.229, 0.224, 0.225))


@MODELS.register_module()
class RAMDataPreprocessor(ClsDataPreprocessor):
    """``ClsDataPreprocessor`` normalising in RAM's order of operations.

    RAM computes ``(x / 255 - mean) / std`` with [0, 1] statistics;
    MMPreTrain's ``(x - 255 * mean) / (255 * std)`` differs in float32 by up
    to 4.8e-7, so this keeps RAM's order and its inputs bit for bit.

    Args:
        mean (Sequence[float]): RGB mean in [0, 255]. Defaults to RAM's.
        std (Sequence[float]): RGB std in [0, 255]. Defaults to RAM's.
        to_rgb (bool): Flip BGR inputs to RGB. Defaults to True.
        **kwargs: The other arguments of ``ClsDataPreprocessor``.
    """

    def __init__(self,
                 mean: Sequence[float] = RAM_MEAN,
                 std: Sequence[float] = RAM_STD,
                 to_rgb: bool = True,
                 **kwargs) -> None:
        super().__init__(mean=None, std=None, to_rgb=to_rgb, **kwargs)
        self.register_buffer('mean', torch.tensor(mean).view(-1, 1, 1), False)
        self.register_buffer('std', torch.tensor(std).view(-1, 1, 1), False)
        # Divided in float64, then rounded: float32(123.675 / 255) is
        # float32(0.485), RAM's constant.
        self.register_buffer(
            'unit_mean',
            torch.tensor([m / 255 for m in mean]).view(-1, 1, 1), False)
        self.register_buffer(
            'unit_std',
            torch.tensor([s / 255 for s in std]).view(-1, 1, 1), False)

    def forward(self, data: dict, training: bool = False) -> dict:
        """``ClsDataPreprocessor``'s steps, then RAM's normalisation.

        Args:
            data (dict): ``inputs`` (uint8 images), ``data_samples``.
            training (bool): Whether batch augmentations apply.
                Defaults to False.
        """
        data = super().forward(data, training)
        data['inputs'] = data['inputs'].div(255).sub(self.unit_mean).div(
            self.unit_std)
        return data
