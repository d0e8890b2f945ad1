# Copyright (c) mmprompt contributors. All rights reserved.
"""The RAM / RAM++ converter: key coverage, tensor transforms, CLI."""
import hashlib
import importlib.util
import json
import os.path as osp

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.config import Config
from mmpretrain.models.utils import PatchMerging

from mmprompt.converters import (ConverterError, apply_rules, convert_ram,
                                 swin_unfold_reduction)
from mmprompt.converters.ram import DROP, RULES
from mmprompt.models.ram import load_ram_checkpoint
from mmprompt.registry import MODELS

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = osp.join(REPO_ROOT, 'configs', 'ram')
CLI = osp.join(REPO_ROOT, 'tools', 'model_converters', 'ram_to_mmprompt.py')
TINY = dict(
    visual_encoder=dict(
        arch=dict(embed_dims=12, depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8])),
    tagging_head=dict(embed_dims=64, feedforward_channels=128))


def tiny_model(config: str, num_classes: int, **overrides) -> nn.Module:
    cfg = Config.fromfile(osp.join(CONFIGS, config)).model
    for key, value in TINY.items():
        cfg[key].update(value)
    cfg.num_classes = num_classes
    cfg.update(overrides)
    return MODELS.build(cfg)


def load(path: str):
    return torch.load(path, map_location='cpu', weights_only=True)


@pytest.fixture(scope='module')
def cli():
    spec = importlib.util.spec_from_file_location('ram_to_mmprompt', CLI)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def tiny(ram_vectors_dir):
    """The tiny RAM's state dict and expected JSON."""
    with open(osp.join(ram_vectors_dir, 'ram_tiny_expected.json')) as f:
        meta = json.load(f)
    return load(osp.join(ram_vectors_dir, 'ram_tiny_state_dict.pth')), meta


@pytest.fixture(scope='module')
def tiny_plus(ram_vectors_dir):
    with open(osp.join(ram_vectors_dir, 'ram_plus_tiny_expected.json')) as f:
        meta = json.load(f)
    return load(osp.join(ram_vectors_dir,
                         'ram_plus_tiny_state_dict.pth')), meta


def tsv_state_dict(path: str) -> dict:
    """Every key of a full-size reference model, as meta tensors."""
    with open(path) as f:
        rows = [line.rstrip('\n').split('\t') for line in f][1:]
    dtypes = {'float32': torch.float32, 'int64': torch.int64}
    return {
        key:
        torch.empty(
            [] if shape == 'scalar' else [int(s) for s in shape.split('x')],
            dtype=dtypes[dtype],
            device='meta')
        for key, shape, dtype, *_ in rows
    }


@pytest.mark.parametrize('name,config', [
    ('ram_swin_l_keys.tsv', 'ram_swin-large-p4-w12_384px_normal.py'),
    ('ram_plus_swin_l_keys.tsv', 'ram-plus_swin-large-p4-w12_384px_normal.py')
])
def test_every_full_size_key_is_mapped_or_dropped(ram_data_dir, name, config):
    """The full-size key lists convert to exactly the model's state dict."""
    source = tsv_state_dict(osp.join(osp.dirname(ram_data_dir), name))
    converted, meta = convert_ram(source)
    assert meta['num_classes'] == 4585
    assert set(meta['dropped']) | {
        k
        for k in source if k not in meta['dropped']
    } == set(source)
    # Dropped: captioning modules and recomputed buffers only.
    for key in meta['dropped']:
        assert key.startswith(('tag_encoder.', 'text_decoder.')) or \
            key.endswith(('relative_position_index', 'attn_mask')), key
    kept = [k for k in source if k not in meta['dropped']]
    assert len(kept) == (366 if 'plus' not in name else 367)
    model = MODELS.build(Config.fromfile(osp.join(CONFIGS, config)).model)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in converted.items()} == expected
    assert meta['num_descriptions'] == (51 if 'plus' in name else 1)


def microsoft_patch_merging(x: torch.Tensor, res: int, norm: nn.LayerNorm,
                            reduction: nn.Linear) -> torch.Tensor:
    """Microsoft's PatchMerging: 2x2 neighbours concatenated as
    [(even, even), (odd, even), (even, odd), (odd, odd)] (row, col)."""
    b, _, c = x.shape
    x = x.view(b, res, res, c)
    x = torch.cat([
        x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]
    ], -1).view(b, -1, 4 * c)
    return reduction(norm(x))


