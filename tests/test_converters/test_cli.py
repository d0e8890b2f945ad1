# Copyright (c) mmprompt contributors. All rights reserved.
"""The two converter scripts take their input the same way: ``src dst``,
``--format`` or the extension of dst, ``--force``, and the same one-line
errors for the same mistakes (:mod:`mmprompt.converters.cli`)."""
import os.path as osp

import pytest
import torch

from testing_utils import REPO_ROOT, load_module
from testing_utils import clip as clip_testing

CLIS = {
    name: load_module(
        f'_mmprompt_cli_{name}',
        osp.join(REPO_ROOT, 'tools', 'model_converters',
                 f'{name}_to_mmprompt.py'))
    for name in ('openai_clip', 'ram')
}


@pytest.fixture(scope='module', autouse=True)
def _logger_outside_capsys():
    """MMEngine's logger keeps the stream it was made with: make it before
    capsys swaps stderr."""
    from mmengine.logging import MMLogger
    MMLogger.get_current_instance()


@pytest.fixture(scope='module')
def sources(tmp_path_factory, ram_vectors_dir):
    """A source checkpoint of each converter."""
    clip = str(tmp_path_factory.mktemp('src') / 'openai.pth')
    torch.save(clip_testing.openai_state_dict(), clip)
    return dict(
        openai_clip=clip,
        ram=osp.join(ram_vectors_dir, 'ram_tiny_state_dict.pth'))


def one_error(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: '), err
    return lines[0]


def test_same_arguments():
    """The shared arguments parse alike in every converter script (each
    builds its parser with converter_parser)."""
    for cli in CLIS.values():
        args = cli.parse_args(['in.pth', 'out.safetensors', '--force'])
        assert (args.src, args.dst, args.force, args.format) == (
            'in.pth', 'out.safetensors', True, None)


def test_same_errors(sources, tmp_path, capsys):
    """Each mistake gives both scripts the same line, with the paths
    swapped in, and writes nothing."""
    notes = tmp_path / 'notes.txt'
    notes.write_text('not a checkpoint')
    exists = tmp_path / 'exists.pth'
    exists.write_bytes(b'keep me')
    messages = {}
    for name, cli in CLIS.items():
        src = sources[name]
        cases = dict(
            missing=[str(tmp_path / 'missing.pth'), str(tmp_path / 'a.pth')],
            folder=[str(tmp_path), str(tmp_path / 'b.pth')],
            not_checkpoint=[str(notes), str(tmp_path / 'c.pth')],
            exists=[src, str(exists)],
            onto_input=[src, src, '--force'],
            format=[src, str(tmp_path / 'd.pth'), '--format', 'safetensors'],
        )
        for case, argv in cases.items():
            assert cli.main(argv) == 2, (name, case)
            line = one_error(capsys)
            messages.setdefault(case, []).append(
                line.replace(src, 'SRC').replace(str(tmp_path), 'TMP'))
    for case, (clip_line, ram_line) in messages.items():
        assert clip_line == ram_line, case
    assert exists.read_bytes() == b'keep me'
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        'exists.pth', 'notes.txt'
    ]
    assert 'exists; pass --force' in messages['exists'][0]
    assert 'overwrite the input' in messages['onto_input'][0]


def test_format_by_extension(sources, tmp_path):
    """``.safetensors`` by its name, ``.pth`` otherwise, for both; the
    files load back with the same tensors."""
    from mmprompt.utils.checkpoint import read_checkpoint
    for name, cli in CLIS.items():
        st = str(tmp_path / f'{name}.safetensors')
        pth = str(tmp_path / f'{name}.pth')
        assert cli.main([sources[name], st]) == 0
        assert cli.main([sources[name], pth]) == 0
        with open(st, 'rb') as f:
            header = int.from_bytes(f.read(8), 'little')
            assert f.read(1) == b'{' and header > 0  # safetensors' header
        assert torch.load(pth, weights_only=True).keys() == {
            'state_dict', 'meta'
        }
        (sd_st, meta_st), (sd_pth, meta_pth) = (read_checkpoint(st),
                                                read_checkpoint(pth))
        assert meta_st == meta_pth
        assert meta_st['source_file'] == osp.basename(sources[name])
        assert sd_st.keys() == sd_pth.keys()
        assert all(torch.equal(sd_st[k], sd_pth[k]) for k in sd_st)


def test_converters_take_checkpoints_the_same_way(sources):
    """Both converter functions take what a file holds: the state dict, or
    it wrapped under 'state_dict' / 'model' with DataParallel's 'module.'
    prefixes; the results are equal."""
    from mmprompt.converters import (ConverterError, convert_openai_clip,
                                     convert_ram)
    for name, convert in (('openai_clip', convert_openai_clip),
                          ('ram', convert_ram)):
        raw = torch.load(sources[name], weights_only=True)
        sd = raw.get('model', raw)
        want, _ = convert(sd)
        for wrapped in (dict(state_dict=sd), dict(model=sd),
                        dict(state_dict={f'module.{k}': v
                                         for k, v in sd.items()})):
            got, _ = convert(wrapped)
            assert got.keys() == want.keys(), name
            assert all(torch.equal(got[k], want[k]) for k in want), name
        converted = dict(state_dict=want, meta=dict(format='mmprompt'))
        with pytest.raises(ConverterError, match='already an mmprompt'):
            convert(converted)


@pytest.mark.parametrize('ext', ['pth', 'safetensors'])
def test_full_disk_is_one_line_and_keeps_the_old_file(sources, tmp_path,
                                                      capsys, monkeypatch,
                                                      ext):
    """The serializers' own errors on a full disk (torch.save: a
    RuntimeError over the OSError; safetensors: '(os error 28)', as on a
    real 256 KiB tmpfs) become the one line of atomic_write."""
    import errno
    import os

    import safetensors.torch

    def torch_full(*args, **kwargs):
        try:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        except OSError:
            raise RuntimeError('[enforce fail at inline_container.cc:672] '
                               '. unexpected pos 768 vs 662')

    def safetensors_full(*args, **kwargs):
        raise safetensors.SafetensorError(
            'Error while serializing: I/O error: No space left on device '
            '(os error 28)')

    monkeypatch.setattr(torch, 'save', torch_full)
    monkeypatch.setattr(safetensors.torch, 'save_file', safetensors_full)
    dst = tmp_path / f'clip.{ext}'
    dst.write_bytes(b'old')
    assert CLIS['openai_clip'].main(
        [sources['openai_clip'], str(dst), '--force']) == 2
    assert one_error(capsys) == (
        f'error: could not write {dst}: no space left on device; the old '
        'file is untouched')
    assert dst.read_bytes() == b'old'
    assert os.listdir(tmp_path) == [dst.name]
