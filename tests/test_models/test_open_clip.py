# Copyright (c) mmprompt contributors. All rights reserved.
"""open_clip's CLIP ViTs (LAION-2B, DataComp-1B, DFN, MetaCLIP) in mmprompt:
configs, converter, preprocessing and parity with open_clip 3.x."""
import copy
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.config import Config
from mmpretrain.models.utils import QuickGELU
from PIL import Image

from mmprompt.registry import MODELS

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = osp.join(REPO_ROOT, 'configs', '_base_', 'models')

# Our base config, open_clip's model name, its pretrained tag; the
# activation, side and resize mode the config must give.
ZOO = [
    ('clip_vit-huge-p14_laion2b', 'ViT-H-14', 'laion2b_s32b_b79k'),
    ('clip_vit-gigantic-p14_laion2b', 'ViT-bigG-14', 'laion2b_s39b_b160k'),
    ('clip_vit-large-p14_laion2b', 'ViT-L-14', 'laion2b_s32b_b82k'),
    ('clip_vit-large-p14_datacomp-xl', 'ViT-L-14', 'datacomp_xl_s13b_b90k'),
    ('clip_vit-large-p14_dfn2b', 'ViT-L-14-quickgelu', 'dfn2b'),
    ('clip_vit-huge-p14_dfn5b', 'ViT-H-14-quickgelu', 'dfn5b'),
    ('clip_vit-huge-p14_dfn5b-378px', 'ViT-H-14-378-quickgelu', 'dfn5b'),
    ('clip_vit-large-p14_metaclip-2.5b', 'ViT-L-14-quickgelu',
     'metaclip_fullcc'),
    ('clip_vit-huge-p14_metaclip-2.5b', 'ViT-H-14-quickgelu',
     'metaclip_fullcc'),
]


def model_cfg(name: str) -> dict:
    return copy.deepcopy(
        Config.fromfile(osp.join(CONFIGS, f'{name}.py')).model)


def build_meta(name: str) -> nn.Module:
    """Our model of a config, shapes only (no memory, no init time)."""
    with torch.device('meta'):
        return MODELS.build(model_cfg(name))


def open_clip_meta(open_clip, arch: str) -> nn.Module:
    """open_clip's model of ``arch``, shapes only."""
    with torch.device('meta'):
        return open_clip.model.CLIP(**open_clip.get_model_config(arch))


@pytest.mark.parametrize('config,arch,tag', ZOO, ids=[z[0] for z in ZOO])
def test_configs_follow_open_clip(config, arch, tag):
    """Each config has open_clip's activation in both towers, its input side
    and the resize mode and interpolation of the weights' pretrained cfg,
    and as many parameters as open_clip's model."""
    open_clip = pytest.importorskip('open_clip')
    model = build_meta(config)
    ref = open_clip_meta(open_clip, arch)
    oc_cfg = open_clip.get_model_config(arch)
    act = QuickGELU if oc_cfg.get('quick_gelu') else nn.GELU
    assert type(model.text_encoder.resblocks[0].mlp.gelu) is act
    assert type(model.visual.layers[0].ffn.layers[0][1]) is act
    pretrained = open_clip.get_pretrained_cfg(arch, tag)
    assert model.preprocess_args == dict(
        scale=oc_cfg['vision_cfg']['image_size'],
        resize_mode=pretrained['resize_mode'],
        interpolation=pretrained['interpolation'])
    assert sum(p.numel() for p in model.parameters()) == sum(
        p.numel() for p in ref.parameters())


def test_text_tower_activation_from_config():
    """act_cfg picks the text tower's activation; QuickGELU by default."""
    from mmprompt.models.clip.text_encoder import CLIPTextTransformer
    cfg = dict(embed_dims=16, num_layers=1, num_heads=2, out_dims=8)
    default = CLIPTextTransformer(**cfg).resblocks[0].mlp.gelu
    gelu = CLIPTextTransformer(
        **cfg, act_cfg=dict(type='GELU')).resblocks[0].mlp.gelu
    assert type(default) is QuickGELU
    assert type(gelu) is nn.GELU and gelu.approximate == 'none'


def test_image_preprocess_is_checked():
    cfg = model_cfg('clip_vit-huge-p14_dfn5b')
    cfg.update(image_preprocess=dict(resize_mode='longest'))
    with pytest.raises(ValueError, match="resize_mode must be one of"):
        with torch.device('meta'):
            MODELS.build(cfg)
    cfg.update(image_preprocess=dict(size=3))
    with pytest.raises(ValueError, match=r"takes \['interpolation', "):
        with torch.device('meta'):
            MODELS.build(cfg)