def test_patch_merging_unfold_reorder():
    """Microsoft's PatchMerging equals MMPreTrain's with converted weights."""
    g = torch.Generator().manual_seed(0)
    c, res = 6, 8
    norm, reduction = nn.LayerNorm(4 * c), nn.Linear(4 * c, 2 * c, bias=False)
    with torch.no_grad():
        for p in [norm.weight, norm.bias, reduction.weight]:
            p.copy_(torch.randn(p.shape, generator=g))
        reduction.weight /= (4 * c)**0.5
    source = {
        'visual_encoder.layers.1.downsample.norm.weight':
        norm.weight.data,
        'visual_encoder.layers.1.downsample.norm.bias':
        norm.bias.data,
        'visual_encoder.layers.1.downsample.reduction.weight':
        reduction.weight.data,
    }
    converted, _ = apply_rules(source, RULES, DROP)
    merging = PatchMerging(c, 2 * c, norm_cfg=dict(type='LN'))
    prefix = 'visual_encoder.stages.1.downsample.'
    merging.load_state_dict({
        k[len(prefix):]: v
        for k, v in converted.items()
    },
                            strict=True)
    x = torch.randn(2, res * res, c, generator=g)
    with torch.no_grad():
        out, size = merging(x, (res, res))
        expected = microsoft_patch_merging(x, res, norm, reduction)
    assert size == (res // 2, res // 2)
    # Same up to float rounding (the LayerNorm sums in another order).
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=1e-6)
    assert not torch.allclose(out, merging(x.flip(1), (res, res))[0])


def test_renamed_and_transformed_tensors(tiny, ram_vectors_dir):
    sd, meta = tiny
    converted, info = convert_ram(sd, meta['tags_en'], meta['tags_zh'],
                                  meta['thresholds'])
    same = {
        'visual_encoder.patch_embed.proj.weight':
        'visual_encoder.patch_embed.projection.weight',
        'visual_encoder.layers.2.blocks.1.attn.qkv.bias':
        'visual_encoder.stages.2.blocks.1.attn.w_msa.qkv.bias',
        'visual_encoder.layers.1.blocks.0.mlp.fc1.weight':
        'visual_encoder.stages.1.blocks.0.ffn.layers.0.0.weight',
        'visual_encoder.layers.1.blocks.0.mlp.fc2.bias':
        'visual_encoder.stages.1.blocks.0.ffn.layers.1.bias',
        'visual_encoder.norm.weight': 'visual_encoder.norm3.weight',
        'tagging_head.encoder.layer.1.crossattention.self.key.weight':
        'tagging_head.layers.1.cross_attn.k_proj.weight',
        'tagging_head.encoder.layer.0.crossattention.output.LayerNorm.bias':
        'tagging_head.layers.0.norm1.bias',
        'tagging_head.encoder.layer.1.output.LayerNorm.bias':
        'tagging_head.layers.1.norm2.bias',
        'tagging_head.encoder.layer.1.output.dense.weight':
        'tagging_head.layers.1.fc2.weight',
        'label_embed': 'label_embed',
    }
    for src, dst in same.items():
        assert torch.equal(converted[dst], sd[src]), src
    reduction = 'visual_encoder.layers.0.downsample.reduction.weight'
    assert torch.equal(
        converted['visual_encoder.stages.0.downsample.reduction.weight'],
        swin_unfold_reduction(sd[reduction]))
    buffers = load(osp.join(ram_vectors_dir, 'swin_buffers.pth'))
    index = 'visual_encoder.stages.3.blocks.1.attn.w_msa.' \
        'relative_position_index'
    assert torch.equal(converted[index], buffers['relative_position_index'])
    assert converted['class_threshold'].tolist() == pytest.approx(
        meta['thresholds'])
    assert info['tag_list_chinese'][0] == '三维CG渲染 '  # trailing space kept
    assert info['source'] == 'ram' and info['model'] == 'RAMNormal'
    assert any(k.startswith('tag_encoder.') for k in info['dropped'])
    # The old name of the tagging head converts the same way.
    renamed = {
        k.replace('tagging_head.', 'vision_multi.'): v
        for k, v in sd.items()
    }
    again, _ = convert_ram(renamed, meta['tags_en'])
    assert again.keys() == converted.keys()


