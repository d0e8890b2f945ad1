# Copyright (c) mmprompt contributors. All rights reserved.
"""The one decoder: bomb guard, orientation, modes, one answer everywhere."""
import io
import tracemalloc

import numpy as np
import pytest
from PIL import Image

from mmprompt.datasets import CLIPPreprocess, RAMPreprocess
from mmprompt.utils import ImageDecodeError
from mmprompt.utils.image_io import (DEFAULT_MAX_DECODE_MB,
                                     DEFAULT_MAX_PIXELS, ENV_MAX_ASPECT,
                                     ENV_MAX_DECODE_MB, ENV_MAX_PIXELS,
                                     decode_cost, decode_image,
                                     estimate_decode_cost)


def png(path, image):
    image.save(str(path), optimize=False)
    return str(path)


def test_huge_png_is_refused_before_decoding(tmp_path):
    # 13000 x 13000 one-bit PNG: 20 KB on disk, 169 MP.
    path = png(tmp_path / 'bomb.png', Image.new('1', (13000, 13000)))
    tracemalloc.start()
    with pytest.raises(
            ImageDecodeError,
            match=r'13000 x 13000 = 169.0 megapixels, over the '
            r'limit of 89.5 \(set MMPROMPT_MAX_PIXELS'):
        decode_image(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 20e6


def test_strip_is_refused(tmp_path):
    path = png(tmp_path / 'strip.png', Image.new('L', (100000, 1)))
    with pytest.raises(ImageDecodeError, match=r'aspect ratio of 100000:1'):
        decode_image(path)
    path = png(tmp_path / 'strip10k.png', Image.new('L', (10000, 1)))
    with pytest.raises(ImageDecodeError, match=r'10000:1, over .* 50:1'):
        CLIPPreprocess()(dict(img_path=path))
    with pytest.raises(ImageDecodeError, match='aspect'):
        RAMPreprocess()(dict(img_path=path))


def test_limits_from_env_and_arguments(tmp_path, monkeypatch):
    path = png(tmp_path / 'wide.png', Image.new('RGB', (400, 100)))
    assert decode_image(path).size == (400, 100)
    monkeypatch.setenv(ENV_MAX_ASPECT, '3')
    with pytest.raises(ImageDecodeError, match='4:1, over the limit of 3:1'):
        decode_image(path)
    assert decode_image(path, max_aspect=0).size == (400, 100)
    monkeypatch.setenv(ENV_MAX_PIXELS, '1000')
    with pytest.raises(ImageDecodeError, match='over the limit of 0.0'):
        decode_image(path, max_aspect=0)
    monkeypatch.setenv(ENV_MAX_PIXELS, 'lots')
    with pytest.raises(ImageDecodeError, match="MMPROMPT_MAX_PIXELS='lots'"):
        decode_image(path)


def test_normal_photo_passes_and_big_jpeg_drafts(tmp_path):
    photo = Image.fromarray(
        np.random.default_rng(0).integers(
            0, 255, (3024, 4032, 3), dtype=np.uint8))
    path = str(tmp_path / 'photo.jpg')
    photo.save(path, quality=80)
    assert decode_image(path).size == (4032, 3024)  # 12 MP: in full
    # Over the budget, a JPEG is decoded at a DCT scale that fits.
    got = decode_image(path, max_pixels=4_000_000)
    assert got.size == (2016, 1512)


def test_exif_orientation(tmp_path):
    base = Image.new('RGB', (40, 20), (255, 0, 0))
    base.paste((0, 0, 255), (0, 0, 10, 20))  # blue on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = str(tmp_path / 'rotated.jpg')
    base.save(path, exif=exif.tobytes(), quality=95)
    img = decode_image(path)
    assert img.size == (20, 40)
    assert np.asarray(img)[2, 10, 2] > 200  # blue at the top
    assert decode_image(Image.open(path)).size == (20, 40)


def test_16_bit_grayscale_is_scaled(tmp_path):
    values = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)
    values = np.repeat(values, 4, axis=0)
    path = png(tmp_path / 'grey16.png', Image.fromarray(values))
    assert Image.open(path).mode == 'I;16'
    got = np.asarray(decode_image(path))
    np.testing.assert_array_equal(got[0, :, 0], [0, 1, 128, 255])
    # Old behaviour: convert('RGB') clipped every non-zero pixel to 255.
    old = np.asarray(Image.open(path).convert('RGB'))
    assert (old[0, 1:, 0] == 255).all()
    np.testing.assert_array_equal(decode_image(values), got)


