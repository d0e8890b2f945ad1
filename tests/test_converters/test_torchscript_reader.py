# Copyright (c) mmprompt contributors. All rights reserved.
"""``mmprompt.utils.torchscript``: TorchScript archives read as
``torch.jit.load(...).state_dict()`` reads them (the reference, used here
only), and crafted or corrupt archives refused in one line, their code never
run."""
import os
import os.path as osp
import pickle
import subprocess
import sys
import zipfile
from typing import Callable, Final, Tuple

import pytest
import torch
import torch.nn as nn
from testing_utils import REPO_ROOT, load_module, save_openai_torchscript
from testing_utils import clip as clip_testing

from mmprompt.utils import CheckpointError
from mmprompt.utils.torchscript import read_torchscript

pytestmark = [
    pytest.mark.filterwarnings('ignore::FutureWarning'),  # torch.jit
    pytest.mark.filterwarnings('ignore::torch.jit.TracerWarning'),
]

CLI = osp.join(REPO_ROOT, 'tools', 'model_converters',
               'openai_clip_to_mmprompt.py')
# The tiny OpenAI layout of testing_utils.clip: 32 px images, 16 tokens.
IMAGE, CONTEXT, VOCAB = 32, 16, 100


def cli():
    return load_module('openai_clip_to_mmprompt', CLI)


def jit_state_dict(path: str) -> dict:
    """The reference: what the converters read with ``torch.jit.load``."""
    return torch.jit.load(path, map_location='cpu').state_dict()


def assert_same_state_dict(got: dict, want: dict) -> None:
    """Same keys in the same order; same dtype, shape, stride and bits."""
    assert list(got) == list(want)
    for key, value in want.items():
        assert got[key].dtype == value.dtype, key
        assert got[key].shape == value.shape, key
        assert got[key].stride() == value.stride(), key
        assert torch.equal(got[key], value), key


def tiny_archive(path: str, dtype: torch.dtype = torch.float32) -> dict:
    sd = {k: v.to(dtype) for k, v in clip_testing.openai_state_dict().items()}
    save_openai_torchscript(sd, path, IMAGE, CONTEXT, VOCAB)
    return sd


def rewrite_member(path: str, suffix: str, change: Callable[[bytes],
                                                            bytes]) -> None:
    """Rewrite the archive member ending with ``suffix`` in place."""
    with zipfile.ZipFile(path) as zf:
        members = [(info, zf.read(info)) for info in zf.infolist()]
    with zipfile.ZipFile(path, 'w') as zf:
        for info, data in members:
            zf.writestr(
                info,
                change(data) if info.filename.endswith(suffix) else data)


@pytest.mark.parametrize('dtype', [torch.float32, torch.float16])
def test_reads_scripted_fixture_as_jit_load(tmp_path, dtype):
    archive = str(tmp_path / 'ViT-T-16.pt')
    sd = tiny_archive(archive, dtype)
    got = read_torchscript(archive)
    assert_same_state_dict(got, jit_state_dict(archive))
    # The fixture's tensors, plus OpenAI's three hyper-parameter buffers.
    hyper = dict(
        input_resolution=IMAGE, context_length=CONTEXT, vocab_size=VOCAB)
    assert set(got) == set(sd) | set(hyper)
    assert all(torch.equal(got[k], v) for k, v in sd.items())
    assert {k: got[k].item() for k in hyper} == hyper


def tiny_open_clip() -> nn.Module:
    """open_clip's CLIP (OpenAI's module layout: nn.MultiheadAttention,
    nn.Sequential blocks, a non-persistent ``attn_mask``), tiny."""
    import open_clip
    torch.manual_seed(0)
    model = open_clip.CLIP(
        embed_dim=32,
        vision_cfg=open_clip.CLIPVisionCfg(
            layers=2, width=64, head_width=32, patch_size=16,
            image_size=IMAGE),
        text_cfg=open_clip.CLIPTextCfg(
            context_length=CONTEXT,
            vocab_size=VOCAB,
            width=64,
            heads=2,
            layers=2)).eval()
    # A tensor attribute that is neither parameter nor buffer, as OpenAI's
    # ResidualAttentionBlock.attn_mask: not in the state dict.
    model.visual.plain_tensor = torch.arange(3.)
    return model


