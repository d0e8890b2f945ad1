# Copyright (c) mmprompt contributors. All rights reserved.
import copy
import hashlib
import importlib.util
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import load_checkpoint
from testing_utils import save_openai_torchscript

from mmprompt.converters import (ConverterError, convert_openai_clip,
                                 infer_openai_clip_arch)
from mmprompt.registry import MODELS

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CLI = osp.join(REPO_ROOT, 'tools', 'model_converters',
               'openai_clip_to_mmprompt.py')
CONFIG = osp.join(REPO_ROOT, 'configs', '_base_', 'models',
                  'clip_vit-base-p16.py')

# A tiny OpenAI layout: one head per 64 channels, as OpenAI's rule says.
WIDTH, LAYERS, PATCH, IMAGE, EMBED, CONTEXT, VOCAB = 64, 2, 16, 32, 32, 16, 100


def openai_state_dict(dtype: torch.dtype = torch.float32) -> dict:
    """A random state dict with the keys and shapes of OpenAI's ViT CLIP."""
    g = torch.Generator().manual_seed(0)

    def rand(*shape):
        return (0.02 * torch.randn(*shape, generator=g)).to(dtype)

    sd = {
        'positional_embedding': rand(CONTEXT, WIDTH),
        'text_projection': rand(WIDTH, EMBED),
        'logit_scale': torch.tensor(4.2, dtype=dtype),
        'visual.class_embedding': rand(WIDTH),
        'visual.positional_embedding': rand((IMAGE // PATCH)**2 + 1, WIDTH),
        'visual.proj': rand(WIDTH, EMBED),
        'visual.conv1.weight': rand(WIDTH, 3, PATCH, PATCH),
        'visual.ln_pre.weight': 1 + rand(WIDTH),
        'visual.ln_pre.bias': rand(WIDTH),
        'visual.ln_post.weight': 1 + rand(WIDTH),
        'visual.ln_post.bias': rand(WIDTH),
        'token_embedding.weight': rand(VOCAB, WIDTH),
        'ln_final.weight': 1 + rand(WIDTH),
        'ln_final.bias': rand(WIDTH),
    }
    for tower in ('visual.transformer', 'transformer'):
        for i in range(LAYERS):
            p = f'{tower}.resblocks.{i}.'
            sd.update({
                p + 'ln_1.weight': 1 + rand(WIDTH),
                p + 'ln_1.bias': rand(WIDTH),
                p + 'attn.in_proj_weight': rand(3 * WIDTH, WIDTH),
                p + 'attn.in_proj_bias': rand(3 * WIDTH),
                p + 'attn.out_proj.weight': rand(WIDTH, WIDTH),
                p + 'attn.out_proj.bias': rand(WIDTH),
                p + 'ln_2.weight': 1 + rand(WIDTH),
                p + 'ln_2.bias': rand(WIDTH),
                p + 'mlp.c_fc.weight': rand(4 * WIDTH, WIDTH),
                p + 'mlp.c_fc.bias': rand(4 * WIDTH),
                p + 'mlp.c_proj.weight': rand(WIDTH, 4 * WIDTH),
                p + 'mlp.c_proj.bias': rand(WIDTH),
            })
    return sd


def tiny_model():
    """mmprompt's CLIP from the real config, shrunk to the tiny layout."""
    model_cfg = copy.deepcopy(Config.fromfile(CONFIG).model)
    model_cfg.vision_backbone.update(
        arch=dict(
            embed_dims=WIDTH,
            num_layers=LAYERS,
            num_heads=1,
            feedforward_channels=4 * WIDTH),
        img_size=IMAGE,
        patch_size=PATCH)
    model_cfg.text_backbone.update(
        embed_dims=WIDTH,
        num_layers=LAYERS,
        num_heads=1,
        context_length=CONTEXT,
        vocab_size=VOCAB)
    model_cfg.proj_dims = EMBED
    return MODELS.build(model_cfg)


@pytest.fixture(scope='module')
def cli():
    spec = importlib.util.spec_from_file_location('openai_clip_to_mmprompt',
                                                  CLI)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def src(tmp_path):
    path = str(tmp_path / 'ViT-T-16.pth')
    torch.save(openai_state_dict(), path)
    return path


def sha256(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def one_error_line(capsys, match):
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith('error: ') and match in lines[0], err
    assert 'Traceback' not in err


def test_convert_maps_every_key():
    sd = openai_state_dict()
    converted, meta = convert_openai_clip(sd)
    model_keys = set(tiny_model().state_dict())
    assert set(converted) == model_keys
    assert len(converted) == len(sd) == 2 * 12 * LAYERS + 14
    assert meta['format'] == 'mmprompt' and meta['source'] == 'openai_clip'
    assert meta['dropped'] == [] and meta['dtype'] == 'float32'


def test_convert_renames_and_transforms():
    sd = openai_state_dict()
    out, _ = convert_openai_clip(sd)
    # (C,) -> (1, 1, C); (L, C) -> (1, L, C); x @ proj -> Linear weight.
    assert out['visual.cls_token'].shape == (1, 1, WIDTH)
    assert torch.equal(out['visual.cls_token'][0, 0],
                       sd['visual.class_embedding'])
    assert torch.equal(out['visual.pos_embed'][0],
                       sd['visual.positional_embedding'])
    assert out['visual_proj.weight'].shape == (EMBED, WIDTH)
    assert torch.equal(out['visual_proj.weight'], sd['visual.proj'].t())
    pairs = {
        'visual.ln_pre.weight': 'visual.pre_norm.weight',
        'visual.ln_post.bias': 'visual.ln1.bias',
        'visual.conv1.weight': 'visual.patch_embed.projection.weight',
        'visual.transformer.resblocks.1.attn.in_proj_weight':
        'visual.layers.1.attn.qkv.weight',
        'visual.transformer.resblocks.0.attn.out_proj.bias':
        'visual.layers.0.attn.proj.bias',
        'visual.transformer.resblocks.1.mlp.c_fc.weight':
        'visual.layers.1.ffn.layers.0.0.weight',
        'visual.transformer.resblocks.1.mlp.c_proj.bias':
        'visual.layers.1.ffn.layers.1.bias',
        'visual.transformer.resblocks.0.ln_2.weight':
        'visual.layers.0.ln2.weight',
        'transformer.resblocks.1.attn.in_proj_bias':
        'text_encoder.resblocks.1.attn.in_proj_bias',
        'token_embedding.weight': 'text_encoder.token_embedding.weight',
        'text_projection': 'text_encoder.text_projection',
        'logit_scale': 'logit_scale',
    }
    for src_key, dst_key in pairs.items():
        assert torch.equal(out[dst_key], sd[src_key]), src_key


def test_infer_arch():
    arch = infer_openai_clip_arch(openai_state_dict())
    assert arch == dict(
        vision_width=WIDTH,
        vision_layers=LAYERS,
        vision_heads=1,
        patch_size=PATCH,
        image_size=IMAGE,
        embed_dim=EMBED,
        text_width=WIDTH,
        text_layers=LAYERS,
        text_heads=1,
        context_length=CONTEXT,
        vocab_size=VOCAB)


def test_drop_list_and_unknown_keys():
    sd = openai_state_dict()
    sd.update(
        input_resolution=torch.tensor(IMAGE),
        context_length=torch.tensor(CONTEXT),
        vocab_size=torch.tensor(VOCAB))
    _, meta = convert_openai_clip(sd)
    assert meta['dropped'] == [
        'context_length', 'input_resolution', 'vocab_size'
    ]
    sd['visual.transformer.resblocks.0.attn.gamma'] = torch.ones(WIDTH)
    with pytest.raises(
            ConverterError,
            match=r'1 unknown key\(s\): '
            r'visual\.transformer\.resblocks\.0\.attn\.gamma'):
        convert_openai_clip(sd)


def test_other_models_fail_clearly():
    text_keys = {
        k: v
        for k, v in openai_state_dict().items() if not k.startswith('visual.')
    }
    resnet = dict(
        text_keys, **{
            'visual.conv1.weight': torch.zeros(32, 3, 3, 3),
            'visual.bn1.weight': torch.zeros(32),
            'visual.layer1.0.conv1.weight': torch.zeros(64, 32, 1, 1),
            'visual.attnpool.positional_embedding': torch.zeros(50, 64),
        })
    with pytest.raises(
            ConverterError,
            match=r'^not a CLIP ViT \(OpenAI layout\) checkpoint: it is an '
            r'OpenAI ResNet CLIP \(ModifiedResNet image tower\); mmprompt '
            r'has no converter for it$'):
        convert_openai_clip(resnet)
    ram = {
        'visual_encoder.layers.0.blocks.0.attn.qkv.weight': torch.zeros(3, 1),
        'tagging_head.layer.0.crossattention.self.query.weight':
        torch.zeros(1),
        'label_embed': torch.zeros(4, 2),
    }
    with pytest.raises(
            ConverterError,
            match=r'^not a CLIP ViT \(OpenAI layout\) checkpoint: it is a '
            r'recognize-anything RAM / RAM\+\+ checkpoint; convert it with '
            r'tools/model_converters/ram_to_mmprompt.py$'):
        convert_openai_clip(ram)
    # A layout no family has: the unknown keys are named.
    with pytest.raises(
            ConverterError,
            match=r'not a CLIP ViT \(OpenAI layout\) checkpoint: 1 '
            r'unknown key\(s\): encoder.weight'):
        convert_openai_clip({'encoder.weight': torch.zeros(1)})
    # Known keys only, but not a whole model.
    with pytest.raises(ConverterError, match='missing visual.class_embedding'):
        convert_openai_clip(text_keys)


def test_fp16_becomes_fp32_unless_asked():
    sd = openai_state_dict(torch.float16)
    out, meta = convert_openai_clip(sd)
    assert {v.dtype for v in out.values()} == {torch.float32}
    assert meta['dtype'] == 'float32'
    assert torch.equal(out['visual_proj.weight'],
                       sd['visual.proj'].float().t())
    out, meta = convert_openai_clip(sd, dtype=None)
    assert {v.dtype for v in out.values()} == {torch.float16}


def test_cli_output_loads_strictly(cli, src, tmp_path):
    dst = str(tmp_path / 'out' / 'tiny.pth')
    assert cli.main([src, dst]) == 0
    ckpt = torch.load(dst, map_location='cpu', weights_only=True)
    assert set(ckpt) == {'state_dict', 'meta'}
    meta = ckpt['meta']
    assert meta['format'] == 'mmprompt'
    assert meta['source_file'] == 'ViT-T-16.pth'
    assert meta['arch']['vision_width'] == WIDTH
    model = tiny_model()
    load_checkpoint(model, dst, map_location='cpu', strict=True)
    sd = openai_state_dict()
    assert torch.equal(model.visual.cls_token[0, 0],
                       sd['visual.class_embedding'])
    assert torch.equal(model.text_encoder.resblocks[1].mlp.c_fc.weight,
                       sd['transformer.resblocks.1.mlp.c_fc.weight'])


def test_cli_dtype(cli, tmp_path):
    src = str(tmp_path / 'half.pth')
    torch.save({'state_dict': openai_state_dict(torch.float16)}, src)
    assert cli.main([src, str(tmp_path / 'a.pth')]) == 0
    assert cli.main([src, str(tmp_path / 'b.pth'), '--dtype', 'fp16']) == 0
    a = torch.load(str(tmp_path / 'a.pth'), weights_only=True)
    b = torch.load(str(tmp_path / 'b.pth'), weights_only=True)
    assert a['state_dict']['logit_scale'].dtype == torch.float32
    assert b['state_dict']['logit_scale'].dtype == torch.float16
    assert b['meta']['dtype'] == 'float16'


def test_cli_never_overwrites_without_force(cli, src, tmp_path, capsys):
    dst = tmp_path / 'out.pth'
    dst.write_bytes(b'keep me')
    assert cli.main([src, str(dst)]) == 2
    one_error_line(capsys, 'exists; pass --force')
    assert dst.read_bytes() == b'keep me'
    assert cli.main([src, str(dst), '--force']) == 0
    assert 'state_dict' in torch.load(str(dst), weights_only=True)
    assert cli.main([src, src, '--force']) == 2
    one_error_line(capsys, 'output would overwrite the input')


def test_cli_leaves_src_unchanged(cli, src, tmp_path):
    before = sha256(src)
    assert cli.main([src, str(tmp_path / 'out.pth')]) == 0
    assert sha256(src) == before


def test_cli_bad_inputs(cli, src, tmp_path, capsys):
    truncated = tmp_path / 'truncated.pth'
    with open(src, 'rb') as f:
        data = f.read()
    truncated.write_bytes(data[:len(data) // 2])
    text = tmp_path / 'notes.txt'
    text.write_text('not a checkpoint\n')
    other = tmp_path / 'other.pth'
    torch.save({'model': {'backbone.conv.weight': torch.zeros(1)}}, str(other))
    cases = [
        (truncated, 'not a readable PyTorch checkpoint'),
        (text, 'not a readable PyTorch checkpoint'),
        (other, 'unknown key(s): backbone.conv.weight'),
        (tmp_path / 'missing.pth', 'no such file'),
    ]
    for path, message in cases:
        dst = tmp_path / 'never.pth'
        assert cli.main([str(path), str(dst)]) == 2, path
        one_error_line(capsys, message)
        assert not dst.exists()
    # An output of this converter is not an input.
    converted = str(tmp_path / 'converted.pth')
    assert cli.main([src, converted]) == 0
    capsys.readouterr()
    assert cli.main([converted, str(tmp_path / 'again.pth')]) == 2
    one_error_line(capsys, 'already an mmprompt checkpoint')


@pytest.mark.filterwarnings('ignore::FutureWarning')  # torch.jit
def test_cli_reads_torchscript_archive(cli, tmp_path):
    sd = openai_state_dict(torch.float16)
    archive = str(tmp_path / 'ViT-T-16.pt')
    save_openai_torchscript(sd, archive, IMAGE, CONTEXT, VOCAB)
    dst = str(tmp_path / 'out.pth')
    assert cli.main([archive, dst]) == 0
    ckpt = torch.load(dst, weights_only=True)
    expected, _ = convert_openai_clip(sd)
    assert ckpt['state_dict'].keys() == expected.keys()
    for key, value in expected.items():
        assert ckpt['state_dict'][key].dtype == torch.float32
        assert torch.equal(ckpt['state_dict'][key], value), key
    assert ckpt['meta']['dropped'] == [
        'context_length', 'input_resolution', 'vocab_size'
    ]


@pytest.mark.filterwarnings('ignore::FutureWarning')  # torch.jit
def test_cli_process_prints_one_line(tmp_path):
    """A real process, so that warnings reach stderr too: a TorchScript
    archive of another model gives one line and exit status 1."""
    sd = openai_state_dict()
    sd['visual.attnpool.k_proj.weight'] = torch.zeros(2, 2)
    archive = str(tmp_path / 'RN50.pt')
    save_openai_torchscript(sd, archive, IMAGE, CONTEXT, VOCAB)
    result = subprocess.run(
        [sys.executable, CLI, archive,
         str(tmp_path / 'out.pth')],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        'error: not a CLIP ViT (OpenAI layout) checkpoint: 1 unknown '
        'key(s): visual.attnpool.k_proj.weight'
    ]
    assert not (tmp_path / 'out.pth').exists()
