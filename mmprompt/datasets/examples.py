# Copyright (c) mmprompt contributors. All rights reserved.
"""Example images of a zero-shot classifier, read and preprocessed as the
model's inputs are, for :meth:`CLIPZeroShot.set_examples
<mmprompt.models.clip.CLIPZeroShot.set_examples>`."""
import os
import os.path as osp
from typing import Any, Dict, List, Sequence, Tuple, Union

import torch

from mmprompt.utils.errors import InputTypeError, InvalidInputError
from .image_sources import IMAGE_EXTENSIONS
from .transforms import CLIPPreprocess


def folder_examples(folder: str) -> Dict[str, List[str]]:
    """``{subfolder name: its image files}`` of a folder."""
    if not osp.isdir(folder):
        raise InvalidInputError(f'examples folder {folder!r} does not exist')
    spec = {}
    for name in sorted(os.listdir(folder)):
        sub = osp.join(folder, name)
        if osp.isdir(sub):
            spec[name] = [
                osp.join(sub, f) for f in sorted(os.listdir(sub))
                if f.lower().endswith(IMAGE_EXTENSIONS)
            ]
    return spec


def resolve_examples(spec: Any,
                     categories: Sequence[str]) -> Dict[int, List[Any]]:
    """``{label: list of images}`` of the categories that have examples.

    Args:
        spec (str | dict, optional): ``{category name: images}`` (paths,
            PIL images, BGR arrays), or a folder of category folders.
        categories (Sequence[str]): Category names in label order.
    """
    if spec is None:
        return {}
    if isinstance(spec, str):
        spec = folder_examples(spec)
    if not isinstance(spec, dict):
        raise InputTypeError('examples must be a dict {category: list of '
                             'images} or a folder, got '
                             f'{type(spec).__name__}')
    labels = {}
    for i, name in enumerate(categories):
        labels.setdefault(name, []).append(i)
    unknown = [k for k in spec if k not in labels]
    if unknown:
        raise InvalidInputError(
            f'examples given for unknown categories: {unknown}')
    out = {}
    for name, images in spec.items():
        if isinstance(images,
                      (str, bytes)) or not isinstance(images, Sequence):
            images = [images]
        if len(images):
            for label in labels[name]:
                out[label] = list(images)
    return dict(sorted(out.items()))


def load_example_images(
        spec: Any, categories: Sequence[str],
        image_size: Union[int, dict]) -> Tuple[List[torch.Tensor], List[int]]:
    """``(images, labels)``: example images decoded and preprocessed into
    ``(3, S, S)`` uint8 BGR tensors (as ``PackInputs`` gives them).

    Args:
        spec (str | dict, optional): See :func:`resolve_examples`.
        categories (Sequence[str]): Category names in label order.
        image_size (int | dict): The input side or ``model.preprocess_args``.
    """
    examples = resolve_examples(spec, categories)
    args = image_size if isinstance(image_size, dict) else dict(
        scale=image_size)
    transform = CLIPPreprocess(**args)
    images, labels = [], []
    for label, items in examples.items():
        for item in items:
            key = 'img_path' if isinstance(item, str) else 'img'
            pixels = transform({key: item})['img']
            images.append(torch.from_numpy(pixels).permute(2, 0, 1))
            labels.append(label)
    return images, labels