def test_detection_defaults_and_errors(tiny, tiny_plus):
    sd, meta = tiny
    sd_plus, meta_plus = tiny_plus
    converted, info = convert_ram({'model': sd_plus})
    assert info['source'] == 'ram_plus' and info['model'] == 'RAMPlus'
    assert (info['num_classes'], info['num_descriptions']) == (8, 51)
    assert converted['class_threshold'].tolist() == [pytest.approx(0.68)] * 8
    assert converted['reweight_scale'].item() == pytest.approx(
        sd_plus['reweight_scale'].item())
    cases = [
        (dict(checkpoint=sd, model='ram_plus'), 'asked for ram_plus'),
        (dict(checkpoint=sd_plus, model='ram'), 'asked for ram but'),
        (dict(checkpoint=sd, tag_list=['a'] * 19), '19 names but'),
        (dict(checkpoint=sd_plus, tag_list=['a'] * 7), '7 names but'),
        (dict(checkpoint=sd, tag_list_chinese=['a']), 'Chinese tag list'),
        (dict(checkpoint=sd, thresholds=[0.5] * 19), '19 thresholds'),
        (dict(checkpoint=sd, thresholds=[0.5] * 19 + [1.5]), 'lines \\[20\\]'),
        (dict(checkpoint={'visual.proj': torch.zeros(2, 2)}),
         'no label_embed'),
        (dict(checkpoint=dict(sd, extra=torch.zeros(1))),
         'unknown key\\(s\\): extra'),
        (dict(checkpoint={
            'state_dict': sd,
            'meta': {
                'format': 'mmprompt'
            }
        }), 'already an mmprompt checkpoint'),
    ]
    for kwargs, message in cases:
        with pytest.raises(ConverterError, match=message):
            convert_ram(**kwargs)
    odd = dict(sd_plus, label_embed=torch.zeros(50, 512))
    with pytest.raises(ConverterError, match='not a multiple of 51'):
        convert_ram(odd)
    assert convert_ram(odd, tag_list=['a'] * 10)[1]['num_descriptions'] == 5


def sha256(path) -> str:
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


@pytest.fixture
def source_files(tmp_path, tiny, ram_data_dir):
    """A wrapped tiny RAM checkpoint and its tag files, as released."""
    sd, meta = tiny
    src = tmp_path / 'ram_tiny.pth'
    torch.save({'model': sd}, src)
    files = {}
    for name, lines, end in [('tags.txt', meta['tags_en'], ''),
                             ('tags_zh.txt', meta['tags_zh'], '\n'),
                             ('thr.txt', map(str, meta['thresholds']), '\n')]:
        files[name] = tmp_path / name
        files[name].write_text('\n'.join(lines) + end, encoding='utf-8')
    args = [
        '--tag-list',
        str(files['tags.txt']), '--tag-list-chinese',
        str(files['tags_zh.txt']), '--thresholds',
        str(files['thr.txt'])
    ]
    return src, args


def test_cli_converts_and_loads_strictly(cli, source_files, tmp_path, tiny,
                                         ram_vectors_dir):
    src, tag_args = source_files
    sd, meta = tiny
    dst = tmp_path / 'out' / 'ram_mmprompt.pth'
    before = sha256(src)
    assert cli.main([str(src), str(dst)] + tag_args) == 0
    assert sha256(src) == before
    ckpt = load(dst)
    assert ckpt['meta']['tag_list'] == meta['tags_en']
    assert ckpt['meta']['tag_list_chinese'] == meta['tags_zh']
    assert ckpt['meta']['source_file'] == 'ram_tiny.pth'

    model = tiny_model('ram_swin-large-p4-w12_384px_normal.py', 20).eval()
    load_ram_checkpoint(model, str(dst))
    assert model.vocabulary.names == tuple(meta['tags_en'])
    assert model.class_threshold.tolist() == pytest.approx(meta['thresholds'])
    images = load(osp.join(ram_vectors_dir, 'inputs.pth'))['images']
    with torch.no_grad():
        samples = model.predict(images)
    assert [' | '.join(s.pred_tags_chinese)
            for s in samples] == meta['expected']['tags_zh']

    # Existing output: refused without --force, replaced with it.
    assert cli.main([str(src), str(dst)] + tag_args) == 2
    assert cli.main([str(src), str(dst), '--force'] + tag_args) == 0
    assert load(dst)['meta']['tag_list'] == meta['tags_en']
    # A RAM checkpoint is not RAM++.
    assert cli.main([str(src),
                     str(tmp_path / 'x.pth'), '--model', 'ram_plus']) == 2


