# Copyright (c) mmprompt contributors. All rights reserved.
"""The open_clip converter: every key of open_clip's layout mapped onto the
config-built model at full size (shapes only, on the meta device), other
families and sizes refused in one line, and the zoo's Converter keys."""
import copy
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config

from mmprompt.apis import hub, model_zoo
from mmprompt.converters import (ConverterError, convert_open_clip,
                                 converter_command, parse_converter)
from mmprompt.registry import MODELS

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = osp.join(REPO_ROOT, 'configs', '_base_', 'models')

# Our base config and the open_clip architecture of its weights.
ARCHS = [
    ('clip_vit-huge-p14_laion2b', 'ViT-H-14', 'ViT-H-14'),
    ('clip_vit-gigantic-p14_laion2b', 'ViT-bigG-14', 'ViT-bigG-14'),
    ('clip_vit-large-p14_datacomp-xl', 'ViT-L-14', 'ViT-L-14'),
    ('clip_vit-huge-p14_dfn5b-378px', 'ViT-H-14-378-quickgelu', 'ViT-H-14'),
    ('clip_vit-base-p16', 'ViT-B-16', 'ViT-B-16'),
]


def meta_open_clip_state(arch: str) -> dict:
    """open_clip's state dict of ``arch``: its keys and shapes, no data."""
    open_clip = pytest.importorskip('open_clip')
    with torch.device('meta'):
        model = open_clip.model.CLIP(**open_clip.get_model_config(arch))
    return model.state_dict()


@pytest.mark.parametrize('config,arch,size', ARCHS, ids=[a[1] for a in ARCHS])
def test_full_size_state_dict_fits_the_config(config, arch, size):
    """At full size (bigG included), every open_clip key maps onto a key of
    the config-built model with its exact shape, and none is left over."""
    converted, meta = convert_open_clip(meta_open_clip_state(arch))
    cfg = Config.fromfile(osp.join(CONFIGS, f'{config}.py')).model
    with torch.device('meta'):
        model = MODELS.build(copy.deepcopy(cfg))
    ours = model.state_dict()
    assert sorted(converted) == sorted(ours)
    bad = {
        k: (tuple(v.shape), tuple(ours[k].shape))
        for k, v in converted.items() if v.shape != ours[k].shape
    }
    assert bad == {}
    assert meta['source'] == 'open_clip' and meta['size'] == size
    heads = (model.visual.layers[0].attn.num_heads,
             model.text_encoder.resblocks[0].attn.num_heads)
    assert (meta['arch']['vision_heads'], meta['arch']['text_heads']) == heads
    assert meta['arch']['image_size'] == cfg.vision_backbone.img_size


def test_one_tensor_renamed_and_transposed():
    sd = {k: torch.zeros(v.shape) for k, v in meta_open_clip_state(
        'ViT-B-32').items()}
    sd['visual.proj'] = torch.randn(sd['visual.proj'].shape)
    wrapped = dict(state_dict={'module.' + k: v for k, v in sd.items()})
    converted, meta = convert_open_clip(wrapped)  # MetaCLIP's .pt layout
    assert torch.equal(converted['visual_proj.weight'], sd['visual.proj'].t())
    assert meta['arch']['vision_heads'] == 12 and meta['size'] == 'ViT-B-32'


def test_a_size_without_a_config_lists_the_sizes():
    sd = meta_open_clip_state('ViT-L-14')
    sd = {k: v for k, v in sd.items() if '.resblocks.23.' not in k}
    with pytest.raises(
            ConverterError,
            match=r'^an open_clip ViT of a size .*image tower 1024 x 23, '
            r'patch 14; text tower 768 x 12\); sizes: ViT-B-32, ViT-B-16, '
            r'ViT-L-14, ViT-H-14, ViT-bigG-14$'):
        convert_open_clip(sd)


@pytest.mark.parametrize('keys,what', [
    (['label_embed', 'visual_encoder.patch_embed.proj.weight'],
     'it is a recognize-anything RAM / RAM\\+\\+ checkpoint; convert it '
     'with tools/model_converters/ram_to_mmprompt.py'),
    (['visual.trunk.patch_embed.proj.weight', 'logit_bias'],
     'it is an open_clip SigLIP / SigLIP 2 checkpoint; convert it with '
     'tools/model_converters/siglip_to_mmprompt.py'),
    (['visual.trunk.patch_embed.proj.weight'],
     'it is an open_clip CLIP with a timm image tower'),
    (['visual.layer1.0.conv1.weight', 'visual.bn1.weight'],
     'it is an OpenAI ResNet CLIP'),
    (['visual_proj.weight', 'visual.cls_token'],
     'it is an mmprompt checkpoint \\(already converted\\)'),
    (['vision_model.embeddings.class_embedding', 'text_model.x'],
     'it is a Hugging Face transformers CLIPModel'),
])
def test_other_families_are_named(keys, what):
    sd = {k: torch.zeros(1) for k in keys}
    with pytest.raises(ConverterError) as e:
        convert_open_clip(sd)
    message = str(e.value)
    assert '\n' not in message
    assert message.startswith(
        'not a CLIP ViT (open_clip layout) checkpoint: ')
    assert re.search(what, message), message


