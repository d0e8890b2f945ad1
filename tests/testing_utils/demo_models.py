# Copyright (c) mmprompt contributors. All rights reserved.
"""Random-weight tiny CLIP and RAM checkpoints for running the real demo.

Used by ``test_browser.py``. It goes through the real converters and the
real configs (shrunk by a small override config), so the demo runs
exactly as with released weights:

- CLIP: a random OpenAI-layout state dict (64 wide, 2 layers per tower,
  full 49408-token vocabulary so the real tokenizer works), converted by
  ``tools/model_converters/openai_clip_to_mmprompt.py``.
- RAM: the reference-layout tiny RAM of ``shared/ram/vectors`` (20 real
  tags, their Chinese names and thresholds), converted by
  ``tools/model_converters/ram_to_mmprompt.py``. Its expected tags for the
  two images there are known, so a test can check the page's output.
"""
import importlib.util
import json
import os
import os.path as osp
from typing import Dict

import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SHARED = os.environ.get('MMPROMPT_SHARED',
                        osp.join(osp.dirname(REPO), 'shared'))
RAM_VECTORS = osp.join(SHARED, 'ram', 'vectors')

WIDTH, LAYERS, PATCH, IMAGE, EMBED, CONTEXT, VOCAB = 64, 2, 32, 224, 512, 77, \
    49408

CLIP_CONFIG = """\
_base_ = [{base!r}]
model = dict(
    vision_backbone=dict(
        arch=dict(
            _delete_=True, embed_dims={width}, num_layers={layers},
            num_heads=1,
            feedforward_channels={ffn}),
        img_size={image},
        patch_size={patch}),
    text_backbone=dict(
        embed_dims={width}, num_layers={layers}, num_heads=1,
        context_length={context}, vocab_size={vocab}),
    proj_dims={embed})
"""

# The tiny RAM of shared/ram/vectors/README.md, open-set capable: its text
# encoder is the tiny CLIP's text tower (512-d output, like ViT-B/16's).
RAM_CONFIG = """\
_base_ = [{base!r}]
model = dict(
    visual_encoder=dict(
        arch=dict(
            _delete_=True,
            embed_dims=12,
            depths=[2, 2, 2, 2],
            num_heads=[1, 2, 4, 8])),
    tagging_head=dict(
        embed_dims=64, num_layers=2, num_heads=4, feedforward_channels=128),
    num_classes={num_classes},
    text_encoder=dict(
        embed_dims={width}, num_layers={layers}, num_heads=1,
        out_dims={embed},
        init_cfg=dict(checkpoint={clip_checkpoint!r})))
"""


