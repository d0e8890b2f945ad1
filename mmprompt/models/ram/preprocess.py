# Copyright (c) mmprompt contributors. All rights reserved.
"""RAM's image preprocessing.

RAM and RAM++ (``recognize-anything``, ``get_transform``) feed the network
an RGB image resized to a square with PIL's bilinear filter (aspect ratio not
kept, no crop), scaled to [0, 1] and normalised with ImageNet's mean and std.
:func:`ram_preprocess` does exactly that on one image, for the API and the
demo; in configs the same normalisation is the model's
``data_preprocessor`` (:data:`RAM_MEAN`, :data:`RAM_STD` on [0, 255]).
"""
from typing import Union

import numpy as np
import torch
from PIL import Image

from mmprompt.utils.image_io import decode_image

# ImageNet's mean and std of RGB in [0, 1].
RAM_MEAN_01 = (0.485, 0.456, 0.406)
RAM_STD_01 = (0.229, 0.224, 0.225)
# The same in [0, 255], as MMPreTrain's data preprocessors take them.
RAM_MEAN = tuple(m * 255 for m in RAM_MEAN_01)
RAM_STD = tuple(s * 255 for s in RAM_STD_01)


def ram_preprocess(image: Union[str, Image.Image, np.ndarray],
                   image_size: int = 384) -> torch.Tensor:
    """Turn one image into RAM's input tensor.

    The steps are RAM's, after mmprompt's one decoder
    (:func:`mmprompt.utils.image_io.decode_image`: pixel budget, EXIF
    orientation, 16-bit scaling): ``convert('RGB')`` (grey replicated,
    alpha dropped without compositing), a PIL bilinear (antialiased)
    resize to ``image_size x image_size``, division by 255, then
    ``(x - mean) / std`` with ImageNet's statistics.

    Args:
        image (str | PIL.Image.Image | np.ndarray): An image, the path of
            one, or an RGB(A) / grayscale array.
        image_size (int): Side of the square input. Defaults to 384.

    Returns:
        torch.Tensor: ``(3, image_size, image_size)``, float32.
    """
    image = decode_image(image, mode='RGB')
    image = image.resize((image_size, image_size), Image.BILINEAR)
    pixels = torch.from_numpy(np.array(image, dtype=np.uint8))
    x = pixels.permute(2, 0, 1).float().div(255)
    mean = torch.tensor(RAM_MEAN_01).view(3, 1, 1)
    std = torch.tensor(RAM_STD_01).view(3, 1, 1)
    return x.sub(mean).div(std)
