# Copyright (c) mmprompt contributors. All rights reserved.
"""Benchmark: building ImageNet zero-shot prototypes (classes x 80 templates).

Three builders get the same random ViT-B/16 text tower (made by open_clip,
converted to each layout) and the same classes and templates, in one
process, one after the other:

- mmprompt: :meth:`CLIPZeroShot.set_categories` (all prompts batched,
  sorted by length, each batch cut to its longest prompt);
- open_clip: ``build_zero_shot_classifier`` (10 classes per batch, full
  77-token rows);
- MMPreTrain 1.2.0: ``CLIPZeroShot.prepare_text_prototype`` (one class at a
  time, full rows) under ``torch.no_grad`` as in its test loop, with an
  offline Hugging Face ``CLIPTokenizer`` written from mmprompt's vocabulary
  (its own config asks the Hugging Face hub).

MMPreTrain's builder needs ``transformers`` (4.45.2) and
``huggingface_hub<1``, which mmprompt does not: run this in a separate
environment that has them, or pass ``--skip-mmpretrain``. On a CPU, use
``--num-classes`` to time a subset; the work grows linearly in it.

Example:
    python benchmarks/prototypes.py --num-classes 20 --threads 1
"""
import argparse
import json
import os
import os.path as osp
import sys
import tempfile
import time
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from mmengine.logging import print_log


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--num-classes',
        type=int,
        default=1000,
        help='first N ImageNet classes (default: all 1000)')
    parser.add_argument(
        '--threads', type=int, default=1, help='torch threads (default 1)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--skip-mmpretrain', action='store_true')
    parser.add_argument('--skip-open-clip', action='store_true')
    parser.add_argument('--out', help='write the figures to this JSON file')
    return parser.parse_args(argv)


def open_clip_model(device: str):
    import open_clip
    torch.manual_seed(0)
    model = open_clip.create_model(
        'ViT-B-16-quickgelu', pretrained=None, device=device)
    return model.eval()


def mmprompt_model(openai_sd: Dict[str, torch.Tensor], device: str):
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    from mmprompt.converters import convert_openai_clip
    from mmprompt.registry import MODELS
    from mmprompt.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    root = osp.dirname(osp.dirname(osp.abspath(__file__)))
    cfg = Config.fromfile(
        osp.join(root, 'configs', '_base_', 'models', 'clip_vit-base-p16.py'))
    with DefaultScope.overwrite_default_scope('mmprompt'):
        model = MODELS.build(cfg.model)
    converted, _ = convert_openai_clip(openai_sd)
    model.load_state_dict(converted, strict=True)
    return model.to(device).eval()


def hf_tokenizer_dir(folder: str) -> str:
    """Write vocab.json + merges.txt of OpenAI's BPE for transformers."""
    from mmprompt.models.clip.tokenizer import NUM_MERGES, CLIPTokenizer
    tok = CLIPTokenizer()
    with open(osp.join(folder, 'vocab.json'), 'w', encoding='utf-8') as f:
        json.dump(tok.encoder, f, ensure_ascii=False)
    merges = sorted(tok.bpe_ranks, key=tok.bpe_ranks.get)
    assert len(merges) == NUM_MERGES
    with open(osp.join(folder, 'merges.txt'), 'w', encoding='utf-8') as f:
        f.write('#version: 0.2\n')
        f.write(''.join(f'{a} {b}\n' for a, b in merges))
    with open(osp.join(folder, 'tokenizer_config.json'), 'w') as f:
        json.dump(
            dict(
                tokenizer_class='CLIPTokenizer',
                model_max_length=77,
                bos_token='<|startoftext|>',
                eos_token='<|endoftext|>',
                unk_token='<|endoftext|>',
                pad_token='<|endoftext|>'), f)
    return folder


