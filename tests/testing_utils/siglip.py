# Copyright (c) mmprompt contributors. All rights reserved.
"""Tiny SigLIP references (timm's ViT + open_clip's text transformer in
open_clip's checkpoint layout) and a tokenizer.json trained on the spot
(``from testing_utils import siglip``)."""
import copy
import json
import math
import os.path as osp
from functools import partial
from typing import Dict, Sequence

import pytest
import torch
import torch.nn as nn
from mmengine.config import Config

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = osp.join(REPO_ROOT, 'configs', '_base_', 'models')

CORPUS = [
    'a photo of a cat', 'a bad photo of the golden retriever',
    'itap of a plastic zebra', 'a sculpture of a tiny red rocket at dusk',
    'the cafe in tokyo serves naive coffee', 'a photo of many small dogs',
    'an origami of a crane', 'a rendering of the space shuttle',
] * 4
# The tokenizer trained on CORPUS has this many ids.
TINY_VOCAB = 52
# Width 64, 2 layers, SigLIP's odd MLP ratio, 32 px images in 8 px patches.
TINY = dict(width=64, layers=2, heads=2, mlp_ratio=3.7362, img_size=32,
            patch_size=8)
LOGIT_SCALE, LOGIT_BIAS = math.log(10.0), -2.5


def train_tokenizer(folder: str,
                    pad_token: str = '</s>',
                    corpus: Sequence[str] = tuple(CORPUS),
                    vocab_size: int = 120) -> str:
    """A small unigram tokenizer like SigLIP's: ``</s>`` appended by the
    post-processor; saved with a tokenizer_config.json for transformers.
    (benchmarks/open_weights.py trains one on its prompts.)

    Returns:
        str: The tokenizer.json path.
    """
    implementations = pytest.importorskip('tokenizers.implementations')
    processors = pytest.importorskip('tokenizers.processors')
    tok = implementations.SentencePieceUnigramTokenizer()
    tok.train_from_iterator(
        corpus, vocab_size=vocab_size,
        special_tokens=['<pad>', '</s>', '<unk>'], unk_token='<unk>')
    tok.post_processor = processors.TemplateProcessing(
        single='$A </s>', special_tokens=[('</s>', 1)])
    path = osp.join(folder, 'tokenizer.json')
    tok.save(path)
    with open(osp.join(folder, 'tokenizer_config.json'), 'w') as f:
        json.dump(
            dict(tokenizer_class='PreTrainedTokenizerFast',
                 pad_token=pad_token, eos_token='</s>', unk_token='<unk>',
                 model_max_length=64), f)
    return path


def model_cfg(name: str = 'siglip2_vit-base-p16') -> dict:
    return copy.deepcopy(
        Config.fromfile(osp.join(CONFIGS, f'{name}.py')).model)


def tiny_cfg(tokenizer_file: str = 'unused.json',
             name: str = 'siglip2_vit-base-p16') -> dict:
    """A real SigLIP config shrunk to TINY, the tokenizer's vocabulary."""
    cfg = model_cfg(name)
    width = TINY['width']
    ffn = int(width * TINY['mlp_ratio'])
    cfg.vision_backbone.update(
        arch=dict(embed_dims=width, num_layers=TINY['layers'],
                  num_heads=TINY['heads'], feedforward_channels=ffn),
        img_size=TINY['img_size'], patch_size=TINY['patch_size'])
    cfg.text_backbone.update(
        vocab_size=TINY_VOCAB, embed_dims=width, num_layers=TINY['layers'],
        num_heads=TINY['heads'], feedforward_channels=ffn)
    cfg.tokenizer.update(tokenizer_file=tokenizer_file, vocab_size=TINY_VOCAB,
                         pad_token='</s>')
    cfg.proj_dims = width
    return cfg


def randomize_(state_dict: Dict[str, torch.Tensor],
               seed: int = 0) -> Dict[str, torch.Tensor]:
    """Non-degenerate random weights in place: N(0, 0.02), LayerNorm-like
    1-d ``weight`` tensors 1 + N(0, 0.1), fixed logit scale and bias."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in state_dict.items():
            noise = torch.randn(p.shape, generator=g)
            if name == 'logit_scale':
                p.fill_(LOGIT_SCALE)
            elif name == 'logit_bias':
                p.fill_(LOGIT_BIAS)
            elif p.dim() == 1 and name.endswith('weight'):
                p.copy_(1 + 0.1 * noise)
            else:
                p.copy_(0.02 * noise)
    return state_dict


class TinyReference(nn.Module):
    """open_clip's CustomTextCLIP for SigLIP, shrunk: timm's ViT (no class
    token, ``global_pool='map'``) under ``visual.trunk`` and open_clip's
    ``TextTransformer`` under ``text``; keys as open_clip's checkpoints."""

    def __init__(self, text_act: str = 'tanh', image_act: str = 'none'):
        super().__init__()
        timm_vit = pytest.importorskip('timm.models.vision_transformer')
        oc_transformer = pytest.importorskip('open_clip.transformer')
        width = TINY['width']
        self.visual = nn.Module()
        self.visual.trunk = timm_vit.VisionTransformer(
            img_size=TINY['img_size'], patch_size=TINY['patch_size'],
            embed_dim=width, depth=TINY['layers'], num_heads=TINY['heads'],
            mlp_ratio=TINY['mlp_ratio'], class_token=False,
            global_pool='map', num_classes=0,
            act_layer=partial(nn.GELU, approximate=image_act))
        self.text = oc_transformer.TextTransformer(
            context_length=64, vocab_size=TINY_VOCAB, width=width,
            heads=TINY['heads'], layers=TINY['layers'],
            mlp_ratio=TINY['mlp_ratio'], output_dim=width,
            no_causal_mask=True, pool_type='last', proj_bias=True,
            norm_layer=partial(oc_transformer.LayerNorm, eps=1e-6),
            act_layer=partial(nn.GELU, approximate=text_act))
        self.logit_scale = nn.Parameter(torch.tensor(0.))
        self.logit_bias = nn.Parameter(torch.tensor(0.))

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return self.visual.trunk(images)

    def encode_text(self, texts: torch.Tensor) -> torch.Tensor:
        return self.text(texts)
