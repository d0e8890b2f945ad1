# Copyright (c) mmprompt contributors. All rights reserved.
"""The PE-Core converter: every key mapped or dropped, the architecture
read from shapes, its command line, the zoo's ``Converter: pe_core`` key,
and checkpoints of another family refused in one line naming them."""
import importlib.util
import os.path as osp
import re

import pytest
import torch
from testing_utils import clip as H

from mmprompt.apis import hub
from mmprompt.converters import (CONVERTERS, ConverterError,
                                 convert_openai_clip, convert_pe_core)
from mmprompt.converters.pe_core import DROP
from mmprompt.registry import MODELS
from mmprompt.utils.checkpoint import load_checkpoint
from mmprompt.utils.errors import CheckpointError

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CLI = osp.join(REPO_ROOT, 'tools', 'model_converters',
               'pe_core_to_mmprompt.py')


@pytest.fixture(scope='module')
def pe():
    """A tiny random PE-Core in open_clip's layout, and our tiny model."""
    pytest.importorskip('open_clip')
    pytest.importorskip('timm')
    from test_models.test_pe_core import TinyReference, randomize_, tiny_cfg
    ref = randomize_(TinyReference(), seed=0)
    state_dict = {k: v.detach().clone() for k, v in ref.state_dict().items()}
    return state_dict, tiny_cfg()


@pytest.fixture(scope='module')
def cli():
    spec = importlib.util.spec_from_file_location('pe_core_to_mmprompt', CLI)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_key_is_mapped(pe):
    state_dict, cfg = pe
    converted, meta = convert_pe_core(state_dict)
    model = MODELS.build(cfg)
    assert set(converted) == set(model.state_dict())
    assert len(converted) == len(state_dict)
    assert meta['source'] == 'pe_core' and meta['dropped'] == []
    # Renamed, not transformed.
    assert converted['visual_proj.bias'] is state_dict[
        'visual.trunk.head.bias']
    assert torch.equal(converted['visual.layers.1.ffn.layers.0.0.weight'],
                       state_dict['visual.trunk.blocks.1.mlp.fc1.weight'])
    assert torch.equal(converted['visual.attn_pool.kv.bias'],
                       state_dict['visual.trunk.attn_pool.kv.bias'])
    assert torch.equal(
        converted['text_encoder.resblocks.1.attn.in_proj_weight'],
        state_dict['text.transformer.resblocks.1.attn.in_proj_weight'])


def test_buffers_are_dropped_and_strangers_refused(pe):
    state_dict, _ = pe
    extra = dict(state_dict)
    extra['text.attn_mask'] = torch.zeros(32, 32)
    extra['visual.trunk.rope.pos_embed'] = torch.zeros(4, 64)
    _, meta = convert_pe_core(extra)
    assert meta['dropped'] == ['text.attn_mask', 'visual.trunk.rope.pos_embed']
    assert len(DROP) == 2
    extra['visual.trunk.blocks.0.gamma_1'] = torch.ones(64)
    with pytest.raises(
            ConverterError,
            match=r'^not a PE-Core \(open_clip layout\) checkpoint: 1 '
            r'unknown key\(s\): visual\.trunk\.blocks\.0\.gamma_1$'):
        convert_pe_core(extra)


def test_fp16_source_becomes_fp32(pe):
    state_dict, _ = pe
    half = {k: v.half() for k, v in state_dict.items()}
    converted, meta = convert_pe_core(half)
    assert meta['dtype'] == 'float32'
    assert torch.equal(converted['logit_scale'],
                       state_dict['logit_scale'].half().float())


def test_families_are_refused_naming_the_file(pe):
    state_dict, cfg = pe
    openai = H.openai_state_dict()
    with pytest.raises(
            ConverterError,
            match=r'^not a PE-Core \(open_clip layout\) checkpoint: this is '
            r'an OpenAI CLIP checkpoint$'):
        convert_pe_core(openai)
    with pytest.raises(
            ConverterError,
            match=r'^not a CLIP ViT \(OpenAI layout\) checkpoint: it is an '
            r'open_clip PE-Core checkpoint; convert it with '
            r'tools/model_converters/pe_core_to_mmprompt\.py$'):
        convert_openai_clip(state_dict)
    # Converted checkpoints given to the other family's config.
    pe_model = MODELS.build(cfg)
    clip_converted, _ = convert_openai_clip(openai)
    with pytest.raises(
            CheckpointError,
            match=r'^clip\.pth: a CLIP ViT \(64 wide\)/32@64px \(2 layers\) '
            r'checkpoint, but this config is PE-Core ViT \(64 wide\)/16@32px '
            r'\(2 layers\)$'):
        load_checkpoint(pe_model, clip_converted, name='clip.pth')
    pe_converted, _ = convert_pe_core(state_dict)
    from test_models.test_clip import build_tiny
    clip_model = build_tiny()
    with pytest.raises(
            CheckpointError,
            match=r'^pe\.pth: a PE-Core ViT \(64 wide\)/16@32px \(2 layers\) '
            r'checkpoint, but this config is CLIP '):
        load_checkpoint(clip_model, pe_converted, name='pe.pth')
    # The released file, not converted.
    with pytest.raises(
            CheckpointError,
            match=r'^open_clip_model\.safetensors: unconverted PE-Core '
            r'checkpoint \(open_clip layout\); convert it with '
            r'tools/model_converters/pe_core_to_mmprompt\.py$'):
        load_checkpoint(
            pe_model, state_dict, name='open_clip_model.safetensors')


