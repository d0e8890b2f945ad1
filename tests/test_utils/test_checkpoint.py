# Copyright (c) mmprompt contributors. All rights reserved.
import os
import os.path as osp
import re
import subprocess
import sys
import textwrap

import pytest
import torch
from mmengine.config import Config

from mmprompt.apis.builder import build_from_config
from mmprompt.utils import CheckpointError
from mmprompt.utils.checkpoint import (META_KEY, load_checkpoint,
                                       read_checkpoint, save_checkpoint)
from testing_utils import REPO_ROOT, load_module, save_openai_torchscript
from testing_utils import clip as clip_testing

CIFAR = 'clip/clip_vit-base-p16_zeroshot-cls_cifar100.py'


@pytest.fixture(scope='module')
def tiny_clip(tmp_path_factory):
    root = tmp_path_factory.mktemp('clip')
    cfg = clip_testing.write_tiny_config(str(root / 'tiny.py'), CIFAR)
    ckpt = clip_testing.write_converted_checkpoint(str(root / 'tiny.pth'))
    return cfg, ckpt


def _model(cfg):
    return build_from_config(Config.fromfile(cfg))


@pytest.mark.parametrize('ext', ['.pth', '.safetensors'])
def test_save_and_read_round_trip(tmp_path, ext):
    sd = {'a': torch.arange(6.).reshape(2, 3), 'b': torch.ones(2)}
    sd['c'] = sd['a'][0]  # shares storage with 'a'
    path = str(tmp_path / f'x{ext}')
    save_checkpoint(sd, dict(format='mmprompt', tags=['x']), path)
    got, meta = read_checkpoint(path)
    assert meta == dict(format='mmprompt', tags=['x'])
    assert set(got) == {'a', 'b', 'c'}
    torch.testing.assert_close(got['c'], torch.arange(3.), atol=0, rtol=0)
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o666 & ~_umask())
    if ext == '.safetensors':
        from safetensors import safe_open
        with safe_open(path, 'pt') as f:
            assert META_KEY in f.metadata()


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_strict_load_of_the_right_checkpoint(tiny_clip):
    cfg, ckpt = tiny_clip
    model = _model(cfg)
    result = load_checkpoint(model, ckpt)
    assert result['meta']['source'] == 'openai_clip'
    sd, _ = read_checkpoint(ckpt)
    torch.testing.assert_close(model.logit_scale, sd['logit_scale'])


def test_unconverted_openai_clip_is_refused(tiny_clip, tmp_path):
    model = _model(tiny_clip[0])
    raw = str(tmp_path / 'raw.pth')
    torch.save(clip_testing.openai_state_dict(), raw)
    with pytest.raises(
            CheckpointError,
            match='OpenAI / open_clip CLIP checkpoint, not converted; '
            'convert it with tools/model_converters/'
            'openai_clip_to_mmprompt.py'):
        load_checkpoint(model, raw)
    jit = str(tmp_path / 'ViT-B-16.pt')
    save_openai_torchscript(clip_testing.openai_state_dict(), jit,
                            clip_testing.TINY['img_size'])
    with pytest.raises(CheckpointError, match='TorchScript.*convert it'):
        load_checkpoint(model, jit)


def test_ram_checkpoint_for_a_clip_config(tiny_clip, tmp_path):
    from conftest import RAM_VECTORS
    from testing_utils import ram as ram_testing
    if not osp.isdir(RAM_VECTORS):
        pytest.skip(reason='shared RAM vectors missing')
    ram = ram_testing.convert_tiny(RAM_VECTORS, str(tmp_path))
    model = _model(tiny_clip[0])
    with pytest.raises(
            CheckpointError,
            match=r'a RAM checkpoint \(20 tags\), but this '
            'config is CLIP'):
        load_checkpoint(model, ram)
    raw = osp.join(RAM_VECTORS, 'ram_tiny_state_dict.pth')
    with pytest.raises(
            CheckpointError,
            match='unconverted RAM checkpoint; convert it with '
            'tools/model_converters/ram_to_mmprompt.py'):
        load_checkpoint(model, raw)


def test_clip_of_another_size_is_named():
    from mmprompt.registry import MODELS  # noqa: F401
    base = Config.fromfile(osp.join(REPO_ROOT, 'configs', CIFAR))
    large = Config.fromfile(
        osp.join(REPO_ROOT, 'configs', 'clip',
                 'clip_vit-large-p14_zeroshot-cls_cifar100.py'))
    # Only the state dict's shapes are read: meta-device models cost
    # nothing.
    with torch.device('meta'):
        model_b = build_from_config(base)
        model_l = build_from_config(large)
    with pytest.raises(
            CheckpointError,
            match='a ViT-L/14 checkpoint for a ViT-B/16 config'):
        load_checkpoint(model_b, model_l.state_dict(), name='l14.pth')


