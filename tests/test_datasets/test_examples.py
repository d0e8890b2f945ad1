# Copyright (c) mmprompt contributors. All rights reserved.
"""Example images for CLIPZeroShot, read by its callers."""
import numpy as np
import pytest
import torch
from PIL import Image

from mmprompt.datasets import (CLIPPreprocess, load_example_images,
                               resolve_examples)
from mmprompt.utils.errors import (ImageDecodeError, InputTypeError,
                                   InvalidInputError)


def test_folder_and_dict_map_to_labels(tmp_path):
    rng = np.random.default_rng(0)
    for name in ('owl', 'cat'):
        (tmp_path / name).mkdir()
        for i in range(2):
            pixels = rng.integers(0, 255, (30 + i, 40, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / name / f'{i}.png')
    (tmp_path / 'cat' / 'notes.txt').write_text('not an image')
    categories = ['cat', 'dog', 'owl']
    found = resolve_examples(str(tmp_path), categories)
    assert list(found) == [0, 2] and [len(v) for v in found.values()] == [2, 2]
    images, labels = load_example_images(str(tmp_path), categories, 16)
    assert labels == [0, 0, 2, 2]
    want = CLIPPreprocess(scale=16)(dict(
        img_path=str(tmp_path / 'cat' / '1.png')))['img']
    assert torch.equal(images[1], torch.from_numpy(want).permute(2, 0, 1))
    # A repeated name maps to every label it has; an array is an image.
    array = rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)
    assert resolve_examples({'a': array}, ['a', 'b', 'a']).keys() == {0, 2}
    assert load_example_images(None, categories, 16) == ([], [])


def test_bad_examples_are_user_errors(tmp_path):
    with pytest.raises(InvalidInputError, match='does not exist'):
        resolve_examples(str(tmp_path / 'nowhere'), ['cat'])
    with pytest.raises(InvalidInputError, match=r"unknown categories: \['x'"):
        resolve_examples({'x': ['a.png']}, ['cat'])
    with pytest.raises(InputTypeError, match='got int'):
        resolve_examples(3, ['cat'])
    broken = tmp_path / 'broken.png'
    broken.write_bytes(b'nope')
    with pytest.raises(ImageDecodeError, match='broken.png'):
        load_example_images({'cat': [str(broken)]}, ['cat'], 16)
