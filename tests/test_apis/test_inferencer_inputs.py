# Copyright (c) mmprompt contributors. All rights reserved.
"""Issue 12, section 5: silent wrong answers of the inferencers become
clear errors or right answers."""
import numpy as np
import pytest
import torch

from mmprompt.apis import ImageTagger, ZeroShotClassifier
from mmprompt.utils import InputTypeError, InvalidInputError
from testing_utils import clip as clip_testing
from testing_utils import ram as H
from .test_image_tagger import OPENSET, PLUS_OPENSET, files  # noqa: F401

CIFAR = 'clip/clip_vit-base-p16_zeroshot-cls_cifar100.py'


@pytest.fixture(scope='module')
def classifier(tmp_path_factory):
    root = tmp_path_factory.mktemp('zs')
    cfg = clip_testing.write_tiny_config(str(root / 'tiny.py'), CIFAR)
    ckpt = clip_testing.write_converted_checkpoint(str(root / 'tiny.pth'))
    return ZeroShotClassifier(cfg, pretrained=ckpt)


def image():
    return np.random.default_rng(0).integers(0, 255, (40, 40, 3), np.uint8)


def test_failed_call_changes_nothing(classifier, tmp_path):
    first = classifier(image(), categories=['cat', 'dog', 'owl'], topk=3)
    broken = tmp_path / 'broken.png'
    broken.write_bytes(b'nope')
    with pytest.raises(ValueError, match='broken.png'):
        classifier(
            image(),
            categories=['red', 'blue'],
            examples={'red': [str(broken)]})
    assert list(classifier.categories) == ['cat', 'dog', 'owl']
    again = classifier(image(), topk=3)
    assert again[0]['topk_classes'] == first[0]['topk_classes']
    np.testing.assert_allclose(
        again[0]['topk_scores'], first[0]['topk_scores'], atol=1e-6)


def test_argument_errors_are_clear(classifier):
    cats = ['cat', 'dog']
    for topk in (0, -5):
        with pytest.raises(InvalidInputError, match='topk must be a posit'):
            classifier(image(), categories=cats, topk=topk)
    with pytest.raises(InputTypeError, match="topk must be .* not 'abc'"):
        classifier(image(), categories=cats, topk='abc')
    with pytest.raises(InvalidInputError, match='batch_size must be'):
        classifier(image(), categories=cats, batch_size=0)
    with pytest.raises(InvalidInputError, match='an image is None'):
        classifier(None, categories=cats)
    with pytest.raises(
            TypeError,
            match="descriptions of 'cat' must be a "
            'string or a list of strings, not int'):
        classifier(image(), categories=cats, descriptions={'cat': 5})
    with pytest.raises(ValueError, match='duplicate category names'):
        classifier(image(), categories=['Cat', 'cat', 'CAT'])


def _openset(files, config, ram):  # noqa: F811
    cfg = H.write_tiny_config(
        str(files['root'] / f'{config.split("/")[-1]}'),
        config,
        20 if 'plus' not in config else 8,
        text_encoder=H.tiny_text_encoder(files['text']))
    return ImageTagger(cfg, pretrained=files[ram])


def test_tagger_duplicates_are_one_rule(files):  # noqa: F811
    tagger = _openset(files, OPENSET, 'ram')
    with pytest.raises(ValueError, match="duplicate category names: 'Cat'"):
        tagger(files['images'][0], categories=['Cat', 'cat', 'CAT'])
    long_a = 'a very long category name ' * 20 + 'ending one'
    long_b = 'a very long category name ' * 20 + 'ending two'
    assert len(long_a) > 500
    with pytest.raises(ValueError, match='same once cut at .* 77 tokens'):
        tagger(files['images'][0], categories=[long_a, long_b])
    with pytest.raises(InvalidInputError, match='batch_size'):
        tagger(files['images'][0], batch_size=0)


def test_ram_plus_description_string_is_one(files):  # noqa: F811
    tagger = _openset(files, PLUS_OPENSET, 'ram_plus')
    text = 'a small furry pet'
    as_string = tagger(files['images'], categories={'cat': text})
    assert tagger.vocabulary().label_embed.shape[0] == 1
    as_list = tagger(files['images'], categories={'cat': [text]})
    assert as_string == as_list
    tagger(files['images'], categories={'cat': list(text)})
    assert tagger.vocabulary().label_embed.shape[0] == len(text)


PAYLOAD = ('import os, sys, torch\n'
           'class P:\n'
           '    def __reduce__(self):\n'
           "        return (os.system, ('touch ' + sys.argv[2],))\n"
           "torch.save({'state_dict': {}, 'x': P()}, sys.argv[1])\n")


def test_inferencers_load_strictly_and_safely(
        files,  # noqa: F811
        tmp_path,
        monkeypatch):
    """Issue 12, s.1 and s.3: a RAM checkpoint for a CLIP config, an
    unconverted OpenAI CLIP, and a planted payload under
    TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1, through both inferencers."""
    import os.path as osp
    import subprocess
    import sys
    from mmprompt.utils import CheckpointError
    cfg = clip_testing.write_tiny_config(str(tmp_path / 'clip.py'), CIFAR)
    with pytest.raises(
            CheckpointError,
            match='a RAM checkpoint .*, but this config is CLIP'):
        ZeroShotClassifier(cfg, pretrained=files['ram'])
    raw = str(tmp_path / 'openai.pth')
    torch.save(clip_testing.openai_state_dict(), raw)
    with pytest.raises(CheckpointError, match='not converted; convert it'):
        ZeroShotClassifier(cfg, pretrained=raw)
    evil, marker = str(tmp_path / 'evil.pth'), str(tmp_path / 'ran')
    subprocess.run([sys.executable, '-c', PAYLOAD, evil, marker], check=True)
    monkeypatch.setenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')
    with pytest.raises(CheckpointError, match='weights-only load refuses'):
        ZeroShotClassifier(cfg, pretrained=evil)
    ram_cfg = H.write_tiny_config(
        str(tmp_path / 'ram.py'), 'ram/ram_swin-large-p4-w12_384px_normal.py',
        20)
    with pytest.raises(CheckpointError, match='weights-only load refuses'):
        ImageTagger(ram_cfg, pretrained=evil)
    with pytest.raises(CheckpointError, match='CLIP .*config is RAM'):
        ImageTagger(
            ram_cfg,
            pretrained=clip_testing.write_converted_checkpoint(
                str(tmp_path / 'c.pth')))
    assert not osp.exists(marker)