def test_cli_converts_a_safetensors_release(pe, cli, tmp_path, capsys):
    from safetensors.torch import save_file
    state_dict, cfg = pe
    src = str(tmp_path / 'open_clip_model.safetensors')
    save_file({k: v.contiguous() for k, v in state_dict.items()}, src)
    dst = str(tmp_path / 'pe.safetensors')
    assert cli.main([src, dst]) == 0
    model = MODELS.build(cfg)
    loaded = load_checkpoint(model, dst)
    assert loaded['meta']['arch']['context_length'] == 32
    assert loaded['meta']['source_file'] == 'open_clip_model.safetensors'
    # No overwrite without --force; one error line.
    assert cli.main([src, dst]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('error: ') and \
        'exists' in err[0]


def test_zoo_converter_key(pe, tmp_path):
    assert CONVERTERS['pe_core'] is convert_pe_core
    state_dict, _ = pe
    src = str(tmp_path / 'open_clip_pytorch_model.bin')
    torch.save(state_dict, src)
    # The key, and the older form, the script's path.
    for converter in ('pe_core',
                      'tools/model_converters/pe_core_to_mmprompt.py'):
        info = type('Info', (),
                    dict(converter=converter, metafile='m.yml', name='pe'))
        converted, meta = hub._convert(info, src, {})
        assert meta['source'] == 'pe_core'
        assert torch.equal(converted['visual.cls_token'],
                           state_dict['visual.trunk.cls_token'])


def test_zoo_rows_are_open_clips_releases():
    open_clip = pytest.importorskip('open_clip')
    import yaml
    from mmprompt.apis import get_model_info, list_models
    theirs = {
        'pe-core_vit-base-p16': 'PE-Core-B-16',
        'pe-core_vit-large-p14': 'PE-Core-L-14-336'
    }
    published = {
        'pe-core_vit-base-p16_zeroshot-cls_in1k': 78.4,
        'pe-core_vit-large-p14_zeroshot-cls_in1k-336px': 83.5
    }
    names = list_models('pe-core*')  # not the prompt learners' *pe-core-pre*
    assert len(names) == 6
    for name in names:
        info = get_model_info(name)
        arch = theirs[name.split('-336px')[0].split('_zeroshot')[0]]
        hf_hub = open_clip.get_pretrained_cfg(arch, 'meta')['hf_hub']
        assert info.weights == (f'https://huggingface.co/{hf_hub}resolve/'
                                'main/open_clip_model.safetensors')
        assert info.converter == 'pe_core' and info.sha256 is None
        top1 = [r['metrics']['Top 1 Accuracy'] for r in info.results]
        assert top1 == ([published[name]] if name in published else [])
    with open(osp.join(REPO_ROOT, 'configs', 'pe_core', 'metafile.yml')) as f:
        rows = yaml.safe_load(f)['Models']
    assert {row['License'] for row in rows} == {'Apache-2.0'}


def test_zoo_converts_a_file_put_in_downloads(pe, tmp_path):
    """No published SHA-256: nothing is downloaded, the one-line error
    names the converter command, and a copy in downloads/ is converted."""
    from safetensors.torch import save_file
    home = tmp_path / 'home'
    with pytest.raises(hub.DownloadError) as e:
        hub.get_checkpoint('pe-core_vit-base-p16', home=str(home))
    message = str(e.value)
    assert '\n' not in message
    assert 'has no published SHA-256 in the zoo' in message
    # Where to put the file: the path in the converter command.
    found = re.search(
        r'python tools/model_converters/pe_core_to_mmprompt\.py '
        r'(\S+\.safetensors) ', message)
    assert found and found.group(1).startswith(f'{home}/downloads/')
    state_dict, _ = pe
    save_file({
        k: v.contiguous()
        for k, v in state_dict.items()
    }, found.group(1))
    path = hub.get_checkpoint('pe-core_vit-base-p16', home=str(home))
    from mmprompt.utils.checkpoint import read_checkpoint
    converted, meta = read_checkpoint(path)
    assert meta['source'] == 'pe_core' and meta['zoo_name'] == \
        'pe-core_vit-base-p16'
    assert torch.equal(converted['visual.pos_embed'],
                       state_dict['visual.trunk.pos_embed'])