def test_random_dicts_are_refused(tiny_clip, tmp_path):
    model = _model(tiny_clip[0])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    path = str(tmp_path / 'a.pth')
    torch.save({'a': 1}, path)
    with pytest.raises(CheckpointError, match="'a' is a int, not a tensor"):
        load_checkpoint(model, path)
    torch.save({'a': torch.ones(1)}, path)
    with pytest.raises(
            CheckpointError,
            match=r'does not fit .* key\(s\) missing .*'
            r'1 unexpected key\(s\) \(a\)'):
        load_checkpoint(model, path)
    # A partial checkpoint: refused before anything is copied.
    sd, meta = read_checkpoint(tiny_clip[1])
    del sd['logit_scale']
    with pytest.raises(CheckpointError, match='1 key.* missing'):
        load_checkpoint(model, dict(state_dict=sd, meta=meta))
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k], atol=0, rtol=0)


def test_truncated_and_missing_files(tiny_clip, tmp_path):
    model = _model(tiny_clip[0])
    data = open(tiny_clip[1], 'rb').read()
    path = tmp_path / 'cut.pth'
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(CheckpointError, match='truncated or corrupt'):
        load_checkpoint(model, str(path))
    with pytest.raises(CheckpointError, match='no such checkpoint'):
        load_checkpoint(model, str(tmp_path / 'nope.pth'))
    with pytest.raises(CheckpointError, match='is a directory'):
        load_checkpoint(model, str(tmp_path))
    bad = tmp_path / 'bad.safetensors'
    bad.write_bytes(b'\x10\x00\x00\x00\x00\x00\x00\x00{not json}')
    with pytest.raises(CheckpointError, match='not a readable safetensors'):
        load_checkpoint(model, str(bad))


PAYLOAD = textwrap.dedent("""
    import os, sys, torch
    class Payload:
        def __reduce__(self):
            return (os.system, ('touch ' + sys.argv[2],))
    torch.save({'state_dict': {'w': torch.ones(1)}, 'x': Payload()},
               sys.argv[1])
    """)


def test_planted_payload_never_runs(tmp_path):
    """With TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 (torch's escape hatch that
    turns weights_only off by default), read_checkpoint still refuses."""
    ckpt, marker = str(tmp_path / 'evil.pth'), str(tmp_path / 'ran')
    subprocess.run([sys.executable, '-c', PAYLOAD, ckpt, marker], check=True)
    assert not osp.exists(marker)
    env = dict(
        os.environ, TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD='1', PYTHONPATH=REPO_ROOT)
    code = ('import sys; from mmprompt.utils.checkpoint import '
            'read_checkpoint\ntry:\n read_checkpoint(sys.argv[1])\n'
            'except Exception as e: print(type(e).__name__, e)')
    out = subprocess.run([sys.executable, '-c', code, ckpt],
                         env=env,
                         capture_output=True,
                         text=True,
                         check=True).stdout
    assert not osp.exists(marker)
    assert out.startswith('CheckpointError') and 'refuses' in out


def _int(t):
    return t.round().long()


def _bool(t):
    return t > 0


def _nan(t):
    t = t.clone()
    t.view(-1)[:2] = float('nan')
    return t


def _inf(t):
    t = t.clone()
    t.view(-1)[5] = float('-inf')
    return t


BROKEN = dict(
    int=(_int, r'visual\.cls_token holds integer values \(torch\.int64\) '
         r'where the model has floating-point ones \(torch\.float32\); the '
         'file is broken: convert or download it again'),
    bool=(_bool, r'visual\.cls_token holds boolean values \(torch\.bool\) '
          r'where the model has floating-point ones \(torch\.float32\)'),
    nan=(_nan, r'visual\.cls_token holds 2 NaN or infinite value\(s\) of 64; '
         'the weights are broken: convert or download them again'),
    inf=(_inf, r'visual\.cls_token holds 1 NaN or infinite value\(s\) of 64'),
)