def traced(model: nn.Module, image_size: int, context: int,
           dtype: torch.dtype) -> torch.jit.ScriptModule:
    """``model`` traced, then cast, as OpenAI's fp16 releases were."""
    inputs = (torch.randn(1, 3, image_size, image_size),
              torch.zeros(1, context, dtype=torch.long))
    with torch.no_grad():
        module = torch.jit.trace(model, inputs, check_trace=False)
    return module.to(dtype)


@pytest.mark.parametrize('dtype', [torch.float32, torch.float16])
def test_reads_traced_open_clip_as_jit_load(tmp_path, dtype):
    archive = str(tmp_path / 'ViT-T-16.pt')
    torch.jit.save(traced(tiny_open_clip(), IMAGE, CONTEXT, dtype), archive)
    got = read_torchscript(archive)
    want = jit_state_dict(archive)
    assert_same_state_dict(got, want)
    assert {v.dtype for v in got.values()} == {dtype}
    assert 'attn_mask' in got and 'visual.plain_tensor' not in got
    assert len(got) == 63
    # Scripted too (another class layout: one class per submodule type).
    scripted = str(tmp_path / 'scripted.pt')
    torch.jit.save(torch.jit.script(tiny_open_clip().to(dtype)), scripted)
    assert_same_state_dict(read_torchscript(scripted), want)


@pytest.mark.parity
def test_reads_full_size_traced_fp16_clip_as_jit_load(tmp_path):
    """open_clip's ViT-B-32 in OpenAI's layout, traced and saved in fp16
    like OpenAI's ``ViT-B-32.pt``."""
    import open_clip
    torch.manual_seed(0)
    model = open_clip.create_model('ViT-B-32', pretrained=None).eval()
    archive = str(tmp_path / 'ViT-B-32.pt')
    torch.jit.save(traced(model, 224, 77, torch.float16), archive)
    got = read_torchscript(archive)
    assert len(got) == 303
    assert_same_state_dict(got, jit_state_dict(archive))


class SetstateLayerNorm(nn.LayerNorm):
    """A LayerNorm whose ``__setstate__`` creates ``marker`` (through
    ``torch.from_file(shared=True)``, which TorchScript can call) while
    ``torch.jit.load`` restores it."""
    marker: Final[str]

    def __init__(self, width: int, marker: str) -> None:
        super().__init__(width)
        self.marker = marker

    @torch.jit.export
    def __getstate__(self) -> Tuple[torch.Tensor, torch.Tensor, bool]:
        return self.weight, self.bias, self.training

    @torch.jit.export
    def __setstate__(self, state: Tuple[torch.Tensor, torch.Tensor,
                                        bool]) -> None:
        written = torch.from_file(self.marker, shared=True, size=8)
        self.weight = state[0]
        self.bias = state[1]
        self.training = state[2] and written.numel() > 0


def test_cli_refuses_archive_with_setstate_code(tmp_path, capsys):
    """An OpenAI-layout archive whose ``ln_final`` runs code while loading:
    ``torch.jit.load`` writes the marker; the converter refuses in one
    line, and nothing is written."""
    marker = str(tmp_path / 'marker')
    model = tiny_open_clip()
    model.ln_final = SetstateLayerNorm(64, marker)
    model.ln_final.load_state_dict(nn.LayerNorm(64).state_dict())
    archive = str(tmp_path / 'ViT-T-16.pt')
    torch.jit.save(torch.jit.script(model), archive)
    assert not osp.exists(marker)
    # The danger is real: loading it the old way writes the file.
    subprocess.run([
        sys.executable, '-c',
        f'import torch; torch.jit.load({archive!r}, map_location="cpu")'
    ],
                   check=True,
                   capture_output=True)
    assert osp.getsize(marker) == 32
    os.remove(marker)
    dst = tmp_path / 'out.pth'
    assert cli().main([archive, str(dst)]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f'error: {archive}: its class __torch__.{__name__}.SetstateLayerNorm '
        'restores itself with code (__setstate__), and loading it would run '
        'that code, which mmprompt never does; not a checkpoint to use'
    ]
    assert not osp.exists(marker) and not dst.exists()