def mmpretrain_model(openai_sd: Dict[str, torch.Tensor], tokenizer_dir: str,
                     classes: List[str], device: str):
    """MMPreTrain 1.2.0's own CLIPZeroShot with its ViT-B/16 settings."""
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    from mmpretrain.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    cfg = dict(
        type='CLIPZeroShot',
        vision_backbone=dict(
            type='VisionTransformer',
            arch='base',
            img_size=224,
            patch_size=16,
            drop_rate=0.,
            layer_cfgs=dict(act_cfg=dict(type='QuickGELU')),
            pre_norm=True),
        projection=dict(
            type='CLIPProjection', in_channels=768, out_channels=512),
        text_backbone=dict(
            type='CLIPTransformer',
            width=512,
            layers=12,
            heads=8,
            attn_mask=True),
        tokenizer=dict(
            type='AutoTokenizer', name_or_path=tokenizer_dir, use_fast=False),
        vocab_size=49408,
        transformer_width=512,
        proj_dim=512,
        text_prototype=classes,
        text_prompt='openai_imagenet')
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg)
    # Prototypes depend only on the text tower, whose keys are OpenAI's.
    text = {k: v for k, v in openai_sd.items() if not k.startswith('visual')}
    missing, unexpected = model.load_state_dict(text, strict=False)
    assert not unexpected, unexpected
    assert all(k.startswith('visual') for k in missing), missing
    return model.to(device).eval()


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    from open_clip.zero_shot_classifier import build_zero_shot_classifier

    from mmprompt.models.clip.prompts import (IMAGENET_CATEGORIES,
                                              OPENAI_IMAGENET_TEMPLATES)
    classes = list(IMAGENET_CATEGORIES[:args.num_classes])
    templates = list(OPENAI_IMAGENET_TEMPLATES)
    oc_model = open_clip_model(args.device)
    openai_sd = {
        k: v.detach().clone()
        for k, v in oc_model.state_dict().items()
    }
    ours = mmprompt_model(openai_sd, args.device)
    ours.progress = False
    figures = dict(
        classes=len(classes),
        templates=len(templates),
        prompts=len(classes) * len(templates),
        threads=args.threads,
        device=args.device,
        torch=torch.__version__)
    results = {}

    _, seconds = timed(lambda: ours.set_categories(classes, templates))
    results['mmprompt'] = (ours.text_prototypes.float().cpu(), seconds)

    if not args.skip_open_clip:
        import open_clip
        tokenizer = open_clip.get_tokenizer('ViT-B-16-quickgelu')
        weights, seconds = timed(lambda: build_zero_shot_classifier(
            oc_model, tokenizer, classes, templates, device=args.device))
        results['open_clip'] = (weights.t().float().cpu(), seconds)

    if not args.skip_mmpretrain:
        with tempfile.TemporaryDirectory() as folder:
            mm_model = mmpretrain_model(openai_sd, hf_tokenizer_dir(folder),
                                        classes, args.device)

            def build():
                with torch.no_grad():
                    mm_model.prepare_text_prototype(args.device)
                return mm_model.text_prototype_embeds

            weights, seconds = timed(build)
        results['mmpretrain'] = (weights.t().float().cpu(), seconds)

    reference = results['mmprompt'][0]
    lines = [
        f"{len(classes)} classes x {len(templates)} templates = "
        f"{figures['prompts']} prompts, {args.device}, "
        f'{args.threads} thread(s)'
    ]
    for name, (protos, seconds) in results.items():
        diff = (F.normalize(protos, dim=-1) - reference).abs().max().item()
        ratio = seconds / results['mmprompt'][1]
        figures[name] = dict(
            seconds=round(seconds, 3),
            prompts_per_second=round(figures['prompts'] / seconds, 1),
            seconds_vs_mmprompt=round(ratio, 2),
            max_abs_diff_vs_mmprompt=diff)
        lines.append(f'  {name:<11} {seconds:9.2f} s  '
                     f'{figures["prompts"] / seconds:9.1f} prompts/s  '
                     f'{ratio:6.2f}x mmprompt\'s time  '
                     f'max |diff| {diff:.1e}')
    print_log('\n'.join(lines), logger='current')
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(figures, f, indent=2)
    return figures


if __name__ == '__main__':
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
    main()
    sys.exit(0)
