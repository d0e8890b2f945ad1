# Copyright (c) mmprompt contributors. All rights reserved.
"""Inference speed of mmprompt against open_clip, timm and MMPreTrain.

One run times every model on the same device with random weights and prints
a table of images (or prompts) per second and ratios to the peers::

    python benchmarks/gpu.py                       # cuda, bf16, full sizes
    python benchmarks/gpu.py --precision fp16 --compile
    python benchmarks/gpu.py --device cpu --quick  # smoke run

The peers run eager with autocast (how their users run them); mmprompt casts
the heavy towers once (``mmprompt.models.utils.apply_precision``) and uses
SDPA in every attention. fp32 runs keep TF32 matmul off. Needs
open_clip_torch and timm (test requirements); a peer that cannot be imported
is reported and skipped.
"""
import argparse
import contextlib
import json
import os.path as osp
import statistics
import sys
import time
from typing import Callable, Dict, List, Optional

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import Config  # noqa: E402

from mmprompt.models.utils import PRECISIONS, apply_precision  # noqa: E402
from mmprompt.registry import MODELS  # noqa: E402
from mmprompt.utils import register_all_modules  # noqa: E402

CONFIGS = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'configs')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--device',
        default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument(
        '--precision', default='bf16', choices=sorted(PRECISIONS))
    parser.add_argument(
        '--strategy',
        default='cast',
        choices=['cast', 'autocast'],
        help='how mmprompt runs fp16/bf16 (apply_precision)')
    parser.add_argument('--vit-batch', type=int, default=256)
    parser.add_argument('--swin-batch', type=int, default=32)
    parser.add_argument('--iters', type=int, default=10)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument(
        '--compile',
        action='store_true',
        help='torch.compile mmprompt\'s towers (peers stay eager)')
    parser.add_argument(
        '--compile-mode',
        default='max-autotune-no-cudagraphs',
        help="torch.compile mode; 'reduce-overhead' adds CUDA graphs")
    parser.add_argument(
        '--only',
        nargs='*',
        default=None,
        choices=['vit', 'prototypes', 'swin', 'latency'],
        help='run only these sections')
    parser.add_argument(
        '--quick',
        action='store_true',
        help='tiny batches and 2 iterations: checks that everything runs')
    parser.add_argument('--out', help='write the results as JSON')
    return parser.parse_args(argv)


class Bench:
    """Times callables on one device and collects the rows of the table."""

    def __init__(self, device: torch.device, iters: int, warmup: int):
        self.device = device
        self.iters = iters
        self.warmup = warmup
        self.rows: List[Dict] = []

    def sync(self) -> None:
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)

    def time(self, fn: Callable[[], object]) -> float:
        """Median seconds of one call."""
        with torch.inference_mode():
            for _ in range(self.warmup):
                fn()
            self.sync()
            times = []
            for _ in range(self.iters):
                start = time.perf_counter()
                fn()
                self.sync()
                times.append(time.perf_counter() - start)
        return statistics.median(times)

    def add(self, section: str, name: str, items: int, unit: str,
            fn: Optional[Callable[[], object]], note: str = '') -> None:
        if fn is None:
            self.rows.append(
                dict(section=section, name=name, seconds=None, note=note))
            print(f'[{section}] {name}: skipped ({note})', flush=True)
            return
        seconds = self.time(fn)
        row = dict(
            section=section,
            name=name,
            seconds=seconds,
            throughput=items / seconds,
            unit=unit,
            note=note)
        self.rows.append(row)
        print(f'[{section}] {name}: {seconds * 1e3:.2f} ms, '
              f'{items / seconds:,.1f} {unit}', flush=True)


def autocast(device: torch.device, precision: str):
    if precision == 'fp32':
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=PRECISIONS[precision])


def build(config: str, device: torch.device) -> torch.nn.Module:
    cfg = Config.fromfile(osp.join(CONFIGS, config))
    model = MODELS.build(cfg.model).to(device)
    model.eval()
    return model


