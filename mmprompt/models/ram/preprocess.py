# Copyright (c) mmprompt contributors. All rights reserved.
"""RAM's normalisation as a data preprocessor.

RAM and RAM++ (``recognize-anything``, Apache-2.0, ``get_transform``) feed
the network torchvision's ``ToTensor`` + ``Normalize``: ``x / 255``, then
``(x - mean) / std`` with ImageNet's statistics in [0, 1]. MMPreTrain's
``ClsDataPreprocessor`` computes ``(x - 255 * mean) / (255 * std)``, which
is the same number in exact arithmetic but differs in float32 for 483 of
the 768 (value, channel) pairs, by up to 4.8e-7. :class:`RAMDataPreprocessor`
keeps RAM's order, so the pixels of
:class:`~mmprompt.datasets.RAMPreprocess` become RAM's input tensors bit for
bit.
"""
from typing import Sequence

import torch
from mmpretrain.models.utils.data_preprocessor import ClsDataPreprocessor

from mmprompt.registry import MODELS

# ImageNet's mean and std of RGB in [0, 1].
RAM_MEAN_01 = (0.485, 0.456, 0.406)
RAM_STD_01 = (0.229, 0.224, 0.225)
# The same in [0, 255], as MMPreTrain's data preprocessors take them.
RAM_MEAN = tuple(m * 255 for m in RAM_MEAN_01)
RAM_STD = tuple(s * 255 for s in RAM_STD_01)


@MODELS.register_module()
class RAMDataPreprocessor(ClsDataPreprocessor):
    """``ClsDataPreprocessor`` that normalises in RAM's order of operations.

    The images are flipped to RGB (``to_rgb``), made float, stacked, then
    divided by 255 and normalised with ``mean / 255`` and ``std / 255``
    (ImageNet's [0, 1] statistics, bit for bit). ``mean`` and ``std`` keep
    MMPreTrain's [0, 255] scale, for readers of ``data_preprocessor.mean``
    (the ONNX export). The normalisation comes after padding and batch
    augmentation, which RAM's inference uses neither of.

    Args:
        mean (Sequence[float]): Mean of R, G, B in [0, 255].
            Defaults to :data:`RAM_MEAN`.
        std (Sequence[float]): Std of R, G, B in [0, 255].
            Defaults to :data:`RAM_STD`.
        to_rgb (bool): Flip BGR inputs (``LoadImageFromFile``'s,
            :class:`~mmprompt.datasets.RAMPreprocess`'s) to RGB.
            Defaults to True.
        **kwargs: The other arguments of ``ClsDataPreprocessor``.
    """

    def __init__(self,
                 mean: Sequence[float] = RAM_MEAN,
                 std: Sequence[float] = RAM_STD,
                 to_rgb: bool = True,
                 **kwargs) -> None:
        super().__init__(mean=None, std=None, to_rgb=to_rgb, **kwargs)
        self.register_buffer('mean',
                             torch.tensor(mean).view(-1, 1, 1), False)
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
            data (dict): ``inputs`` (uint8 BGR images) and optionally
                ``data_samples``.
            training (bool): Whether batch augmentations apply.
                Defaults to False.

        Returns:
            dict: ``inputs`` as ``(N, 3, H, W)`` float32, and
            ``data_samples``.
        """
        data = super().forward(data, training)
        data['inputs'] = data['inputs'].div(255).sub(self.unit_mean).div(
            self.unit_std)
        return data
