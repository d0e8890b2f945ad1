# Copyright (c) mmprompt contributors. All rights reserved.
"""Full-size SigLIP / SigLIP 2 against open_clip (+ timm), random fp32
weights converted by our converter; preprocessing against open_clip's."""
import gc
import logging

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from testing_utils import siglip
from torch.testing import assert_close

from mmprompt.converters.siglip import convert_siglip
from mmprompt.datasets import CLIPPreprocess
from mmprompt.registry import MODELS


def _open_clip():
    open_clip = pytest.importorskip('open_clip')
    logging.getLogger().setLevel(logging.ERROR)  # "no pretrained weights"
    return open_clip


def _reference_outputs(name: str, images: torch.Tensor, ids: torch.Tensor):
    """open_clip's normalised features and biased logits, and its state
    dict converted by our converter (the reference is freed)."""
    open_clip = _open_clip()
    torch.manual_seed(0)
    ref = open_clip.create_model(name, pretrained=None).eval()
    siglip.randomize_(ref.state_dict())  # in place, shared storage
    with torch.no_grad():
        img = ref.encode_image(images, normalize=True)
        txt = ref.encode_text(ids, normalize=True)
        logits = ref.get_logits(images, ids)[0]
    converted, _ = convert_siglip(ref.state_dict())
    del ref
    gc.collect()
    return img, txt, logits, converted


@pytest.mark.parity
@pytest.mark.slow
@pytest.mark.parametrize('name,config,vocab,size', [
    ('ViT-B-16-SigLIP', 'siglip_vit-base-p16', 32000, 224),
    ('ViT-B-16-SigLIP2', 'siglip2_vit-base-p16', 256000, 224),
    # 3.5 GB a model, minutes on one core: with MMPROMPT_HEAVY=1 only.
    pytest.param('ViT-SO400M-14-SigLIP-384', 'siglip_vit-so400m-p14-384px',
                 32000, 384, marks=pytest.mark.heavy),
])
def test_siglip_full_size_matches_open_clip(name, config, vocab, size):
    """Normalised image and text features within 1e-5, logits with the
    bias within 1e-4, for a batch of 2 images and 4 full-length rows."""
    g = torch.Generator().manual_seed(0)
    images = torch.randn(2, 3, size, size, generator=g)
    ids = torch.randint(0, vocab, (4, 64), generator=g)
    ids[:, 10:] = 1  # rows padded like SigLIP's, the pad token pooled
    ref_img, ref_txt, ref_logits, converted = _reference_outputs(
        name, images, ids)
    model = MODELS.build(siglip.model_cfg(config)).eval()
    model.load_state_dict(converted, strict=True)
    del converted
    with torch.no_grad():
        img = F.normalize(model.extract_image_feat(images), dim=-1)
        txt = F.normalize(model.extract_text_feat(ids), dim=-1)
        logits = model.scale_similarity(img @ txt.t())
    diffs = [(a - b).abs().max().item()
             for a, b in ((img, ref_img), (txt, ref_txt),
                          (logits, ref_logits))]
    print(f'{name}: max abs diff image {diffs[0]:.2e}, text '
          f'{diffs[1]:.2e}, logits {diffs[2]:.2e}')
    assert_close(img, ref_img, atol=1e-5, rtol=0)
    assert_close(txt, ref_txt, atol=1e-5, rtol=0)
    assert_close(logits, ref_logits, atol=1e-4, rtol=0)
    assert logits.abs().max() > 1  # the bias and scale are in there
    assert (img[0] - img[1]).abs().max() > 1e-2  # not degenerate
    del model
    gc.collect()


@pytest.mark.parity
@pytest.mark.parametrize('name,config', [
    ('ViT-SO400M-14-SigLIP-384', 'siglip_vit-so400m-p14-384px'),
    ('ViT-SO400M-16-SigLIP2-384', 'siglip2_vit-so400m-p16-384px'),
    ('ViT-L-16-SigLIP2-384', 'siglip2_vit-large-p16-384px'),
    ('ViT-B-16-SigLIP2-384', 'siglip2_vit-base-p16-384px'),
    ('ViT-B-16-SigLIP-384', 'siglip_vit-base-p16-384px'),
])
def test_config_shapes_match_open_clip(name, config):
    """Every converted tensor of the full-size reference has the shape of
    our config's (both built on the meta device, no memory)."""
    open_clip = _open_clip()
    with torch.device('meta'):
        ref = open_clip.create_model(name, pretrained=None, device='meta')
        model = MODELS.build(siglip.model_cfg(config))
    converted, meta = convert_siglip(ref.state_dict(), dtype=None)
    ours = model.state_dict()
    assert set(converted) == set(ours)
    wrong = {k: (tuple(v.shape), tuple(ours[k].shape))
             for k, v in converted.items() if v.shape != ours[k].shape}
    assert wrong == {}
    grid = meta['arch']['image_size'] // meta['arch']['patch_size']
    assert tuple(model.visual.patch_resolution) == (grid, grid)