@pytest.mark.parametrize('kind', sorted(BROKEN))
@pytest.mark.parametrize('ext', ['.pth', '.safetensors'])
def test_impossible_weights_are_refused(tiny_clip, tmp_path, kind, ext):
    """Integer or boolean values where the model has floats, and NaN / Inf
    weights, are refused in one line naming the key, before any copy."""
    change, message = BROKEN[kind]
    model = _model(tiny_clip[0])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    sd, meta = read_checkpoint(tiny_clip[1])
    sd['visual.cls_token'] = change(sd['visual.cls_token'])
    path = str(tmp_path / f'broken{ext}')
    save_checkpoint(sd, meta, path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(model, path)
    assert re.fullmatch(re.escape(path) + ': ' + message + '.*',
                        str(info.value))
    assert '\n' not in str(info.value)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k], atol=0, rtol=0)


def test_integer_buffers_stay_integers(tmp_path):
    """An integer buffer must get integers: a float count is refused, a
    count of another integer width, float16 weights and huge finite
    weights load."""
    model = torch.nn.BatchNorm1d(2)
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(
            CheckpointError,
            match=r'^ckpt: num_batches_tracked holds floating-point values '
            r'\(torch\.float32\) where the model has integer ones '
            r'\(torch\.int64\)'):
        load_checkpoint(model,
                        dict(sd, num_batches_tracked=torch.tensor(3.)),
                        name='ckpt')
    load_checkpoint(
        model,
        dict(
            sd,
            weight=torch.tensor([2., 3.]).half(),
            num_batches_tracked=torch.tensor(7, dtype=torch.int32)))
    assert model.weight.tolist() == [2., 3.]
    assert int(model.num_batches_tracked) == 7
    # Finite values whose sum overflows are finite (no false refusal).
    load_checkpoint(model, dict(sd, weight=torch.tensor([3e38, 3e38])))
    assert torch.equal(model.weight, torch.tensor([3e38, 3e38]))


def test_broken_weights_stop_a_tool_in_one_line(tiny_clip, tmp_path,
                                                capsys):
    """tools/infer.py with NaN weights: exit 2, one line naming the key,
    no output written."""
    from PIL import Image

    from mmprompt.utils.errors import run_tool
    infer = load_module('_mmprompt_tools_infer_ckpt',
                        osp.join(REPO_ROOT, 'tools', 'infer.py'))
    sd, meta = read_checkpoint(tiny_clip[1])
    sd['logit_scale'] = torch.tensor(float('inf'))
    ckpt = str(tmp_path / 'inf.safetensors')
    save_checkpoint(sd, meta, ckpt)
    image = str(tmp_path / 'a.png')
    Image.new('RGB', (32, 32), (200, 10, 10)).save(image)
    out = tmp_path / 'classes.jsonl'
    with pytest.raises(SystemExit) as info:
        run_tool(infer.main, [
            'classify', image, '--model', tiny_clip[0], '--checkpoint', ckpt,
            '--out', str(out), '--no-progress', '--num-workers', '0'
        ])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err == (f'error: {ckpt}: logit_scale holds 1 NaN or infinite '
                   'value(s) of 1; the weights are broken: convert or '
                   'download them again\n')
    assert not out.exists()


class _Cache(torch.nn.Module):
    """Declares a key rebuilt at run time and a part loaded elsewhere."""
    runtime_keys = (r'cache_\d', )
    loaded_elsewhere = (r'tower\..+', )

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(2))
        self.tower = torch.nn.Linear(2, 2)


class _Holder(torch.nn.Module):

    def __init__(self) -> None:
        super().__init__()
        self.head = torch.nn.Linear(2, 1)
        self.inner = _Cache()


def test_keys_declared_by_the_model_classes():
    """``runtime_keys`` / ``loaded_elsewhere`` of a class apply to its
    modules, wherever they sit in the model, and nowhere else."""
    model = _Holder()
    sd = dict(
        (k, torch.zeros_like(v)) for k, v in model.state_dict().items()
        if not k.startswith('inner.tower.'))
    sd['inner.cache_0'] = torch.zeros(3)
    load_checkpoint(model, dict(sd))
    assert model.inner.weight.tolist() == [0.0, 0.0]
    assert model.inner.tower.weight.abs().sum() > 0  # left as it was
    # Declared relative to the declaring module: not matched at the top.
    with pytest.raises(
            CheckpointError,
            match=r'^checkpoint: does not fit this model: 1 unexpected '
            r'key\(s\) \(cache_0\)$'):
        load_checkpoint(model, dict(sd, cache_0=torch.zeros(3)))
    del sd['head.bias']
    with pytest.raises(CheckpointError, match=r'1 key\(s\) missing '
                       r'\(head\.bias\)$'):
        load_checkpoint(model, sd)