def test_modes(tmp_path):
    cmyk = Image.new('CMYK', (8, 8), (0, 255, 255, 0))  # red
    path = str(tmp_path / 'cmyk.jpg')
    cmyk.save(path)
    assert decode_image(path).mode == 'RGB'
    assert tuple(np.asarray(decode_image(path))[4, 4]) > (200, 0, 0)
    for mode in ('RGBA', 'LA', 'P', 'L', '1'):
        img = Image.new(mode, (8, 8))
        assert decode_image(img, mode=None).mode == mode
        assert decode_image(img).mode == 'RGB'
    assert decode_image(Image.new('PA', (4, 4)), mode=None).mode == 'RGBA'
    assert decode_image(np.zeros((4, 4, 4), np.uint8), mode=None).mode == \
        'RGBA'
    assert decode_image(np.ones((4, 4), np.float32)).getpixel((0, 0)) == \
        (255, 255, 255)
    frames = [Image.new('P', (6, 6), c) for c in (1, 2)]
    gif = str(tmp_path / 'anim.gif')
    frames[0].save(gif, save_all=True, append_images=frames[1:])
    assert decode_image(gif).size == (6, 6)


def test_errors_are_one_line(tmp_path):
    broken = tmp_path / 'broken.png'
    broken.write_bytes(b'\x89PNG\r\n\x1a\nnot really')
    cases = [(str(broken), 'broken.png: damaged or incomplete'),
             (str(tmp_path / 'none.png'), 'none.png: no such file'),
             (str(tmp_path), 'is a directory'), (None, 'no image given'),
             (3, 'got int'),
             (np.zeros((4, 4, 3), np.int32) - 1, 'not 8 or 16 bits'),
             (np.zeros((0, 4, 3), np.uint8), 'empty image'),
             (b'abc', 'image: not an image file')]
    for image, message in cases:
        with pytest.raises(ImageDecodeError, match=message) as info:
            decode_image(image)
        assert '\n' not in str(info.value)
    data = io.BytesIO()
    Image.new('RGB', (64, 64)).save(data, 'PNG')
    truncated = tmp_path / 'cut.png'
    truncated.write_bytes(data.getvalue()[:60])
    with pytest.raises(ImageDecodeError, match='cut.png: damaged'):
        decode_image(str(truncated))


def test_one_image_one_answer(tmp_path):
    """Path and PIL inputs of one 16-bit file give the same pixels
    through CLIP's and RAM's transforms."""
    rng = np.random.default_rng(0)
    values = rng.integers(0, 65535, (60, 80)).astype(np.uint16)
    path = png(tmp_path / 'g16.png', Image.fromarray(values))
    clip = CLIPPreprocess(scale=32)
    a = clip(dict(img_path=path))['img']
    b = clip(dict(img=Image.open(path)))['img']
    np.testing.assert_array_equal(a, b)
    assert 0.3 < (a == 255).mean() + (a < 255).mean() and \
        (a == 255).mean() < 0.05
    ram = RAMPreprocess(scale=32)
    np.testing.assert_array_equal(
        ram(dict(img_path=path))['img'],
        ram(dict(img=Image.open(path)))['img'])


def test_default_budget_is_pils():
    assert DEFAULT_MAX_PIXELS == Image.MAX_IMAGE_PIXELS