def _cli(name: str):
    path = osp.join(REPO, 'tools', 'model_converters', name)
    spec = importlib.util.spec_from_file_location(name[:-3], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def openai_clip_state_dict(seed: int = 0) -> Dict[str, torch.Tensor]:
    """A random state dict in OpenAI's ViT CLIP layout, tiny."""
    g = torch.Generator().manual_seed(seed)

    def rand(*shape, std=0.02):
        return std * torch.randn(*shape, generator=g)

    sd = {
        'positional_embedding': rand(CONTEXT, WIDTH),
        'text_projection': rand(WIDTH, EMBED, std=WIDTH**-0.5),
        'logit_scale': torch.tensor(4.6052),
        'visual.class_embedding': rand(WIDTH),
        'visual.positional_embedding': rand((IMAGE // PATCH)**2 + 1, WIDTH),
        'visual.proj': rand(WIDTH, EMBED, std=WIDTH**-0.5),
        'visual.conv1.weight': rand(WIDTH, 3, PATCH, PATCH),
        'visual.ln_pre.weight': 1 + rand(WIDTH),
        'visual.ln_pre.bias': rand(WIDTH),
        'visual.ln_post.weight': 1 + rand(WIDTH),
        'visual.ln_post.bias': rand(WIDTH),
        'token_embedding.weight': rand(VOCAB, WIDTH, std=1.0),
        'ln_final.weight': 1 + rand(WIDTH),
        'ln_final.bias': rand(WIDTH),
    }
    for tower in ('visual.transformer', 'transformer'):
        for i in range(LAYERS):
            p = f'{tower}.resblocks.{i}.'
            sd.update({
                p + 'ln_1.weight':
                1 + rand(WIDTH),
                p + 'ln_1.bias':
                rand(WIDTH),
                p + 'attn.in_proj_weight':
                rand(3 * WIDTH, WIDTH, std=0.1),
                p + 'attn.in_proj_bias':
                rand(3 * WIDTH),
                p + 'attn.out_proj.weight':
                rand(WIDTH, WIDTH, std=0.1),
                p + 'attn.out_proj.bias':
                rand(WIDTH),
                p + 'ln_2.weight':
                1 + rand(WIDTH),
                p + 'ln_2.bias':
                rand(WIDTH),
                p + 'mlp.c_fc.weight':
                rand(4 * WIDTH, WIDTH, std=0.1),
                p + 'mlp.c_fc.bias':
                rand(4 * WIDTH),
                p + 'mlp.c_proj.weight':
                rand(WIDTH, 4 * WIDTH, std=0.05),
                p + 'mlp.c_proj.bias':
                rand(WIDTH),
            })
    return sd


def ram_tiny_expected(plus: bool = False) -> dict:
    """``ram_tiny_expected.json`` (``ram_plus_...`` with ``plus``) of the
    shared test vectors."""
    name = 'ram_plus_tiny_expected.json' if plus else 'ram_tiny_expected.json'
    with open(osp.join(RAM_VECTORS, name)) as f:
        return json.load(f)


def make_tiny_clip(work_dir: str) -> Dict[str, str]:
    """Write a tiny CLIP config and converted checkpoint.

    Args:
        work_dir (str): Folder to write into.

    Returns:
        dict: ``config`` and ``checkpoint`` paths.
    """
    os.makedirs(work_dir, exist_ok=True)
    src = osp.join(work_dir, 'clip_tiny_openai.pth')
    dst = osp.join(work_dir, 'clip_tiny_mmprompt.pth')
    cfg = osp.join(work_dir, 'clip_tiny.py')
    torch.save(openai_clip_state_dict(), src)
    if _cli('openai_clip_to_mmprompt.py').main([src, dst, '--force']) != 0:
        raise RuntimeError('converting the tiny CLIP failed')
    with open(cfg, 'w') as f:
        f.write(
            CLIP_CONFIG.format(
                base=osp.join(REPO, 'configs', '_base_', 'models',
                              'clip_vit-base-p16.py'),
                width=WIDTH,
                layers=LAYERS,
                ffn=4 * WIDTH,
                image=IMAGE,
                patch=PATCH,
                context=CONTEXT,
                vocab=VOCAB,
                embed=EMBED))
    return dict(config=cfg, checkpoint=dst)


def make_tiny_ram(work_dir: str,
                  clip_checkpoint: str,
                  plus: bool = False) -> Dict[str, str]:
    """Write a tiny open-set RAM config and converted checkpoint (20 tags;
    RAM++: 8 tags x 51 descriptions).

    Args:
        work_dir (str): Folder to write into.
        clip_checkpoint (str): The tiny CLIP checkpoint of
            :func:`make_tiny_clip`, for the open set's text encoder.
        plus (bool): The tiny RAM++ instead of RAM. Defaults to False.

    Returns:
        dict: ``config`` and ``checkpoint`` paths.

    Raises:
        FileNotFoundError: If the shared test vectors are missing.
    """
    prefix = 'ram_plus_tiny' if plus else 'ram_tiny'
    src = osp.join(RAM_VECTORS, f'{prefix}_state_dict.pth')
    if not osp.isfile(src):
        raise FileNotFoundError(f'{src} not found (set MMPROMPT_SHARED)')
    os.makedirs(work_dir, exist_ok=True)
    expected = ram_tiny_expected(plus)
    lists = {}
    for key, values in (('tags_en', expected['tags_en']),
                        ('tags_zh', expected['tags_zh']),
                        ('thresholds', expected['thresholds'])):
        lists[key] = osp.join(work_dir, f'{prefix}_{key}.txt')
        with open(lists[key], 'w', encoding='utf-8') as f:
            f.write('\n'.join(str(v) for v in values) + '\n')
    dst = osp.join(work_dir, f'{prefix}_mmprompt.pth')
    argv = [
        src, dst, '--tag-list', lists['tags_en'], '--tag-list-chinese',
        lists['tags_zh'], '--thresholds', lists['thresholds'], '--force'
    ]
    if _cli('ram_to_mmprompt.py').main(argv) != 0:
        raise RuntimeError('converting the tiny RAM failed')
    cfg = osp.join(work_dir, f'{prefix}.py')
    base = ('ram-plus_swin-large-p4-w12_384px_openset.py'
            if plus else 'ram_swin-large-p4-w12_384px_openset.py')
    with open(cfg, 'w') as f:
        f.write(
            RAM_CONFIG.format(
                base=osp.join(REPO, 'configs', 'ram', base),
                num_classes=len(expected['tags_en']),
                width=WIDTH,
                layers=LAYERS,
                embed=EMBED,
                clip_checkpoint=clip_checkpoint))
    return dict(config=cfg, checkpoint=dst)