# ---------------------------------------------------------- preprocessing --


def _images():
    """PIL images of several shapes and modes, photo-like."""
    rng = np.random.default_rng(0)

    def photo(h, w):
        y, x = np.mgrid[0:h, 0:w].astype(np.float64)
        img = np.stack([
            128 + 90 * np.sin(x / (7 + 4 * c) + c) * np.cos(y / (11 + c))
            for c in range(3)
        ], -1) + rng.normal(0, 15, (h, w, 3))
        return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))

    rgba = photo(300, 260).convert('RGBA')
    rgba.putalpha(Image.fromarray(
        rng.integers(0, 256, (300, 260), dtype=np.uint8)))
    return {
        'landscape': photo(480, 640),
        'tall': photo(1001, 223),
        'gray': photo(333, 251).convert('L'),
        'rgba': rgba,
        'palette': photo(250, 397).quantize(colors=64),
    }


@pytest.mark.parametrize('config,arch,tag', ZOO, ids=[z[0] for z in ZOO])
def test_preprocessing_matches_open_clip(config, arch, tag):
    """The model's own pipeline (CLIPPreprocess with its preprocess_args,
    then its data preprocessor) gives the tensor of open_clip's
    ``image_transform`` for the weights' pretrained cfg: resize mode,
    interpolation, mean and std."""
    open_clip = pytest.importorskip('open_clip')
    from mmcv.transforms import Compose
    pretrained = open_clip.get_pretrained_cfg(arch, tag)
    size = open_clip.get_model_config(arch)['vision_cfg']['image_size']
    theirs = open_clip.image_transform(
        size,
        is_train=False,
        mean=pretrained['mean'],
        std=pretrained['std'],
        resize_mode=pretrained['resize_mode'],
        interpolation=pretrained['interpolation'])
    model = build_meta(config)
    pipeline = Compose([
        dict(type='CLIPPreprocess', **model.preprocess_args),
        dict(type='PackInputs')
    ])
    data_preprocessor = MODELS.build(model_cfg(config).data_preprocessor)
    diffs = {}
    for name, image in _images().items():
        packed = pipeline(dict(img=image))
        got = data_preprocessor(
            dict(inputs=[packed['inputs']],
                 data_samples=[packed['data_samples']]))['inputs'][0]
        want = theirs(image)
        assert got.shape == want.shape == (3, size, size)
        diffs[name] = (got - want).abs().max().item()
    assert max(diffs.values()) < 1e-5, diffs


def test_squash_is_not_a_crop():
    """DFN's squash keeps the whole image: a left-half-red image stays half
    red, where OpenAI's centre crop of a wide image shows less red."""
    from mmprompt.datasets import CLIPPreprocess
    image = np.zeros((100, 300, 3), np.uint8)
    image[:, :150, 0] = 255
    red = {}
    for mode in ('squash', 'shortest'):
        out = CLIPPreprocess(
            scale=50, resize_mode=mode, array_order='rgb')(dict(img=image))
        red[mode] = float((out['img'][..., 2] > 127).mean())  # BGR
    assert red['squash'] == pytest.approx(0.5, abs=0.03)
    assert red['shortest'] == pytest.approx(0.5, abs=0.03)  # centred edge
    image[:, :100, 0], image[:, 100:, 0] = 255, 0
    out = CLIPPreprocess(
        scale=50, resize_mode='squash', array_order='rgb')(dict(img=image))
    crop = CLIPPreprocess(scale=50, array_order='rgb')(dict(img=image))
    assert float((out['img'][..., 2] > 127).mean()) == pytest.approx(
        1 / 3, abs=0.03)
    assert float((crop['img'][..., 2] > 127).mean()) == 0.0


def test_zoo_configs_pipelines_follow_the_model():
    """The test pipeline of every open_clip leaf config preprocesses as the
    model's image_preprocess says (tools/test.py reads the pipeline,
    ZeroShotClassifier and tools/infer.py the model)."""
    import glob
    leaves = sorted(
        glob.glob(osp.join(REPO_ROOT, 'configs', 'open_clip', '*.py')))
    assert len(leaves) == 18
    for path in leaves:
        cfg = Config.fromfile(path)
        with torch.device('meta'):
            model = MODELS.build(copy.deepcopy(cfg.model))
        step = cfg.test_dataloader.dataset.pipeline[0]
        args = dict(resize_mode='shortest', interpolation='bicubic')
        args.update({k: v for k, v in step.items() if k in args})
        assert step['type'] == 'CLIPPreprocess', path
        assert dict(scale=step['scale'], **args) == \
            model.preprocess_args, path