def test_converter_keys_and_old_script_strings():
    assert parse_converter('open_clip') == ('open_clip', {})
    assert parse_converter(
        'tools/model_converters/ram_to_mmprompt.py --model ram_plus') == (
            'ram', dict(model='ram_plus'))
    assert parse_converter(
        'tools/model_converters/openai_clip_to_mmprompt.py') == (
            'openai_clip', {})
    assert converter_command('ram --model ram') == [
        'tools/model_converters/ram_to_mmprompt.py', '--model', 'ram'
    ]
    from mmprompt.converters import CONVERTERS
    with pytest.raises(ConverterError, match="unknown converter 'eva02'; "
                       f"known: {', '.join(CONVERTERS)}$"):
        parse_converter('eva02')


def test_zoo_rows_without_sha256_say_where_to_put_the_file(
        tmp_path, monkeypatch):
    """open_clip's files share one name on the Hub: each zoo row has its
    own download name, and with no published SHA-256 the hub asks for the
    file by hand, naming the converter command."""
    monkeypatch.setenv('MMPROMPT_HOME', str(tmp_path))
    names = model_zoo.list_models('clip_vit-*-p14_*')
    infos = [model_zoo.get_model_info(n) for n in names]
    files = {i.weights: i.weights_file for i in infos}
    assert len(set(files.values())) == len(files) >= 8
    info = model_zoo.get_model_info('clip_vit-huge-p14_laion2b')
    assert info.weights_file == ('CLIP-ViT-H-14-laion2B-s32B-b79K_'
                                 'open_clip_pytorch_model.bin')
    with pytest.raises(hub.DownloadError) as e:
        hub.get_checkpoint(info.name, progress=False)
    downloads = tmp_path / 'downloads'
    assert str(e.value) == (
        f'{info.weights} has no published SHA-256 in the zoo, so mmprompt '
        f'does not download it; download it by hand to {downloads}/ and run '
        'again, or convert it yourself: python '
        'tools/model_converters/open_clip_to_mmprompt.py '
        f'{downloads}/{info.weights_file} {hub.checkpoint_path(info.name)}')


def test_cli(tmp_path, capsys):
    """tools/model_converters/open_clip_to_mmprompt.py: a ViT-B-32 file in
    open_clip's layout becomes a .safetensors of its meta; another family's
    file is one error line and exit status 1, nothing written."""
    from testing_utils import load_module
    from mmprompt.utils.checkpoint import read_checkpoint
    cli = load_module(
        '_open_clip_to_mmprompt',
        osp.join(REPO_ROOT, 'tools', 'model_converters',
                 'open_clip_to_mmprompt.py'))
    src = str(tmp_path / 'open_clip_pytorch_model.bin')
    torch.save({
        k: torch.full(v.shape, 0.5, dtype=torch.float16)
        for k, v in meta_open_clip_state('ViT-B-32').items()
    }, src)
    dst = str(tmp_path / 'b32.safetensors')
    assert cli.main([src, dst, '--dtype', 'fp16']) == 0
    sd, meta = read_checkpoint(dst)
    assert (meta['source'], meta['size'], meta['source_file']) == (
        'open_clip', 'ViT-B-32', 'open_clip_pytorch_model.bin')
    assert len(sd) == 302 and sd['logit_scale'].dtype == torch.float16
    ram = str(tmp_path / 'ram.pth')
    torch.save({'label_embed': torch.zeros(2, 2)}, ram)
    capsys.readouterr()
    assert cli.main([ram, str(tmp_path / 'ram.safetensors')]) == 2
    assert capsys.readouterr().err == (
        'error: not a CLIP ViT (open_clip layout) checkpoint: it is a '
        'recognize-anything RAM / RAM++ checkpoint; convert it with '
        'tools/model_converters/ram_to_mmprompt.py\n')
    assert not osp.exists(tmp_path / 'ram.safetensors')


@pytest.mark.parametrize('arch,family', [
    ('RN50', 'openai_resnet'),
    ('convnext_base', 'open_clip_timm'),
    ('ViT-B-16-SigLIP', 'siglip'),
    ('coca_ViT-B-32', 'open_clip_coca'),
    ('ViT-bigG-14', 'clip_vit'),
])
def test_open_clips_other_models_are_told_apart(arch, family):
    """The families of open_clip 3.x's own models, from their state dicts
    (built on the meta device)."""
    open_clip = pytest.importorskip('open_clip')
    from mmprompt.converters import identify_checkpoint
    cfg = dict(open_clip.get_model_config(arch))
    cls = open_clip.model.CustomTextCLIP if cfg.pop(
        'custom_text', False) else open_clip.model.CLIP
    if arch.startswith('coca'):
        cls = open_clip.coca_model.CoCa
    with torch.device('meta'):
        sd = cls(**cfg).state_dict()
    assert identify_checkpoint(sd)[0] == family
    if family != 'clip_vit':
        with pytest.raises(ConverterError, match='^not a CLIP ViT '):
            convert_open_clip(sd)
