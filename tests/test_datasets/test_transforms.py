# Copyright (c) mmprompt contributors. All rights reserved.
"""Our pipeline gives open_clip's (= OpenAI's) pixels to 1e-6."""
import os.path as osp

import numpy as np
import pytest
import torch
from mmcv.transforms import Compose
from mmengine.config import Config
from PIL import Image

from mmprompt.datasets import CLIPPreprocess
from mmprompt.registry import MODELS

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
MODEL_CFG = osp.join(REPO_ROOT, 'configs', '_base_', 'models',
                     'clip_vit-base-p16.py')


def photo_like(h, w, seed):
    """Smooth colour structures plus sensor-like noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    channels = [
        128 + 90 * np.sin(x / (9 + 5 * c) + c) * np.cos(y / (13 + 3 * c) - c)
        for c in range(3)
    ]
    img = np.stack(channels, -1) + rng.normal(0, 18, (h, w, 3))
    img[h // 3:h // 2, w // 4:w // 2] = (250, 30, 40)  # a sharp edge
    return np.clip(img, 0, 255).astype(np.uint8)


def make_images(root):
    """(path, description) of JPEG/PNG files in several modes and sizes."""
    rng = np.random.default_rng(1)
    cases = []

    def save(name, image, **kwargs):
        path = str(root / name)
        image.save(path, **kwargs)
        cases.append(path)

    save('landscape.jpg', Image.fromarray(photo_like(480, 640, 0)), quality=90)
    save('tall_odd.jpg', Image.fromarray(photo_like(1001, 223, 1)))
    save('gray.png', Image.fromarray(photo_like(333, 251, 2)).convert('L'))
    rgba = Image.fromarray(photo_like(300, 300, 3)).convert('RGBA')
    rgba.putalpha(
        Image.fromarray(rng.integers(0, 256, (300, 300), dtype=np.uint8)))
    save('rgba.png', rgba)
    save('palette.png',
         Image.fromarray(photo_like(250, 397, 4)).quantize(colors=64))
    save('exact.png', Image.fromarray(photo_like(224, 224, 5)))
    save('tiny.png', Image.fromarray(photo_like(32, 32, 6)))
    return cases


@pytest.fixture(scope='module')
def data_preprocessor():
    cfg = Config.fromfile(MODEL_CFG)
    return MODELS.build(cfg.model.data_preprocessor)


@pytest.fixture(scope='module')
def open_clip_preprocess():
    open_clip = pytest.importorskip('open_clip')
    return open_clip.image_transform(224, is_train=False)


def ours(data_preprocessor, results, scale=224, **kwargs):
    pipeline = Compose([
        dict(type='CLIPPreprocess', scale=scale, **kwargs),
        dict(type='PackInputs')
    ])
    packed = pipeline(results)
    out = data_preprocessor(
        dict(inputs=[packed['inputs']], data_samples=[packed['data_samples']]))
    return out['inputs'][0]


def test_files_match_open_clip(tmp_path, data_preprocessor,
                               open_clip_preprocess):
    diffs = {}
    for path in make_images(tmp_path):
        want = open_clip_preprocess(Image.open(path))
        got = ours(data_preprocessor, dict(img_path=path))
        assert got.shape == want.shape == (3, 224, 224)
        diffs[osp.basename(path)] = (got - want).abs().max().item()
    assert max(diffs.values()) < 1e-6, diffs
    assert len(diffs) == 7


def test_pil_and_arrays_match_open_clip(tmp_path, data_preprocessor,
                                        open_clip_preprocess):
    rgb = photo_like(200, 300, 7)
    want = open_clip_preprocess(Image.fromarray(rgb))
    for results, kwargs in [
        (dict(img=Image.fromarray(rgb)), {}),
        (dict(img=np.ascontiguousarray(rgb[..., ::-1])), {}),
        (dict(img=rgb.copy()), dict(array_order='rgb')),
    ]:
        got = ours(data_preprocessor, results, **kwargs)
        torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    gray = rgb[..., 0].copy()
    want = open_clip_preprocess(Image.fromarray(gray))
    got = ours(data_preprocessor, dict(img=gray))
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)


def test_cifar_arrays_336(data_preprocessor):
    """CIFAR gives 32x32 RGB arrays; open_clip sees PIL images of them."""
    open_clip = pytest.importorskip('open_clip')
    preprocess = open_clip.image_transform(336, is_train=False)
    rgb = photo_like(32, 32, 8)
    want = preprocess(Image.fromarray(rgb))
    got = ours(data_preprocessor, dict(img=rgb), scale=336, array_order='rgb')
    assert got.shape == (3, 336, 336)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)


def test_output_is_bgr_uint8():
    rgb = photo_like(64, 96, 9)
    out = CLIPPreprocess(scale=32, array_order='rgb')(dict(img=rgb))
    assert out['img'].shape == (32, 32, 3) and out['img'].dtype == np.uint8
    assert out['ori_shape'] == (64, 96) and out['img_shape'] == (32, 32)
    # A pure-red image stays red: BGR channel 2 holds it.
    red = np.zeros((40, 40, 3), np.uint8)
    red[..., 0] = 255
    out = CLIPPreprocess(scale=8, array_order='rgb')(dict(img=red))
    assert (out['img'][..., 2] == 255).all() and (out['img'][..., 0]
                                                  == 0).all()


def test_bad_inputs(tmp_path):
    bad = tmp_path / 'broken.jpg'
    bad.write_bytes(b'not an image at all')
    with pytest.raises(ValueError, match='broken.jpg'):
        CLIPPreprocess()(dict(img_path=str(bad)))
    with pytest.raises(ValueError, match='missing.png'):
        CLIPPreprocess()(dict(img_path=str(tmp_path / 'missing.png')))
    with pytest.raises(ValueError, match='uint8'):
        CLIPPreprocess()(dict(img=np.zeros((4, 4, 3), np.float32)))
    with pytest.raises(TypeError, match='PIL image or a numpy array'):
        CLIPPreprocess()(dict(img=[[1, 2]]))
    with pytest.raises(ValueError, match='array_order'):
        CLIPPreprocess(array_order='rbg')
