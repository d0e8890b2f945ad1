# Copyright (c) mmprompt contributors. All rights reserved.
import copy
import gc
import importlib.util
import math
import os
import os.path as osp

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.runner import load_checkpoint
from mmpretrain.models import ClsDataPreprocessor
from mmpretrain.structures import DataSample
from testing_utils import save_openai_torchscript
from torch.testing import assert_close

from mmprompt.models.clip import (CLIP, CLIPTokenizer, CLIPVisionTransformer,
                                  CLIPZeroShot)
from mmprompt.models.clip.text_encoder import CausalSelfAttention
from mmprompt.registry import MODELS

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = osp.join(REPO_ROOT, 'configs', '_base_', 'models')
CLI = osp.join(REPO_ROOT, 'tools', 'model_converters',
               'openai_clip_to_mmprompt.py')

PROMPTS = [
    'a photo of a cat.',
    'a bad photo of the golden retriever.',
    'itap of a {}',
    'A sculpture of a tiny red rocket standing on a launchpad, at dusk!',
    'the plastic zebra, 3 times',
]
LOGIT_SCALE = 4.2


def model_cfg(name: str = 'clip_vit-base-p16') -> dict:
    return copy.deepcopy(
        Config.fromfile(osp.join(CONFIGS, f'{name}.py')).model)