# ------------------------------------------------------------- tokenizer --


def test_tokenizer_ids_are_open_clips_for_each_model():
    """Every open_clip model of the zoo uses OpenAI's BPE at context 77:
    our ids equal open_clip's tokenizer of that model, truncation (the last
    id becomes end-of-text) included."""
    open_clip = pytest.importorskip('open_clip')
    from mmprompt.models.clip import CLIPTokenizer
    texts = PROMPTS + [
        'a photo of a ' + 'very ' * 80 + 'big dog.', 'Crème brûlée, 猫 & co',
        ' '.join(f'word{i}' for i in range(100)), ''
    ]
    for arch in sorted({z[1] for z in ZOO}):
        cfg = model_cfg(next(z[0] for z in ZOO if z[1] == arch))
        ours = CLIPTokenizer(
            context_length=cfg.text_backbone.context_length)
        theirs = open_clip.get_tokenizer(arch)
        got = ours.tokenize(texts, truncate=True)
        want = theirs(texts)
        assert got.shape == want.shape == (len(texts), 77), arch
        assert torch.equal(got, want), arch
        assert (got[:, -1] == ours.eot_token_id).sum() == 2  # 2 truncated


# ---------------------------------------------------------------- parity --

PROMPTS = [
    'a photo of a cat.',
    'a bad photo of the golden retriever.',
    'A sculpture of a tiny red rocket standing on a launchpad, at dusk!',
    'the plastic zebra, 3 times',
]
LOGIT_SCALE = 4.2

# open_clip's architecture, our config, and the number of layers of both
# towers when the full depth does not fit beside its reference in memory
# (bigG: 2.5 B parameters, 10 GB per fp32 copy); None: full size.
PARITY = [
    pytest.param(
        'ViT-H-14',
        'clip_vit-huge-p14_laion2b',
        None,
        id='ViT-H-14',
        marks=[pytest.mark.parity, pytest.mark.slow]),
    pytest.param(
        'ViT-H-14-378-quickgelu',
        'clip_vit-huge-p14_dfn5b-378px',
        None,
        id='ViT-H-14-378-quickgelu',
        marks=[pytest.mark.parity, pytest.mark.slow]),
    pytest.param(
        'ViT-L-14',
        'clip_vit-large-p14_datacomp-xl',
        None,
        id='ViT-L-14-gelu',
        marks=[pytest.mark.parity, pytest.mark.slow]),
    pytest.param(
        'ViT-bigG-14',
        'clip_vit-gigantic-p14_laion2b',
        2,
        id='ViT-bigG-14-full-width-2-layers',
        marks=pytest.mark.parity),
]