def float_tiff_claiming(path, width, height):
    """A 1 x 1 float TIFF whose header says ``width`` x ``height`` (a few
    hundred bytes; decoding it would need the full size)."""
    Image.fromarray(np.zeros((1, 1), np.float32), mode='F').save(str(path))
    data = bytearray(path.read_bytes())
    assert data[:4] == b'II*\0'
    ifd = int.from_bytes(data[4:8], 'little')
    for i in range(int.from_bytes(data[ifd:ifd + 2], 'little')):
        entry = ifd + 2 + 12 * i
        tag = int.from_bytes(data[entry:entry + 2], 'little')
        if tag in (256, 257):  # ImageWidth, ImageLength: LONG, count 1
            data[entry + 2:entry + 12] = (
                (4).to_bytes(2, 'little') + (1).to_bytes(4, 'little') +
                (width if tag == 256 else height).to_bytes(4, 'little'))
    path.write_bytes(bytes(data))
    return str(path)


def test_decode_cost_by_mode():
    # Bytes per pixel: PIL's storage, twice, then 8-bit RGB (4 bytes).
    assert decode_cost('F', 9400, 9400) == 17 * 88_360_000
    assert decode_cost('I;16B', 100, 10) == decode_cost('I;16', 10, 100)
    assert decode_cost('I;16', 100, 10) == 9_000
    assert decode_cost('L', 100, 10) == decode_cost('P', 100, 10) == 5_000
    assert decode_cost('CMYK', 100, 10) == decode_cost('RGB', 100, 10)
    assert decode_cost('RGBA', 100, 10) == 8_000
    # An RGB photo at the pixel limit fits the default budget.
    assert decode_cost('RGB', DEFAULT_MAX_PIXELS, 1) / 1e6 < 716
    assert DEFAULT_MAX_DECODE_MB == 1000
    # Decoded inputs: a PIL image by its mode; an array, its bytes and an
    # 8-bit RGB image.
    assert estimate_decode_cost(Image.new('I;16', (100, 10))) == 9_000
    assert estimate_decode_cost(np.zeros((10, 100), np.float32)) == 12_000
    assert estimate_decode_cost(b'not an image') == 0


def test_float_tiff_is_refused_by_its_decode_cost(tmp_path):
    # Under the pixel limit (88.4 of 89.5 MP), but 1.5 GB to decode.
    path = float_tiff_claiming(tmp_path / 'big.tif', 9400, 9400)
    assert estimate_decode_cost(path) == 1_502_120_000
    with open(path, 'rb') as f:
        assert estimate_decode_cost(f.read()) == 1_502_120_000
    tracemalloc.start()
    with pytest.raises(
            ImageDecodeError,
            match=r'^big.tif would take 1,502 MB to decode \(limit 1,000 MB;'
            r' F, 9400 x 9400; set MMPROMPT_MAX_DECODE_MB'):
        decode_image(path, name='big.tif')
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 20e6


def test_decode_budget_from_env_and_arguments(tmp_path, monkeypatch):
    image = Image.fromarray(np.full((100, 100), 0.5, np.float32), mode='F')
    path = str(tmp_path / 'small.tif')
    image.save(path)
    assert estimate_decode_cost(path) == 170_000
    assert decode_image(path).getpixel((0, 0)) == (128, 128, 128)
    with pytest.raises(ImageDecodeError,
                       match=r'would take 0.17 MB to decode \(limit 0.1 MB'):
        decode_image(path, max_decode_mb=0.1)
    monkeypatch.setenv(ENV_MAX_DECODE_MB, '0.15')
    with pytest.raises(ImageDecodeError, match=r'\(limit 0.15 MB'):
        decode_image(path)
    assert decode_image(path, max_decode_mb=0).size == (100, 100)
    monkeypatch.setenv(ENV_MAX_DECODE_MB, '-1')
    with pytest.raises(ImageDecodeError, match='must be >= 0'):
        decode_image(path)