def randomize_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-degenerate random weights: N(0, 0.02) weights, embeddings and
    biases, LayerNorm scales 1 + N(0, 0.1), a non-default logit scale."""
    g = torch.Generator().manual_seed(seed)
    norm_scales = {
        id(m.weight)
        for m in model.modules() if isinstance(m, nn.LayerNorm)
    }
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if name == 'logit_scale':
                p.fill_(LOGIT_SCALE)
            elif id(p) in norm_scales:
                p.copy_(1 + 0.1 * noise)
            else:
                p.copy_(0.02 * noise)
    return model


def build_tiny(model_type: str = 'CLIPZeroShot', seed: int = 0, **kwargs):
    """The real ViT-B/16 config, shrunk: width 64, 2 layers, 32px images."""
    cfg = model_cfg()
    cfg.vision_backbone.update(
        arch=dict(
            embed_dims=64, num_layers=2, num_heads=2,
            feedforward_channels=256),
        img_size=32)
    cfg.text_backbone.update(embed_dims=64, num_layers=2, num_heads=2)
    cfg.update(type=model_type, proj_dims=32, **kwargs)
    if model_type == 'CLIP':
        cfg.pop('templates')
    model = randomize_(MODELS.build(cfg), seed)
    model.eval()
    return model


@pytest.fixture(scope='module')
def tiny():
    return build_tiny()


@pytest.fixture(scope='module')
def tokenizer():
    return CLIPTokenizer()


@pytest.fixture(scope='module')
def images():
    return torch.randn(
        3, 3, 32, 32, generator=torch.Generator().manual_seed(1))


# ---------------------------------------------------------------- configs --


@pytest.mark.parametrize(
    'name,patch,size,width,layers,text_width,proj,params', [
        ('clip_vit-base-p32', 32, 224, 768, 12, 512, 512, 151277313),
        ('clip_vit-base-p16', 16, 224, 768, 12, 512, 512, 149620737),
        ('clip_vit-large-p14', 14, 224, 1024, 24, 768, 768, 427616513),
        ('clip_vit-large-p14-336px', 14, 336, 1024, 24, 768, 768, 427944193),
    ])
def test_real_configs_build(name, patch, size, width, layers, text_width, proj,
                            params):
    model = MODELS.build(model_cfg(name))
    assert type(model) is CLIPZeroShot
    visual = model.visual
    assert type(visual) is CLIPVisionTransformer
    assert visual.patch_embed.projection.kernel_size == (patch, patch)
    assert visual.patch_embed.projection.bias is None
    assert visual.pos_embed.shape == (1, (size // patch)**2 + 1, width)
    assert len(visual.layers) == layers
    assert visual.layers[0].attn.num_heads == width // 64
    assert visual.pre_norm.eps == visual.ln1.eps == 1e-5
    assert type(visual.layers[0].ffn.layers[0][1]).__name__ == 'QuickGELU'
    text = model.text_encoder
    assert (text.embed_dims, text.num_layers, text.context_length,
            text.vocab_size) == (text_width, 12, 77, 49408)
    assert text.resblocks[0].attn.num_heads == text_width // 64
    assert model.visual_proj.weight.shape == (proj, width)
    # OpenAI's parameter counts, e.g. 151,277,313 for ViT-B/32.
    assert sum(p.numel() for p in model.parameters()) == params


def test_config_dicts_are_not_mutated():
    cfg = model_cfg()
    cfg.vision_backbone.arch = dict(
        embed_dims=64, num_layers=1, num_heads=1, feedforward_channels=64)
    cfg.text_backbone.update(num_layers=1)
    before = copy.deepcopy(cfg)
    MODELS.build(cfg)
    assert cfg == before


def test_data_preprocessor(tiny, images):
    pre = tiny.data_preprocessor
    assert type(pre) is ClsDataPreprocessor
    assert_close(pre.mean.flatten(),
                 torch.tensor([0.48145466, 0.4578275, 0.40821073]) * 255)
    assert_close(pre.std.flatten(),
                 torch.tensor([0.26862954, 0.26130258, 0.27577711]) * 255)
    assert pre.to_rgb  # BGR from LoadImageFromFile -> RGB
    # The MMEngine path: uint8 BGR images in, predictions out.
    bgr = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    tiny.set_prototypes(torch.randn(4, 32))
    samples = tiny.test_step(
        dict(inputs=list(bgr), data_samples=[DataSample(),
                                             DataSample()]))
    rgb = bgr.flip(1).float()
    expected = tiny.predict((rgb - pre.mean) / pre.std)
    for got, want in zip(samples, expected):
        assert_close(got.pred_score, want.pred_score)


# ------------------------------------------------------------ text tower --


def test_causal_attention_matches_torch_multihead_attention():
    torch.manual_seed(0)
    ours = CausalSelfAttention(64, 4)
    nn.init.normal_(ours.in_proj_weight, std=0.1)
    nn.init.normal_(ours.in_proj_bias, std=0.1)
    ref = nn.MultiheadAttention(64, 4, batch_first=True)
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(2, 9, 64)
    mask = torch.full((9, 9), float('-inf')).triu(1)
    with torch.no_grad():
        want = ref(x, x, x, attn_mask=mask, need_weights=False)[0]
        assert_close(ours(x), want, atol=1e-6, rtol=0)
    assert set(ours.state_dict()) == {
        'in_proj_weight', 'in_proj_bias', 'out_proj.weight', 'out_proj.bias'
    }


def test_text_tower_short_context_is_exact(tiny, tokenizer):
    ids = tokenizer(PROMPTS)
    longest = int(ids.argmax(dim=-1).max()) + 1
    with torch.no_grad():
        full = tiny.extract_text_feat(ids)
        short = tiny.extract_text_feat(ids[:, :longest])
        alone = tiny.extract_text_feat(ids[:1, :8])  # 'a photo of a cat.'
    assert ids[0, 7] == tokenizer.eot_token_id and longest < 77
    assert full.shape == (len(PROMPTS), 32)
    assert full.abs().max() > 0.1
    assert_close(short, full, atol=1e-6, rtol=0)
    assert_close(alone[0], full[0], atol=1e-6, rtol=0)


def test_text_tower_pools_the_eot_token(tiny, tokenizer):
    ids = tokenizer(['a photo of a cat.', 'a photo of a dog.'])
    after = ids.clone()
    after[:, 10:] = 5  # after the end-of-text token: no effect
    before = ids.clone()
    before[:, 2] = 5  # before it: changes the feature
    with torch.no_grad():
        feats = tiny.extract_text_feat(torch.cat([ids, after, before]))
    assert_close(feats[2:4], feats[:2], atol=1e-6, rtol=0)
    assert (feats[4:] - feats[:2]).abs().max() > 1e-3


def test_text_tower_rejects_bad_ids(tiny):
    with pytest.raises(ValueError, match='exceed the context length 77'):
        tiny.extract_text_feat(torch.zeros(1, 78, dtype=torch.long))
    with pytest.raises(ValueError, match=r'shape \(N, L\)'):
        tiny.extract_text_feat(torch.zeros(77, dtype=torch.long))
    assert not any('mask' in k for k in tiny.state_dict())


# ------------------------------------------------------------------ CLIP --


def test_tokenize_delegates_to_the_tokenizer(tiny):
    ids = tiny.tokenize('a photo of a cat.')
    assert ids.shape == (1, 77) and ids.dtype == torch.long
    assert ids[0, :9].tolist() == [
        49406, 320, 1125, 539, 320, 2368, 269, 49407, 0
    ]
    with pytest.raises(ValueError, match='over the context length'):
        tiny.tokenize(' '.join(['cat'] * 80))
    assert tiny.tokenize(' '.join(['cat'] * 80), truncate=True)[0, -1] == 49407


def test_features_similarity_and_logits(tiny, images):
    texts = tiny.tokenize(PROMPTS[:2])
    with torch.no_grad():
        image_feats, text_feats = tiny.extract_feat(images, texts)
        assert_close(tiny.extract_feat(images=images), image_feats)
        assert_close(tiny.extract_feat(texts=texts), text_feats)
        sim = tiny.compute_similarity(images, texts)
        logits = tiny.compute_logits(images, texts)
    assert image_feats.shape == (3, 32) and text_feats.shape == (2, 32)
    manual = torch.stack([
        torch.stack([F.cosine_similarity(i, t, dim=0) for t in text_feats])
        for i in image_feats
    ])
    assert_close(sim, manual, atol=1e-6, rtol=0)
    assert_close(logits, math.exp(LOGIT_SCALE) * manual, atol=1e-4, rtol=0)
    assert sim.abs().max() > 0.05
    with pytest.raises(ValueError, match='pass images, texts or both'):
        tiny.extract_feat()


def test_base_clip_leaves_predict_to_subclasses(images):
    model = build_tiny('CLIP')
    assert type(model) is CLIP
    with pytest.raises(NotImplementedError, match='use a subclass'):
        model(images)
    with torch.no_grad():
        feats = model(images, mode='tensor')
        assert_close(feats, model.extract_image_feat(images))
    with pytest.raises(NotImplementedError, match='inference only'):
        model(images, mode='loss')
    with pytest.raises(ValueError, match="invalid mode 'train'"):
        model(images, mode='train')


def test_proj_dims_must_match_text_out_dims():
    cfg = model_cfg()
    cfg.text_backbone.out_dims = 256
    with pytest.raises(ValueError, match=r'out_dims \(256\) differs'):
        MODELS.build(cfg)


# ------------------------------------------------------------- zero-shot --


def test_zero_shot_scores_from_hand_made_prototypes(tiny, images):
    with torch.no_grad():
        feats = tiny.extract_image_feat(images)
    tiny.set_prototypes(feats * 3, categories=['a', 'b', 'c'])
    # Outside no_grad, as a user would call it.
    samples = tiny.predict(images)
    normed = F.normalize(feats, dim=-1)
    expected = (math.exp(LOGIT_SCALE) * normed @ normed.t()).softmax(-1)
    assert [s.pred_label.item() for s in samples] == [0, 1, 2]
    assert_close(
        torch.stack([s.pred_score for s in samples]),
        expected,
        atol=1e-5,
        rtol=0)
    assert tiny.categories == ['a', 'b', 'c']
    assert 'text_prototypes' not in tiny.state_dict()
    with pytest.raises(ValueError, match=r'must be \(C, 32\)'):
        tiny.set_prototypes(torch.zeros(3, 8))
    with pytest.raises(ValueError, match='2 categories for 3 prototypes'):
        tiny.set_prototypes(feats, categories=['a', 'b'])


def test_prototypes_batch_all_prompts(tokenizer, monkeypatch):
    categories = [
        'golden retriever', 'cat', 'dog', 'tabby cat', 'red fox', 'kite',
        'goldfish', 'great white shark'
    ]
    templates = ['a photo of a {}.', 'a blurry drawing of the small {}.']
    model = build_tiny(categories=categories, templates=templates)
    # Per class, full-length ids: OpenAI's loop.
    with torch.no_grad():
        expected = []
        for name in categories:
            feats = model.extract_text_feat(
                tokenizer([t.format(name) for t in templates]))
            mean = F.normalize(feats, dim=-1).mean(dim=0)
            expected.append(F.normalize(mean, dim=0))
        expected = torch.stack(expected)
    calls = []
    run = model.text_encoder.forward_embeddings

    def spy(embeds, eot, prefix=None):
        calls.append((prefix.length, tuple(embeds.shape[:2])))
        return run(embeds, eot, prefix)

    monkeypatch.setattr(model.text_encoder, 'forward_embeddings', spy)
    model.text_batch_size = 4  # batches cross the class boundaries
    model.set_categories(categories)
    # 16 prompts; each template's start (5 and 7 ids with the start token)
    # runs once per batch, the rests (names, '.', end) by equal length, at
    # most 4 a batch
    # (4 one-token names, 3 of two tokens, 'great white shark').
    assert sorted(calls) == [(5, (1, 5)), (5, (3, 4)), (5, (4, 3)),
                             (7, (1, 5)), (7, (3, 4)), (7, (4, 3))]
    assert_close(model.text_prototypes, expected, atol=1e-6, rtol=0)
    assert not model.text_prototypes.is_inference()


def test_loading_weights_clears_prototypes(images, tmp_path):
    model = build_tiny(categories=['cat', 'dog'], seed=0)
    assert model.text_prototypes is None  # not built before weights load
    first = model.predict(images)
    assert model.text_prototypes.shape == (2, 32)
    other = build_tiny(seed=1)
    path = str(tmp_path / 'other.pth')
    torch.save(dict(state_dict=other.state_dict()), path)
    load_checkpoint(model, path, map_location='cpu', strict=True)
    assert model.text_prototypes is None
    second = model.predict(images)
    other_prototypes = other.build_prototypes(['cat', 'dog'], other.templates)
    assert_close(model.text_prototypes, other_prototypes)
    assert not torch.equal(first[0].pred_score, second[0].pred_score)
    # Hand-set prototypes cannot be rebuilt: a clear error after a load.
    model.set_prototypes(torch.randn(2, 32))
    model.load_state_dict(other.state_dict())
    with pytest.raises(RuntimeError, match=r'call set_categories\(...\)'):
        model.predict(images)
    # set_categories makes them rebuildable again, templates kept.
    model.set_categories(['cat', 'dog'])
    model.load_state_dict(other.state_dict())
    assert_close(model.get_prototypes(), other_prototypes)


def test_zero_shot_argument_checks():
    model = build_tiny()
    with pytest.raises(RuntimeError, match='no text prototypes'):
        model.predict(torch.zeros(1, 3, 32, 32))
    with pytest.raises(ValueError, match="format string with '{}'"):
        model.set_categories(['cat'], templates=['a photo of a cat'])
    with pytest.raises(TypeError, match='sequence of strings'):
        model.set_categories('cat')
    with pytest.raises(ValueError, match='categories is empty'):
        model.set_categories([])
    # One template string is one template (resolve_templates' rule).
    assert build_tiny(templates='a photo of a {}.').templates == (
        'a photo of a {}.', )


# ---------------------------------------------------------------- parity --


@pytest.fixture(scope='module')
def cli():
    spec = importlib.util.spec_from_file_location('openai_clip_to_mmprompt',
                                                  CLI)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# How the open_clip weights reach mmprompt: ``torchscript`` also converts an
# fp16 TorchScript archive like OpenAI's, ``file`` runs the converter's
# command line on a saved state dict, ``memory`` calls the conversion
# function (ViT-L/14's two fp32 files would take 3.4 GB of disk).
PARITY = [
    pytest.param(
        'ViT-B-32-quickgelu',
        'clip_vit-base-p32',
        'torchscript',
        id='ViT-B-32',
        marks=pytest.mark.parity),
    pytest.param(
        'ViT-B-16-quickgelu',
        'clip_vit-base-p16',
        'file',
        id='ViT-B-16',
        marks=pytest.mark.parity),
    pytest.param(
        'ViT-L-14-quickgelu',
        'clip_vit-large-p14',
        'memory',
        id='ViT-L-14',
        marks=[pytest.mark.parity, pytest.mark.slow]),
]


@pytest.mark.filterwarnings('ignore::FutureWarning')  # torch.jit
@pytest.mark.parametrize('arch,config,route', PARITY)
def test_parity_with_open_clip(arch, config, route, cli, tokenizer, tmp_path):
    open_clip = pytest.importorskip('open_clip')
    from mmprompt.converters import convert_openai_clip
    ref = randomize_(open_clip.create_model(arch, pretrained=None), seed=0)
    ref.eval()
    size = ref.visual.image_size
    images = torch.randn(
        2, 3, *size, generator=torch.Generator().manual_seed(2))
    texts = tokenizer(PROMPTS)
    with torch.no_grad():
        ref_image = ref.encode_image(images)
        ref_text = ref.encode_text(texts)
        ref_logits = ref.get_logits(images, texts)[0]

    model = MODELS.build(model_cfg(config))
    model.eval()
    if route == 'memory':
        converted, _ = convert_openai_clip(ref.state_dict())
        del ref
        model.load_state_dict(converted, strict=True)
        del converted
    else:
        src = str(tmp_path / f'{arch}.pth')
        torch.save(ref.state_dict(), src)
        if route == 'torchscript':
            # fp16, like OpenAI's released archives.
            archive = str(tmp_path / f'{arch}.pt')
            half = {k: v.half() for k, v in ref.state_dict().items()}
            save_openai_torchscript(half, archive, size[0])
            del half
        del ref
        gc.collect()
        dst = str(tmp_path / 'converted.pth')
        assert cli.main([src, dst]) == 0
        os.remove(src)
        if route == 'torchscript':
            from_jit_path = str(tmp_path / 'from_jit.pth')
            assert cli.main([archive, from_jit_path]) == 0
            os.remove(archive)
            from_jit = torch.load(from_jit_path, weights_only=True)
            plain = torch.load(dst, weights_only=True)
            assert from_jit['state_dict'].keys() == plain['state_dict'].keys()
            for key, value in plain['state_dict'].items():
                got = from_jit['state_dict'][key]
                assert got.dtype == torch.float32, key
                assert torch.equal(got, value.half().float()), key
            assert from_jit['meta']['arch'] == plain['meta']['arch']
            assert from_jit['meta']['dropped'] == [
                'context_length', 'input_resolution', 'vocab_size'
            ]
            del from_jit, plain
            os.remove(from_jit_path)
        load_checkpoint(model, dst, map_location='cpu', strict=True)
    gc.collect()
    longest = int(texts.argmax(dim=-1).max()) + 1
    with torch.no_grad():
        image = model.extract_image_feat(images)
        text = model.extract_text_feat(texts)
        text_short = model.extract_text_feat(texts[:, :longest])
        logits = model.compute_logits(images, texts)
    assert ref_image.abs().max() > 0.1 and ref_text.abs().max() > 0.1
    assert_close(image, ref_image, atol=1e-5, rtol=0)
    assert_close(text, ref_text, atol=1e-5, rtol=0)
    assert_close(text_short, ref_text, atol=1e-5, rtol=0)
    assert_close(
        F.normalize(image, dim=-1),
        F.normalize(ref_image, dim=-1),
        atol=1e-5,
        rtol=0)
    assert_close(
        F.normalize(text, dim=-1),
        F.normalize(ref_text, dim=-1),
        atol=1e-5,
        rtol=0)
    assert_close(logits, ref_logits, atol=1e-4, rtol=0)
    assert logits.abs().max() > 0.5  # exp(4.2) ~ 67 times the cosine