def test_openset_model_loads_ram_checkpoint_strictly(cli, source_files,
                                                     tmp_path):
    """The text encoder's weights come from its init_cfg, not the RAM
    checkpoint, and strict loading accepts that."""
    src, tag_args = source_files
    dst = tmp_path / 'ram.pth'
    assert cli.main([str(src), str(dst)] + tag_args) == 0
    text = dict(
        type='CLIPTextTransformer',
        embed_dims=32,
        num_layers=1,
        num_heads=4,
        out_dims=512)
    clip = MODELS.build(text)
    clip_file = tmp_path / 'clip.pth'
    torch.save(
        dict(state_dict={
            'text_encoder.' + k: v
            for k, v in clip.state_dict().items()
        }), clip_file)
    text['init_cfg'] = dict(
        type='Pretrained', checkpoint=str(clip_file), prefix='text_encoder.')
    model = tiny_model(
        'ram_swin-large-p4-w12_384px_openset.py',
        20,
        text_encoder=text,
        categories=['cat', 'Ale'],
        templates=['a {}.'])
    load_ram_checkpoint(model, str(dst))
    for k, v in clip.state_dict().items():
        assert torch.equal(model.text_encoder.state_dict()[k], v), k
    assert model.is_openset
    assert model.vocabulary.names == ('cat', 'Ale')
    # Only the text encoder's keys may be missing.
    state = {
        k: v
        for k, v in load(dst)['state_dict'].items() if k != 'fc.bias'
    }
    with pytest.raises(RuntimeError, match=r'Missing key\(s\).*"fc.bias"'):
        model.load_state_dict(state, strict=True)


def test_cli_bad_inputs(cli, source_files, tmp_path, capsys):
    src, tag_args = source_files
    converted = tmp_path / 'converted.pth'
    assert cli.main([str(src), str(converted)] + tag_args) == 0
    text = tmp_path / 'notes.txt'
    text.write_text('not a checkpoint')
    truncated = tmp_path / 'truncated.pth'
    truncated.write_bytes(src.read_bytes()[:100000])
    clip = tmp_path / 'clip.pth'
    torch.save({'visual.class_embedding': torch.zeros(8)}, clip)
    short = tmp_path / 'short.txt'
    short.write_text('cat\ndog')
    cases = [
        ([str(text)], 'not a readable PyTorch checkpoint'),
        ([str(truncated)], 'not a readable PyTorch checkpoint'),
        ([str(clip)], 'no label_embed'),
        ([str(converted)], 'already an mmprompt checkpoint'),
        ([str(src), '--tag-list', str(short)], '2 names but label_embed'),
        ([str(tmp_path / 'missing.pth')], 'no such file'),
    ]
    capsys.readouterr()
    for i, (args, message) in enumerate(cases):
        dst = tmp_path / f'bad{i}.pth'
        assert cli.main(args[:1] + [str(dst)] + args[1:]) == 2
        err = capsys.readouterr().err
        assert err.count('\n') == 1 and message in err, err
        assert not dst.exists()
    # Output onto the input is refused even with --force.
    assert cli.main([str(src), str(src), '--force']) == 2
    assert 'overwrite the input' in capsys.readouterr().err


def test_ram_plus_cli(cli, tiny_plus, tmp_path):
    sd, meta = tiny_plus
    src = tmp_path / 'ram_plus.pth'
    torch.save({'model': sd}, src)
    dst = tmp_path / 'ram_plus_mmprompt.pth'
    assert cli.main([str(src), str(dst), '--model', 'ram_plus']) == 0
    model = tiny_model('ram-plus_swin-large-p4-w12_384px_normal.py', 8)
    load_ram_checkpoint(model, str(dst))  # no names: indices only
    assert model.vocabulary.names is None
    with pytest.raises(ValueError, match='no tag_list'):
        model.set_tags_from_meta(load(dst)['meta'])
    assert torch.equal(model.reweight_scale, sd['reweight_scale'])
    assert F.normalize(model.label_embed, dim=-1).shape == (408, 512)
