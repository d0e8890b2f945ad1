# Copyright (c) mmprompt contributors. All rights reserved.
"""demo/tag_images.py: a folder with good, broken and non-image files,
tagged by the tiny RAM reference checkpoint."""
import contextlib
import json
import logging
import os
import os.path as osp
import shutil

import pytest
from mmengine.logging import MMLogger
from testing_utils import REPO_ROOT, load_module

from testing_utils import ram as H  # noqa: E402

DEMO = load_module('_mmprompt_demo_tag_images',
                   osp.join(REPO_ROOT, 'demo', 'tag_images.py'))
NORMAL = 'ram/ram_swin-large-p4-w12_384px_normal.py'
OPENSET = 'ram/ram_swin-large-p4-w12_384px_openset.py'


@pytest.fixture(scope='module')
def setup(ram_vectors_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp('tag_images')
    folder = root / 'photos'
    (folder / 'sub').mkdir(parents=True)
    for name, src in [('a.png', 0), ('b.png', 1), ('sub/c.png', 0)]:
        shutil.copy(
            osp.join(ram_vectors_dir, 'images', H.IMAGES[src]), folder / name)
    (folder / 'broken.jpg').write_bytes(b'\xff\xd8 truncated')
    (folder / 'notes.txt').write_text('not an image')
    # A PNG whose header reads but whose pixels are cut off.
    with open(osp.join(ram_vectors_dir, 'images', H.IMAGES[0]), 'rb') as f:
        (folder / 'truncated.png').write_bytes(f.read()[:300])
    return dict(
        root=root,
        folder=folder,
        ckpt=H.convert_tiny(ram_vectors_dir, str(root)),
        config=H.write_tiny_config(str(root / 'tiny.py'), NORMAL, 20),
        meta=H.expected(ram_vectors_dir))


def read_jsonl(path):
    with open(path, encoding='utf-8') as f:
        return [json.loads(line) for line in f]


@contextlib.contextmanager
def log_records():
    """Collect what mmengine's current logger logs."""
    logger = MMLogger.get_current_instance()
    records = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


def test_folder_with_unreadable_files(setup):
    out = setup['root'] / 'out' / 'tags.jsonl'
    folder = setup['folder']
    with log_records() as logged:
        code = DEMO.main([
            str(folder), '--config', setup['config'], '--checkpoint',
            setup['ckpt'], '--out',
            str(out), '--batch-size', '2'
        ])
    assert code == 0
    records = read_jsonl(out)
    assert [r['image'] for r in records
            ] == [str(folder / 'a.png'),
                  str(folder / 'b.png')]
    expected = setup['meta']['expected']
    for record, en, zh in zip(records, expected['tags_en'],
                              expected['tags_zh']):
        assert ' | '.join(record['tags']) == en
        # RAM's Chinese names, without the spaces its list ends them in.
        assert record['tags_chinese'] == (
            [t.strip() for t in zh.split(' | ')] if zh else [])
        assert len(record['scores']) == len(record['tags'])
    warnings = [r.getMessage() for r in logged if r.levelno >= logging.WARNING]
    assert len(warnings) == 3  # two files, then the summary
    text = warnings[-1]
    assert 'Tagged 2 of 4 images' in text
    assert 'skipped 2 unreadable' in text
    assert str(folder / 'broken.jpg') in text
    assert str(folder / 'truncated.png') in text
    assert 'notes.txt' not in text


def test_recursive_files_threshold_and_open_set(setup, tmp_path):
    folder = setup['folder']
    out = tmp_path / 'tags.jsonl'
    assert DEMO.main([
        str(folder / 'b.png'),
        str(folder), '--recursive', '--config', setup['config'],
        '--checkpoint', setup['ckpt'], '--out',
        str(out), '--threshold', '0.5'
    ]) == 0
    records = read_jsonl(out)
    # The file given first, then the folder's (without repeating it).
    assert [osp.relpath(r['image'], folder) for r in records] == \
        ['b.png', 'a.png', 'sub/c.png']
    assert records[1]['tags'] == records[2]['tags']
    assert 'body' in records[1]['tags']  # threshold 1.0 in the model
    text = H.save_text_encoder(str(tmp_path / 'text.pth'))
    config = H.write_tiny_config(
        str(tmp_path / 'openset.py'),
        OPENSET,
        20,
        text_encoder=H.tiny_text_encoder(text))
    assert DEMO.main([
        str(folder / 'a.png'), '--config', config, '--checkpoint',
        setup['ckpt'], '--out',
        str(out), '--force', '--categories', 'apple', 'Ale', 'umbrella_stand'
    ]) == 0
    record, = read_jsonl(out)
    assert set(record['tags']) <= {'apple', 'Ale', 'umbrella_stand'}
    assert record['tags_chinese'] is None


def test_no_images_and_bad_arguments(setup, tmp_path):
    empty = tmp_path / 'empty'
    empty.mkdir()
    args = ['--config', setup['config'], '--checkpoint', setup['ckpt']]
    assert DEMO.main([str(empty), *args, '--out', str(tmp_path / 'x')]) == 1
    with pytest.raises(SystemExit):
        DEMO.main([str(empty), *args])  # no --out
    with pytest.raises(SystemExit):
        DEMO.main([str(empty), *args, '--out', 'x', '--batch-size', '0'])


def test_precision_and_compile_reach_the_tagger(setup, tmp_path, monkeypatch):
    import mmprompt.apis
    built = {}
    real = mmprompt.apis.ImageTagger

    def spy(*args, **kwargs):
        built.update(kwargs)
        kwargs['compile'] = False  # compiling is tested in test_ram.py
        return real(*args, **kwargs)

    monkeypatch.setattr(mmprompt.apis, 'ImageTagger', spy)
    out = tmp_path / 'bf16.jsonl'
    assert DEMO.main([
        str(setup['folder'] / 'a.png'), '--config', setup['config'],
        '--checkpoint', setup['ckpt'], '--out',
        str(out), '--precision', 'bf16', '--compile'
    ]) == 0
    assert built['precision'] == 'bf16' and built['compile'] is True
    row, = read_jsonl(out)
    assert row['tags'] and all(0 <= s <= 1 for s in row['scores'])


def _tag(setup, *argv):
    return DEMO.main(
        [*argv, '--config', setup['config'], '--checkpoint', setup['ckpt']])


def test_output_is_never_lost(setup, tmp_path):
    """Issue 12, section 2: each case destroyed data before."""
    from mmprompt.utils import OutputPathError, UserError
    folder = tmp_path / 'photos'
    shutil.copytree(setup['folder'], folder)
    image = folder / 'a.png'
    original = image.read_bytes()
    # --out equal to an input image, or inside the input folder.
    with pytest.raises(OutputPathError, match='one of the inputs'):
        _tag(setup, str(image), '--out', str(image), '--force')
    with pytest.raises(OutputPathError, match='inside the input folder'):
        _tag(setup, str(folder), '--out', str(folder / 'tags.jsonl'))
    assert image.read_bytes() == original
    # A misspelled input with an existing --out: an error, --out intact.
    out = tmp_path / 'tags.jsonl'
    assert _tag(setup, str(image), '--out', str(out)) == 0
    before = out.read_text()
    with pytest.raises(UserError, match='phtos: no such file or folder'):
        _tag(setup, str(tmp_path / 'phtos'), '--out', str(out), '--force')
    assert out.read_text() == before
    # A second run: refused without --force / --resume.
    with pytest.raises(OutputPathError, match='pass --force \\(or --resume'):
        _tag(setup, str(folder), '--out', str(out))
    assert out.read_text() == before
    # --resume keeps the first record and adds the rest, once each.
    assert _tag(setup, str(folder), '--out', str(out), '--resume') == 0
    paths = [r['image'] for r in read_jsonl(out)]
    assert paths == [str(image), str(folder / 'b.png')]
    assert read_jsonl(out)[0] == json.loads(before)
    assert _tag(setup, str(folder), '--out', str(out), '--resume') == 0
    assert [r['image'] for r in read_jsonl(out)] == paths
    # --out a directory or in an unwritable place: one line.
    with pytest.raises(OutputPathError, match='is a directory'):
        _tag(setup, str(image), '--out', str(tmp_path))
    (tmp_path / 'file').write_text('x')
    with pytest.raises(OutputPathError, match='is not a folder'):
        _tag(setup, str(image), '--out', str(tmp_path / 'file' / 'o.jsonl'))
    assert not [n for n in os.listdir(tmp_path) if 'tmp' in n]


def test_cli_one_line_exit_2(setup, tmp_path):
    import subprocess
    import sys
    proc = subprocess.run([
        sys.executable,
        osp.join(REPO_ROOT, 'demo', 'tag_images.py'),
        str(tmp_path / 'missing'), '--config', setup['config'], '--out',
        str(tmp_path / 'o.jsonl')
    ],
                          capture_output=True,
                          text=True,
                          env=dict(os.environ, PYTHONPATH=REPO_ROOT))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: {tmp_path / 'missing'}: no such file or folder")
    assert 'Traceback' not in proc.stderr