def maybe_compile(model: torch.nn.Module,
                  args: argparse.Namespace,
                  modules: Optional[List[str]] = None,
                  dynamic: Optional[bool] = False) -> torch.nn.Module:
    """``mmprompt.models.utils.compile_model`` (frozen weights folded) when
    ``--compile`` is given, as ``tools/test.py --compile`` does."""
    if args.compile:
        from mmprompt.models.utils import compile_model
        mode = None if args.compile_mode in (None, 'default') else \
            args.compile_mode
        compile_model(model, modules=modules, mode=mode, dynamic=dynamic)
    return model


def bench_vit(bench: Bench, args: argparse.Namespace) -> None:
    device, batch = bench.device, args.vit_batch
    images = torch.randn(batch, 3, 224, 224, device=device)
    clip = apply_precision(
        build('_base_/models/clip_vit-base-p16.py', device), args.precision,
        strategy=args.strategy)
    encode = maybe_compile(clip, args).extract_image_feat
    bench.add('vit', 'mmprompt CLIP ViT-B/16', batch, 'img/s',
              lambda: encode(images), f'{args.precision}, {args.strategy}')

    try:
        import open_clip
        oc = open_clip.create_model(
            'ViT-B-16-quickgelu', pretrained=None).to(device).eval()

        def run_open_clip():
            with autocast(device, args.precision):
                return oc.encode_image(images)

        bench.add('vit', 'open_clip ViT-B-16', batch, 'img/s',
                  run_open_clip, 'autocast')
    except ImportError as e:
        bench.add('vit', 'open_clip ViT-B-16', batch, 'img/s', None, str(e))

    from mmpretrain.models.backbones import VisionTransformer
    vit = VisionTransformer(
        arch='base', img_size=224, patch_size=16, pre_norm=True,
        out_type='cls_token').to(device)
    vit.eval()  # MMPreTrain's backbones return None from train()/eval()

    def run_mmpretrain():
        with autocast(device, args.precision):
            return vit(images)

    bench.add('vit', 'MMPreTrain VisionTransformer', batch, 'img/s',
              run_mmpretrain, 'autocast')

    try:
        import timm
        tv = timm.create_model(
            'vit_base_patch16_clip_224.openai', pretrained=False,
            num_classes=0).to(device).eval()

        def run_timm():
            with autocast(device, args.precision):
                return tv(images)

        bench.add('vit', 'timm vit_base_patch16_clip_224', batch, 'img/s',
                  run_timm, 'autocast')
    except ImportError as e:
        bench.add('vit', 'timm vit_base_patch16_clip_224', batch, 'img/s',
                  None, str(e))


def bench_prototypes(bench: Bench, args: argparse.Namespace) -> None:
    from mmprompt.models.clip.prompts import (resolve_categories,
                                              resolve_templates)
    from mmprompt.models.clip.zero_shot import build_text_prototypes
    device = bench.device
    categories = list(resolve_categories('imagenet'))
    templates = list(resolve_templates('openai_imagenet'))
    if args.quick:
        categories, templates = categories[:20], templates[:4]
    prompts = len(categories) * len(templates)
    clip = apply_precision(
        build('_base_/models/clip_vit-base-p16.py', device), args.precision,
        strategy=args.strategy)
    # Batches are cut to their longest prompt: lengths vary, so symbolic.
    encode = maybe_compile(
        clip, args, modules=['text_encoder'], dynamic=None).extract_text_feat
    bench.add(
        'prototypes', 'mmprompt build_text_prototypes', prompts,
        'prompts/s', lambda: build_text_prototypes(
            encode, clip.tokenizer, categories, templates, device=device),
        f'{len(categories)} x {len(templates)}, context cut per batch')
    try:
        import open_clip
        from open_clip import build_zero_shot_classifier
        oc = open_clip.create_model(
            'ViT-B-16-quickgelu', pretrained=None).to(device).eval()
        tokenizer = open_clip.get_tokenizer('ViT-B-16')

        def run_open_clip():
            with autocast(device, args.precision):
                return build_zero_shot_classifier(
                    oc, tokenizer, categories,
                    [t.format for t in templates],
                    num_classes_per_batch=10, device=device,
                    use_tqdm=False)

        bench.add('prototypes', 'open_clip build_zero_shot_classifier',
                  prompts, 'prompts/s', run_open_clip, 'context 77')
    except ImportError as e:
        bench.add('prototypes', 'open_clip build_zero_shot_classifier',
                  prompts, 'prompts/s', None, str(e))