def randomize_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-degenerate random weights (as test_clip's): N(0, 0.02) weights,
    LayerNorm scales 1 + N(0, 0.1), a logit scale of exp(4.2)."""
    g = torch.Generator().manual_seed(seed)
    norm_scales = {
        id(m.weight)
        for m in model.modules() if isinstance(m, nn.LayerNorm)
    }
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name == 'logit_scale':
                p.fill_(LOGIT_SCALE)
                continue
            noise = torch.randn(p.shape, generator=g)
            p.copy_(1 + 0.1 * noise if id(p) in norm_scales else 0.02 * noise)
    return model


def random_open_clip(open_clip, oc_cfg: dict) -> nn.Module:
    """open_clip's CLIP with :func:`randomize_` weights, built without its
    own initialisation (a minute at ViT-H size on one core): on the meta
    device, then given memory; its one buffer, the causal mask, is set as
    open_clip builds it (-inf above the diagonal)."""
    with torch.device('meta'):
        ref = open_clip.model.CLIP(**oc_cfg)
    ref.to_empty(device='cpu')
    assert [n for n, _ in ref.named_buffers()] == ['attn_mask']
    ref.attn_mask.fill_(float('-inf')).triu_(1)
    return randomize_(ref, seed=0).eval()


@pytest.mark.parametrize('arch,config,layers', PARITY)
def test_parity_with_open_clip(arch, config, layers):
    """Through our converter from open_clip's state dict: image and text
    features (normalised) within 1e-5 and logits within 1e-4 of open_clip's,
    fp32, random weights. Our model is built on the meta device and takes
    the converted tensors (no second copy in memory)."""
    open_clip = pytest.importorskip('open_clip')
    import gc

    from torch.testing import assert_close

    from mmprompt.converters import convert_open_clip, convert_openai_clip
    oc_cfg = open_clip.get_model_config(arch)
    cfg = model_cfg(config)
    convert = convert_open_clip
    if layers:
        oc_cfg['vision_cfg']['layers'] = oc_cfg['text_cfg']['layers'] = layers
        cfg.vision_backbone.arch['num_layers'] = layers
        cfg.text_backbone.num_layers = layers
        # A depth of no zoo size: the OpenAI table convert_open_clip uses,
        # without its size lookup.
        convert = convert_openai_clip
    ref = random_open_clip(open_clip, oc_cfg)
    size = oc_cfg['vision_cfg']['image_size']
    # One image at 378 px (729 tokens a layer): two take over 4 minutes on
    # one shared core.
    images = torch.randn(
        1 if size > 300 else 2,
        3,
        size,
        size,
        generator=torch.Generator().manual_seed(2))
    texts = open_clip.get_tokenizer(arch)(PROMPTS)
    with torch.no_grad():
        ref_image = ref.encode_image(images, normalize=True)
        ref_text = ref.encode_text(texts, normalize=True)
        ref_logits = ref.get_logits(images, texts)[0]
    state = ref.state_dict()
    del ref
    converted, meta = convert(state)
    del state
    with torch.device('meta'):
        model = MODELS.build(cfg)
    model.load_state_dict(converted, strict=True, assign=True)
    del converted
    gc.collect()
    model.eval()
    assert not any(t.is_meta for t in model.state_dict().values())
    with torch.no_grad():
        image = F.normalize(model.extract_image_feat(images), dim=-1)
        text = F.normalize(model.extract_text_feat(texts), dim=-1)
        logits = model.compute_logits(images, texts)
    diffs = dict(
        image=(image - ref_image).abs().max().item(),
        text=(text - ref_text).abs().max().item(),
        logits=(logits - ref_logits).abs().max().item())
    print(f'\n{arch} (layers {layers or "all"}): max abs diffs {diffs}')
    assert_close(image, ref_image, atol=1e-5, rtol=0)
    assert_close(text, ref_text, atol=1e-5, rtol=0)
    assert_close(logits, ref_logits, atol=1e-4, rtol=0)
    assert logits.abs().max() > 0.5 and logits.std() > 0.1


def test_shared_prefix_prototypes_are_exact_with_gelu():
    """A GELU text tower (open_clip's LAION / DataComp models), shrunk:
    prototypes built with shared template starts equal open_clip's
    encode_text one category at a time, 77 tokens a row, to 1e-6."""
    open_clip = pytest.importorskip('open_clip')
    from mmprompt.converters import convert_openai_clip
    from mmprompt.models.clip import CLIPTokenizer, zero_shot
    from mmprompt.models.clip.prompts import (IMAGENET_CATEGORIES,
                                              OPENAI_IMAGENET_TEMPLATES)
    torch.manual_seed(0)
    text_cfg = dict(context_length=77, vocab_size=49408, width=128, heads=2,
                    layers=3)
    ref = open_clip.model.CLIP(
        embed_dim=64,
        vision_cfg=dict(layers=1, width=64, patch_size=32, image_size=64),
        text_cfg=text_cfg).eval()
    assert isinstance(ref.transformer.resblocks[0].mlp.gelu, nn.GELU)
    cfg = model_cfg('clip_vit-huge-p14_laion2b').text_backbone
    cfg.update(embed_dims=128, num_heads=2, num_layers=3, out_dims=64)
    tower = MODELS.build(cfg).eval()
    prefix = 'text_encoder.'
    tower.load_state_dict({
        k[len(prefix):]: v
        for k, v in convert_openai_clip(ref.state_dict())[0].items()
        if k.startswith(prefix)
    })
    tokenizer = CLIPTokenizer()
    categories = IMAGENET_CATEGORIES[:6]
    templates = OPENAI_IMAGENET_TEMPLATES[:8]
    shared = zero_shot.build_text_prototypes(tower, tokenizer, categories,
                                             templates)
    want = []
    with torch.no_grad():
        for name in categories:
            feats = ref.encode_text(
                tokenizer([t.format(name) for t in templates]),
                normalize=True)
            want.append(F.normalize(feats.mean(0), dim=-1))
    torch.testing.assert_close(shared, torch.stack(want), atol=1e-6, rtol=0)
