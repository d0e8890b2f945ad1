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

``--sharing`` times mmprompt's builder alone, with and without prefix
sharing (the text tower itself, whose prompts that start alike run their
start once, vs ``extract_text_feat``, i.e. the builder before prefix
sharing), alternating ``--repeats`` times in one process; it prints the
medians, their ratio and the largest difference of the two prototype sets.

MMPreTrain's builder needs ``transformers`` (4.45.2) and
``huggingface_hub<1``, which mmprompt does not: run this in a separate
environment that has them, or pass ``--skip-mmpretrain``. On a CPU, use
``--num-classes`` to time a subset; the work grows linearly in it.

Example:
    python benchmarks/prototypes.py --num-classes 20 --threads 1
    python benchmarks/prototypes.py --sharing --repeats 3 --threads 1
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
        '--spread',
        action='store_true',
        help='--num-classes evenly spaced over the 1000, not the first')
    parser.add_argument(
        '--threads', type=int, default=1, help='torch threads (default 1)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--skip-mmpretrain', action='store_true')
    parser.add_argument('--skip-open-clip', action='store_true')
    parser.add_argument(
        '--sharing',
        action='store_true',
        help='time mmprompt with and without prefix sharing, alternating')
    parser.add_argument(
        '--repeats', type=int, default=3, help='runs per side of --sharing')
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


def token_positions(model, classes: List[str],
                    templates: List[str]) -> Dict[str, int]:
    """Token positions each side runs through the text tower (the prefix
    side: the rests, plus every distinct prefix once per batch)."""
    from mmprompt.models.clip import zero_shot
    ids = model.tokenize([t.format(c) for c in classes for t in templates])
    lengths = (ids != 0).sum(dim=1)
    unshared = sum(
        len(rows) * int(lengths[rows].max())
        for rows in torch.argsort(lengths, stable=True).split(
            model.text_batch_size))
    prefix = zero_shot.shared_prefix_lengths(ids)
    shared = 0
    for rows in zero_shot.plan_prefix_batches(ids, prefix,
                                              model.text_batch_size):
        p = int(prefix[rows[0]])
        heads = len(torch.unique(ids[rows, :p], dim=0)) if p else 0
        shared += len(rows) * int(lengths[rows].max() - p) + heads * p
    return dict(unshared=unshared, shared=shared)


def compare_sharing(model, classes: List[str], templates: List[str],
                    args: argparse.Namespace, figures: dict) -> dict:
    """Alternate the builder with and without prefix sharing."""
    from statistics import median

    from mmprompt.models.clip.zero_shot import build_text_prototypes
    sides = dict(
        unshared=model.extract_text_feat, shared=model.text_encoder)
    times = {name: [] for name in sides}
    cpu = {name: [] for name in sides}
    protos = {}
    figures['load_before'] = os.getloadavg()
    for _ in range(args.repeats):
        for name, encode in sides.items():
            start = time.process_time()
            protos[name], seconds = timed(lambda: build_text_prototypes(
                encode, model.tokenize, classes, templates,
                batch_size=model.text_batch_size, device=args.device))
            cpu[name].append(round(time.process_time() - start, 3))
            times[name].append(round(seconds, 3))
            print_log(
                f'{name}: {seconds:.2f} s ({cpu[name][-1]:.2f} s CPU)',
                logger='current')
    figures['load_after'] = os.getloadavg()
    positions = token_positions(model, classes, templates)
    for name in sides:
        figures[name] = dict(
            seconds=times[name],
            cpu_seconds=cpu[name],
            median_seconds=median(times[name]),
            median_cpu_seconds=median(cpu[name]),
            token_positions=positions[name])
    ratio = median(times['unshared']) / median(times['shared'])
    cpu_ratio = median(cpu['unshared']) / median(cpu['shared'])
    diff = (protos['shared'] - protos['unshared']).abs().max().item()
    figures.update(
        speedup=round(ratio, 3),
        cpu_speedup=round(cpu_ratio, 3),
        positions_ratio=round(positions['unshared'] / positions['shared'],
                              3),
        max_abs_diff=diff)
    print_log(
        f"{figures['prompts']} prompts, {args.threads} thread(s), medians of "
        f"{args.repeats}: unshared {median(times['unshared']):.2f} s "
        f"({median(cpu['unshared']):.2f} s CPU), shared "
        f"{median(times['shared']):.2f} s ({median(cpu['shared']):.2f} s "
        f'CPU): {ratio:.2f}x ({cpu_ratio:.2f}x CPU); token positions '
        f"{positions['unshared']} vs {positions['shared']}; max |diff| "
        f'{diff:.1e}',
        logger='current')
    return figures


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    from open_clip.zero_shot_classifier import build_zero_shot_classifier

    from mmprompt.models.clip.prompts import (IMAGENET_CATEGORIES,
                                              OPENAI_IMAGENET_TEMPLATES)
    if args.spread:
        step = len(IMAGENET_CATEGORIES) / args.num_classes
        classes = [
            IMAGENET_CATEGORIES[int(i * step)] for i in range(args.num_classes)
        ]
    else:
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
    if args.sharing:
        figures = compare_sharing(ours, classes, templates, args, figures)
        if args.out:
            with open(args.out, 'w') as f:
                json.dump(figures, f, indent=2)
        return figures
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
