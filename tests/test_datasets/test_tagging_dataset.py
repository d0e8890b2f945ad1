# Copyright (c) mmprompt contributors. All rights reserved.
"""RAMPreprocess + RAMDataPreprocessor (RAM's exact input tensors) and
TaggingDataset (RAM's annotation format, tag mapping, errors)."""
import os.path as osp

import numpy as np
import pytest
import torch
from mmcv.transforms import Compose
from mmengine.dataset import default_collate, pseudo_collate
from PIL import Image, ImageOps

from mmprompt.datasets import RAMPreprocess, TaggingDataset, ram_resize
from mmprompt.datasets.ram_transforms import ram_pipeline
from mmprompt.datasets.transforms import build_pipeline
from mmprompt.registry import MODELS

IMAGES = ('img0_rgb_320x240.png', 'img1_gray_500x300.png')


def ram_inputs(paths, collate=default_collate) -> torch.Tensor:
    """RAM's test pipeline, then its data preprocessor (the config's)."""
    pipeline = build_pipeline(ram_pipeline(384))
    preprocessor = MODELS.build(dict(type='RAMDataPreprocessor'))
    data = collate([pipeline(dict(img_path=p)) for p in paths])
    return preprocessor(data)['inputs']


def reference_inputs(paths) -> torch.Tensor:
    """recognize-anything's ``get_transform(384)`` on ``Image.open``."""
    transforms = pytest.importorskip('torchvision.transforms')
    transform = transforms.Compose([
        lambda image: image.convert('RGB'),
        transforms.Resize((384, 384)),
        transforms.ToTensor(),
        transforms.Normalize(
            mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
    ])
    out = []
    for path in paths:
        with Image.open(path) as image:
            out.append(transform(image))
    return torch.stack(out)


def test_reference_input_tensors_bit_for_bit(ram_vectors_dir, tmp_path):
    """RAMPreprocess + RAMDataPreprocessor give RAM's input tensors exactly:
    the stored reference inputs, and RAM's own transform on odd sizes,
    RGBA, grey, palette and CMYK files; on an EXIF-rotated photo RAM's
    transform of the upright image (RAM itself ignores the orientation).
    MMPreTrain's ClsDataPreprocessor is off by up to 4.8e-7."""
    names = [osp.join(ram_vectors_dir, 'images', n) for n in IMAGES]
    stored = torch.load(
        osp.join(ram_vectors_dir, 'inputs.pth'), weights_only=True)['images']
    for collate in (default_collate, pseudo_collate):
        assert torch.equal(ram_inputs(names, collate), stored)
    rng = np.random.default_rng(0)
    base = Image.open(names[0]).convert('RGB')
    variants = dict(
        odd=base.resize((37, 53)),
        rgba=Image.fromarray(rng.integers(0, 255, (41, 29, 4), np.uint8)),
        grey=base.convert('L'),
        palette=base.convert('P'),
        cmyk=base.convert('CMYK'))
    paths = []
    for name, image in variants.items():
        suffix = '.jpg' if name == 'cmyk' else '.png'
        paths.append(str(tmp_path / (name + suffix)))
        image.save(paths[-1])
    assert torch.equal(ram_inputs(paths), reference_inputs(paths))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees"
    rotated = str(tmp_path / 'rotated.jpg')
    base.save(rotated, exif=exif.tobytes(), quality=95)
    upright = str(tmp_path / 'upright.png')
    ImageOps.exif_transpose(Image.open(rotated)).save(upright)
    assert torch.equal(ram_inputs([rotated]), reference_inputs([upright]))
    old = MODELS.build(
        dict(
            type='ClsDataPreprocessor',
            mean=[123.675, 116.28, 103.53],
            std=[58.395, 57.12, 57.375],
            to_rgb=True))
    pipeline = build_pipeline(ram_pipeline(384))
    close = old(default_collate([pipeline(dict(img_path=names[0]))]))
    diff = (close['inputs'] - stored[:1]).abs().max().item()
    assert 0 < diff < 1e-6


def photo_variants(ram_vectors_dir, tmp_path):
    """Files MMPreTrain's LoadImageFromFile decodes unlike RAM (PIL)."""
    base = Image.open(osp.join(ram_vectors_dir, 'images', IMAGES[0]))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees" orientation tag
    rotated = str(tmp_path / 'rotated.jpg')
    base.save(rotated, exif=exif.tobytes(), quality=95)
    cmyk = str(tmp_path / 'cmyk.jpg')
    base.convert('CMYK').save(cmyk)
    grey16 = str(tmp_path / 'grey16.png')
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 65535,
                                 (60, 80)).astype(np.uint16)).save(grey16)
    return [rotated, cmyk, grey16]


def ram_reference_pixels(path: str) -> np.ndarray:
    """RAM's own recipe: PIL ``convert('RGB')``, no EXIF, 16 bits clipped."""
    with Image.open(path) as img:
        image = img.convert('RGB').resize((384, 384), Image.BILINEAR)
    return np.asarray(image)


