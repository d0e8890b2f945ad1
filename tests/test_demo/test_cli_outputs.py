# Copyright (c) mmprompt contributors. All rights reserved.
"""The demos' --out: checked before the model is built (an input, an
existing file, an unwritable folder), written atomically, a full disk one
line with the old file intact."""
import errno
import json
import os
import os.path as osp

import numpy as np
import pytest
from PIL import Image
from testing_utils import REPO_ROOT, load_module

from mmprompt.utils.errors import OutputPathError

CLI = load_module('_mmprompt_demo_classify',
                  osp.join(REPO_ROOT, 'demo', 'classify.py'))
TAG = load_module('_mmprompt_demo_tag_images',
                  osp.join(REPO_ROOT, 'demo', 'tag_images.py'))


@pytest.fixture
def image(tmp_path):
    path = tmp_path / 'cat.png'
    pixels = np.random.default_rng(0).integers(0, 255, (40, 40, 3), 'uint8')
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture
def no_model(monkeypatch):
    """Fail the test if the model is built: refusals come before it."""
    import mmprompt.apis

    def build(*args, **kwargs):
        raise AssertionError('the model was built before the refusal')

    monkeypatch.setattr(mmprompt.apis, 'ZeroShotClassifier', build)


def test_out_that_is_an_input_image_is_refused(image, no_model):
    data = image.read_bytes()
    for extra in ([], ['--force']):
        with pytest.raises(OutputPathError) as info:
            CLI.main([
                str(image), '--categories', 'cat', 'dog', '--out',
                str(image), *extra
            ])
        assert str(info.value) == (
            f'{image}: is one of the inputs; write it elsewhere')
    assert image.read_bytes() == data


def test_unwritable_destination_is_refused_first(image, tmp_path, monkeypatch,
                                                 no_model):
    out = tmp_path / 'results.json'
    out.write_text('old')
    with pytest.raises(
            OutputPathError, match='exists; pass --force to overwrite it'):
        CLI.main([str(image), '--out', str(out)])
    assert out.read_text() == 'old'
    with pytest.raises(OutputPathError, match=f'{out} is not a folder$'):
        CLI.main([str(image), '--out', str(out / 'sub' / 'r.json')])
    ro = tmp_path / 'ro'
    ro.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, 'access', lambda p, m: osp.realpath(p) != str(ro)
                        and real_access(p, m))  # as root, chmod cannot show it
    with pytest.raises(OutputPathError, match=f'{ro} is not writable$'):
        CLI.main([str(image), '--out', str(ro / 'r.json')])
    assert sorted(os.listdir(tmp_path)) == ['cat.png', 'results.json', 'ro']


def test_force_replaces_atomically_and_a_full_disk_keeps_the_old_file(
        image, tmp_path, monkeypatch):
    pytest.importorskip('open_clip')
    from testing_utils import clip as H
    checkpoint = H.write_converted_checkpoint(str(tmp_path / 'clip.pth'))
    config = H.write_tiny_config(
        str(tmp_path / 'cfg.py'),
        'clip/clip_vit-base-p16_zeroshot-cls_in1k.py',
        model=dict(categories=['cat', 'dog'], templates='simple'))
    out = tmp_path / 'results.json'
    out.write_text('old')
    argv = [
        str(image), '--model', config, '--checkpoint', checkpoint, '--topk',
        '1', '--out',
        str(out), '--force'
    ]

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as m:
        m.setattr(os, 'fsync', full)
        with pytest.raises(OutputPathError) as info:
            CLI.main(argv)
    assert str(info.value) == (f'could not write {out}: no space left on '
                               'device; the old file is untouched')
    assert out.read_text() == 'old'
    results = CLI.main(argv)
    written = json.loads(out.read_text())
    assert [r['image'] for r in written] == [str(image)]
    assert written[0]['topk_classes'] == results[0]['topk_classes']
    assert len(written[0]['topk_classes']) == 1
    assert sorted(os.listdir(tmp_path)) == [
        'cat.png', 'cfg.py', 'clip.pth', 'results.json'
    ]


def test_tag_images_points_to_tools_infer(capsys):
    """demo/tag_images.py moved: it prints the equivalent infer.py command
    (--config renamed, --recursive dropped) and exits 2."""
    assert TAG.main(['photos/', '--config', 'ram', '--recursive', '--out',
                     'my tags.jsonl']) == 2
    assert capsys.readouterr().err == (
        'demo/tag_images.py is now tools/infer.py tag; use: python '
        "tools/infer.py tag photos/ --model ram --out 'my tags.jsonl'\n")