class SystemCall:
    """Pickles to a call of ``os.system(command)``."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return os.system, (self.command, )


def test_cli_refuses_archive_with_foreign_global(tmp_path, capsys):
    """data.pkl rewritten to call ``os.system``: refused, naming the
    global; the command never runs."""
    marker = tmp_path / 'marker'
    payload = pickle.dumps(SystemCall(f'touch {marker}'), protocol=2)
    pickle.loads(payload)  # the danger is real
    assert marker.exists()
    marker.unlink()
    archive = str(tmp_path / 'ViT-T-16.pt')
    tiny_archive(archive)
    rewrite_member(archive, '/data.pkl', lambda data: payload)
    dst = tmp_path / 'out.pth'
    assert cli().main([archive, str(dst)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f'error: {archive}: its data refers to {os.system.__module__}.system,'
        ' which is no tensor or module: loading it would run code, which '
        'mmprompt never does; not a checkpoint to use'
    ]
    assert not marker.exists() and not dst.exists()


@pytest.mark.parametrize(
    'suffix, change, reason', [
        # Where the cut lands decides the unpickler's complaint (EOFError
        # or UnpicklingError: pickle data was truncated).
        ('/data.pkl', lambda data: data[:len(data) // 2],
         'a TorchScript archive that is truncated or corrupt ('),
        ('/data.pkl', lambda data: b'\x80\x02not a pickle',
         'a TorchScript archive that is truncated or corrupt '
         '(UnpicklingError: '),
        ('/data/3', lambda data: data[:4],
         'data/3 in the TorchScript archive holds 4 bytes, not the 8 its '
         'tensors need; truncated or corrupt'),
        ('/modules/module.py', lambda data: data.replace(b']', b''),
         'code/__torch__/torch/nn/modules/module.py in the TorchScript '
         'archive does not parse; truncated or corrupt'),
    ],
    ids=['truncated-pickle', 'garbage-pickle', 'short-storage', 'bad-code'])
def test_cli_corrupt_archive_one_line(tmp_path, capsys, suffix, change,
                                      reason):
    archive = str(tmp_path / 'ViT-T-16.pt')
    tiny_archive(archive)
    rewrite_member(archive, suffix, change)
    with pytest.raises(CheckpointError) as info:
        read_torchscript(archive)
    assert str(info.value).startswith(f'{archive}: {reason}')
    dst = tmp_path / 'out.pth'
    assert cli().main([archive, str(dst)]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [f'error: {info.value}']
    assert not dst.exists()


def test_module_containing_itself_one_line(tmp_path):
    """A data.pkl whose module is its own submodule: one line, no
    RecursionError."""
    payload = b''.join([
        b'\x80\x02',  # PROTO 2
        b'c__torch__.torch.nn.modules.module\nModule\n',  # the fixture's
        b')\x81q\x01',  # NEWOBJ, memo 1
        b'}X\x05\x00\x00\x00innerh\x01s',  # {'inner': memo 1}
        b'b.',  # BUILD, STOP
    ])
    archive = str(tmp_path / 'ViT-T-16.pt')
    tiny_archive(archive)
    rewrite_member(archive, '/data.pkl', lambda data: payload)
    with pytest.raises(CheckpointError) as info:
        read_torchscript(archive)
    assert str(info.value) == (
        f'{archive}: inner in the TorchScript archive contains itself; '
        'truncated or corrupt')