@pytest.mark.parity
@pytest.mark.slow
def test_so400m_two_layers_match_timm_and_open_clip():
    """So400m/16's full width (1152, 16 heads, MLP 4304, tanh GELU in both
    towers and the head) with 2 layers per tower: features within 1e-5."""
    timm = pytest.importorskip('timm')
    _open_clip()
    from open_clip.factory import get_model_config
    from open_clip.transformer import LayerNorm, TextTransformer
    torch.manual_seed(0)
    trunk = timm.create_model('vit_so400m_patch16_siglip_384',
                              pretrained=False, depth=2, num_classes=0)
    text_cfg = get_model_config('ViT-SO400M-16-SigLIP2-384')['text_cfg']
    from functools import partial
    text = TextTransformer(
        context_length=64, vocab_size=text_cfg['vocab_size'], width=1152,
        heads=16, layers=2, mlp_ratio=text_cfg['mlp_ratio'],
        output_dim=1152, no_causal_mask=True, pool_type='last',
        proj_bias=True, norm_layer=partial(LayerNorm, eps=1e-6),
        act_layer=partial(torch.nn.GELU, approximate='tanh'))
    source = {f'visual.trunk.{k}': v for k, v in trunk.state_dict().items()}
    source.update({f'text.{k}': v for k, v in text.state_dict().items()})
    source.update(logit_scale=torch.tensor(0.), logit_bias=torch.tensor(0.))
    siglip.randomize_(source)
    cfg = siglip.model_cfg('siglip2_vit-so400m-p16-384px')
    cfg.vision_backbone.arch.num_layers = 2
    cfg.text_backbone.num_layers = 2
    model = MODELS.build(cfg).eval()
    model.load_state_dict(convert_siglip(source)[0], strict=True)
    g = torch.Generator().manual_seed(0)
    images = torch.randn(2, 3, 384, 384, generator=g)
    ids = torch.randint(0, text_cfg['vocab_size'], (3, 64), generator=g)
    with torch.no_grad():
        pairs = [(model.extract_image_feat(images), trunk.eval()(images)),
                 (model.extract_text_feat(ids), text.eval()(ids))]
    for what, (ours, ref) in zip(('image', 'text'), pairs):
        ours, ref = F.normalize(ours, dim=-1), F.normalize(ref, dim=-1)
        print(f'So400m/16, 2 layers: max abs diff {what} '
              f'{(ours - ref).abs().max().item():.2e}')
        assert_close(ours, ref, atol=1e-5, rtol=0)


def _test_images():
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (37, 61, 3), np.uint8))
    rgba = Image.fromarray(rng.integers(0, 256, (50, 30, 4), np.uint8),
                           'RGBA')
    gray = Image.fromarray(rng.integers(0, 256, (300, 500), np.uint8), 'L')
    palette = rgb.convert('P', palette=Image.ADAPTIVE, colors=16)
    return dict(rgb=rgb, rgba=rgba, gray=gray, palette=palette)


@pytest.mark.parametrize('size', [224, 384])
def test_preprocessing_equals_open_clip(size):
    """The model's preprocessing (CLIPPreprocess with its preprocess_args:
    squash, bicubic) + the SigLIP data preprocessor give open_clip's
    tensors for SigLIP (squash, bicubic, mean / std 0.5), for RGB, RGBA,
    grayscale and palette images."""
    _open_clip()
    from open_clip.transform import image_transform
    ref = image_transform(size, is_train=False, mean=(0.5, ) * 3,
                          std=(0.5, ) * 3, interpolation='bicubic',
                          resize_mode='squash')
    model = MODELS.build(siglip.tiny_cfg())
    model.visual.img_size = (size, size)  # the side only, for the args
    transform = CLIPPreprocess(**model.preprocess_args)
    assert model.preprocess_args == dict(
        scale=size, resize_mode='squash', interpolation='bicubic')
    for kind, image in _test_images().items():
        packed = transform(dict(img=image))['img']
        batch = torch.from_numpy(packed).permute(2, 0, 1)[None]
        ours = model.data_preprocessor(dict(inputs=batch))['inputs'][0]
        assert_close(ours, ref(image), atol=1e-6, rtol=0, msg=kind)


@pytest.mark.parity
@pytest.mark.slow
def test_prototypes_match_open_clip_zero_shot_classifier(tmp_path):
    """Full-size SigLIP B/16: ``build_prototypes`` (identical prompts once,
    the last block at the pooled token only, one padded length) gives
    open_clip's ``build_zero_shot_classifier`` on the same weights and
    tokenizer file within 1e-6, duplicate names and templates that
    canonicalise alike included."""
    open_clip = _open_clip()
    pytest.importorskip('transformers')
    from open_clip.tokenizer import HFTokenizer
    from open_clip.zero_shot_classifier import build_zero_shot_classifier
    tokenizer_file = siglip.train_tokenizer(str(tmp_path))
    torch.manual_seed(0)
    ref = open_clip.create_model('ViT-B-16-SigLIP', pretrained=None).eval()
    siglip.randomize_(ref.state_dict())
    categories = ['crane', 'cat', 'crane', 'golden retriever']
    templates = ['a photo of a {}.', 'A photo of a {}!', 'itap of a {}.',
                 'a bad photo of the {}.', 'a sculpture of a {}.']
    with torch.no_grad():
        theirs = build_zero_shot_classifier(
            ref, HFTokenizer(str(tmp_path), context_length=64,
                             clean='canonicalize'),
            categories, [t.format for t in templates],
            num_classes_per_batch=2).t()
    cfg = siglip.model_cfg('siglip_vit-base-p16')
    cfg.tokenizer.update(tokenizer_file=tokenizer_file, vocab_size=None)
    model = MODELS.build(cfg).eval()
    model.load_state_dict(convert_siglip(ref.state_dict())[0], strict=True)
    del ref
    mine = model.build_prototypes(categories, templates)
    diff = (mine - theirs).abs().max().item()
    print(f'max abs diff of the prototypes {diff:.2e}')
    assert diff <= 1e-6
    assert (mine[0] - mine[1]).abs().max() > 1e-3  # not degenerate
    del model
    gc.collect()