def _ram(device: torch.device, precision: str,
         strategy: str) -> torch.nn.Module:
    ram = build('_base_/models/ram_swin-large-p4-w12_384px.py', device)
    return apply_precision(ram, precision, strategy=strategy)


def bench_swin(bench: Bench, args: argparse.Namespace, batch: int,
               section: str) -> None:
    device = bench.device
    images = torch.randn(batch, 3, 384, 384, device=device)
    unit = 'img/s'
    ram = maybe_compile(_ram(device, args.precision, args.strategy), args)
    note = f'{args.precision}, {args.strategy}, SDPA'
    bench.add(section, 'mmprompt RAM (Swin-L + 4585-tag head)', batch, unit,
              lambda: ram.compute_logits(images), note)
    bench.add(section, 'mmprompt RAM image encoder only', batch, unit,
              lambda: ram.extract_image_feat(images), note)
    try:
        import timm
        swin = timm.create_model(
            'swin_large_patch4_window12_384', pretrained=False,
            num_classes=0).to(device).eval()

        def run_timm():
            with autocast(device, args.precision):
                return swin.forward_features(images)

        bench.add(section, 'timm swin_large_patch4_window12_384', batch,
                  unit, run_timm, 'autocast')
    except ImportError as e:
        bench.add(section, 'timm swin_large_patch4_window12_384', batch,
                  unit, None, str(e))
    from mmpretrain.models.backbones import SwinTransformer
    mm_swin = SwinTransformer(
        arch='large', img_size=384, window_size=12,
        out_indices=(3, )).to(device)
    mm_swin.eval()

    def run_mmpretrain():
        with autocast(device, args.precision):
            return mm_swin(images)

    bench.add(section, 'MMPreTrain SwinTransformer', batch, unit,
              run_mmpretrain, 'autocast')


def print_table(rows: List[Dict]) -> None:
    print('\n| section | model | ms / call | throughput | vs best peer |')
    print('| --- | --- | --- | --- | --- |')
    for section in dict.fromkeys(r['section'] for r in rows):
        group = [r for r in rows if r['section'] == section]
        peers = [
            r['throughput'] for r in group
            if r['seconds'] and not r['name'].startswith('mmprompt')
        ]
        best = max(peers) if peers else None
        for r in group:
            if r['seconds'] is None:
                print(f"| {section} | {r['name']} | skipped | "
                      f"{r['note']} | |")
                continue
            ratio = f"{r['throughput'] / best:.2f}x" if best else '-'
            print(f"| {section} | {r['name']} | {r['seconds'] * 1e3:.1f} | "
                  f"{r['throughput']:,.1f} {r['unit']} | {ratio} |")


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    if args.quick:
        args.vit_batch, args.swin_batch = 2, 1
        args.iters, args.warmup = 2, 1
    register_all_modules()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    device = torch.device(args.device)
    bench = Bench(device, args.iters, args.warmup)
    env = dict(
        device=(torch.cuda.get_device_name(device)
                if device.type == 'cuda' else 'cpu'),
        torch=torch.__version__,
        precision=args.precision,
        compile=args.compile and args.compile_mode,
        argv=sys.argv[1:] if argv is None else argv)
    print(json.dumps(env), flush=True)
    sections = args.only or ['vit', 'prototypes', 'swin', 'latency']
    if 'vit' in sections:
        bench_vit(bench, args)
    if 'prototypes' in sections:
        bench_prototypes(bench, args)
    if 'swin' in sections:
        bench_swin(bench, args, args.swin_batch, 'swin')
    if 'latency' in sections:
        bench_swin(bench, args, 1, 'latency')
    print_table(bench.rows)
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(dict(env=env, rows=bench.rows), f, indent=2)
    return 0


if __name__ == '__main__':
    sys.exit(main())