def test_one_decoder_where_ram_and_mmpretrain_differ(ram_vectors_dir,
                                                     tmp_path):
    """RAMPreprocess against RAM's own code: equal on a CMYK JPEG (which
    MMPreTrain's OpenCV loader decodes differently), different on purpose on
    a rotated photo (we apply the EXIF orientation) and on 16-bit grayscale
    (we scale, RAM clips 99.6 % of the pixels to white)."""
    ours = RAMPreprocess(scale=384)
    mmpretrain = Compose([
        dict(type='LoadImageFromFile'),
        dict(
            type='Resize',
            scale=(384, 384),
            interpolation='bilinear',
            backend='pillow')
    ])
    rotated, cmyk, grey16 = photo_variants(ram_vectors_dir, tmp_path)
    got = ours(dict(img_path=cmyk))['img'][..., ::-1]  # BGR -> RGB
    np.testing.assert_array_equal(got, ram_reference_pixels(cmyk))
    other = mmpretrain(dict(img_path=cmyk))['img'][..., ::-1]
    assert np.abs(other.astype(int) - got).max() > 0
    upright = ours(dict(img_path=rotated))['img'][..., ::-1]
    with Image.open(rotated) as img:
        transposed = img.transpose(
            Image.Transpose.ROTATE_270).convert('RGB').resize((384, 384),
                                                              Image.BILINEAR)
    np.testing.assert_array_equal(upright, np.asarray(transposed))
    grey = ours(dict(img_path=grey16))['img']
    assert (ram_reference_pixels(grey16) == 255).mean() > 0.98
    assert (grey == 255).mean() < 0.01 and 100 < grey.mean() < 155


def test_in_memory_inputs_and_errors(ram_vectors_dir, tmp_path):
    path = osp.join(ram_vectors_dir, 'images', IMAGES[0])
    pil = Image.open(path)
    rgb = np.asarray(pil.convert('RGB'))
    expected = ram_resize(pil, 64)
    for transform, image in [(RAMPreprocess(64), pil),
                             (RAMPreprocess(64), rgb[..., ::-1].copy()),
                             (RAMPreprocess(64, array_order='rgb'), rgb)]:
        out = transform(dict(img=image))
        np.testing.assert_array_equal(out['img'][..., ::-1], expected)
        assert out['img_shape'] == (64, 64) and out['ori_shape'] == (240, 320)
    grey = RAMPreprocess(32)(dict(img=np.zeros((5, 7), np.uint8)))['img']
    assert grey.shape == (32, 32, 3)
    broken = tmp_path / 'broken.png'
    broken.write_bytes(b'nope')
    with pytest.raises(ValueError, match='broken.png'):
        RAMPreprocess()(dict(img_path=str(broken)))
    with pytest.raises(ValueError, match='uint8'):
        RAMPreprocess()(dict(img=np.zeros((4, 4, 4), np.uint8)))
    with pytest.raises(TypeError, match='PIL image or a numpy array'):
        RAMPreprocess()(dict(img=[1, 2]))
    with pytest.raises(ValueError, match='array_order'):
        RAMPreprocess(array_order='hsv')
    assert repr(RAMPreprocess()) == \
        "RAMPreprocess(scale=384, array_order='bgr')"


def write(path, text: str) -> str:
    path.write_text(text, encoding='utf-8')
    return str(path)


def test_ram_annotation_format(tmp_path):
    write(tmp_path / 'taglist.txt', 'dog\ncat\n\nEiffel tower\n')
    write(tmp_path / 'model.txt', 'abacus\nEiffel tower\ncat\ndog\nowl')
    write(tmp_path / 'annots.txt', 'img1,dog,Eiffel tower\n'
          '\n'
          'img2\n'
          'img3, cat ,dog,cat,\n')
    dataset = TaggingDataset(
        ann_file='annots.txt',
        classes='taglist.txt',
        model_tag_list='model.txt',
        img_suffix='.jpg',
        data_root=str(tmp_path),
        data_prefix='imgs')
    assert dataset.metainfo['classes'] == ('dog', 'cat', 'Eiffel tower')
    assert dataset.metainfo['model_indices'] == (3, 2, 1)
    assert len(dataset) == 3
    infos = [dataset.get_data_info(i) for i in range(3)]
    assert [i['img_path'] for i in infos] == [
        osp.join(str(tmp_path), 'imgs', f'img{k}.jpg') for k in (1, 2, 3)
    ]
    assert [i['gt_label'] for i in infos] == [[0, 2], [], [0, 1]]
    # Lists instead of files; no model tag list: no mapping.
    plain = TaggingDataset(
        ann_file=str(tmp_path / 'annots.txt'),
        classes=['cat', 'dog', 'Eiffel tower'])
    assert 'model_indices' not in plain.metainfo
    assert plain.get_data_info(0)['gt_label'] == [1, 2]
    assert plain.get_data_info(0)['img_path'] == 'img1'


def test_annotation_errors(tmp_path):
    ann = write(tmp_path / 'a.txt', 'img1,dog\nimg2,wolf\n')
    with pytest.raises(ValueError, match=r"a.txt:2: tag 'wolf'"):
        TaggingDataset(ann_file=ann, classes=['dog', 'cat'])
    with pytest.raises(ValueError, match=r"not in the model tag list.*cat"):
        TaggingDataset(
            ann_file=ann, classes=['dog', 'cat'], model_tag_list=['dog'])
    with pytest.raises(ValueError, match="repeated tags \\['dog'\\]"):
        TaggingDataset(
            ann_file=ann, classes=write(tmp_path / 't.txt', 'dog\ndog\n'))
    ann = write(tmp_path / 'b.txt', ',dog\n')
    with pytest.raises(ValueError, match='b.txt:1: no image name'):
        TaggingDataset(ann_file=ann, classes=['dog'])
