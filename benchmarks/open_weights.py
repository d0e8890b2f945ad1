# Copyright (c) mmprompt contributors. All rights reserved.
"""Benchmark: the open weights' models (issues #20, #21) against open_clip.

For each architecture, open_clip builds a random-weight model, mmprompt
converts its state dict with its own converter and loads it into the
zoo's config, and both then run in one process, one after the other:

- prototypes: ImageNet classes x OpenAI's 80 templates, mmprompt's
  ``CLIPZeroShot.build_prototypes`` (identical prompts once; CLIP: prompts
  batched by length, cut to the longest, template starts shared under the
  causal mask; SigLIP: rows of 64, the last block at the pooled token only)
  against open_clip's ``build_zero_shot_classifier`` (10 classes per batch,
  full rows);
- images: the image tower on a batch of preprocessed images
  (``extract_image_feat`` against ``encode_image``), one untimed call
  each, then ``--repeats`` pairs alternating the two sides, the median.

The two prototype sets and image features are compared (max abs diff after
normalisation): a speed-up that changed the answer would show there.

``--compile`` adds, after the eager figures, both sides under
``torch.compile`` (inductor, ``freezing`` on for both): mmprompt through
:func:`mmprompt.models.utils.compile_model` (what ``tools/test.py
--compile`` runs; with ``text=True`` where the model names a text tower of
static shapes, SigLIP's), open_clip's ``encode_image`` / ``encode_text``
through ``torch.compile`` with default settings. The first call of each
compiled function is timed apart (wall time: compile plus one run); the
figures are steady calls, each compared with open_clip eager. Prototypes
are compiled only where mmprompt's are (a causal text tower runs batches of
varying length, one graph each).
``--num-classes`` times a slice of ImageNet; prototype time grows linearly
in it. SigLIP's tokenizer.json comes with its weights (not downloaded
here): both sides use one unigram tokenizer trained on the benchmark's
prompts (each distinct prompt gets distinct ids; rows are 64 tokens
whatever the tokenizer).

Example:
    python benchmarks/open_weights.py --model ViT-H-14 --num-classes 10
    python benchmarks/open_weights.py --model PE-Core-L-14-336 --out x.json
    python benchmarks/open_weights.py --model ViT-B-16-SigLIP --num-classes 4
    python benchmarks/open_weights.py --model ViT-B-16-SigLIP --compile
    python benchmarks/open_weights.py --model ViT-B-16-SigLIP --count-flops
"""
import argparse
import json
import os
import os.path as osp
import statistics
import sys
import tempfile
import time
import types
from typing import Callable, Dict, List, Optional

import torch
import torch.nn.functional as F

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

#: open_clip architecture -> (mmprompt base config, converter key).
MODELS_ = {
    'ViT-H-14': ('clip_vit-huge-p14_laion2b.py', 'open_clip'),
    'ViT-L-14': ('clip_vit-large-p14_datacomp-xl.py', 'open_clip'),
    'PE-Core-B-16': ('pe-core_vit-base-p16.py', 'pe_core'),
    'PE-Core-L-14-336': ('pe-core_vit-large-p14-336px.py', 'pe_core'),
    'ViT-B-16-SigLIP': ('siglip_vit-base-p16.py', 'siglip'),
    'ViT-B-16-SigLIP2': ('siglip2_vit-base-p16.py', 'siglip'),
}


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--model', nargs='+', default=['ViT-H-14', 'PE-Core-L-14-336'],
        choices=sorted(MODELS_))
    parser.add_argument(
        '--num-classes', type=int, default=10,
        help='first N ImageNet classes (default 10; 1000 for all)')
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument(
        '--threads', type=int, default=1, help='torch threads (default 1)')
    parser.add_argument(
        '--compile', action='store_true',
        help='also time both sides under torch.compile (inductor, frozen '
        'weights)')
    parser.add_argument(
        '--count-flops', action='store_true',
        help='count the floating-point operations of both sides (prototypes, '
        'one image; torch.utils.flop_counter) instead of timing them')
    parser.add_argument(
        '--open-clip-sample', type=int, metavar='N',
        help='open_clip builds N of the classes, evenly spread, and its '
        'time is scaled to all (its batches of 10 classes are equal work: '
        'every row is the full context); for 1,000 classes on a CPU')
    parser.add_argument(
        '--precision', default='fp32', choices=['fp32', 'bf16'],
        help='mmprompt\'s side through apply_precision (the inferencers\' '
        'precision=); open_clip stays fp32, the reference (default fp32)')
    parser.add_argument('--out', help='write the figures to this JSON file')
    return parser.parse_args(argv)


def siglip_tokenizers(cfg, texts: List[str], folder: str):
    """One tokenizer.json trained on ``texts`` for both sides: open_clip's
    ``HFTokenizer`` (canonicalised) and the config's, pointed at it."""
    from open_clip.tokenizer import HFTokenizer
    sys.path.insert(0, osp.join(ROOT, 'tests'))
    from testing_utils.siglip import train_tokenizer
    pad = cfg.model.tokenizer.pad_token
    path = train_tokenizer(folder, pad, texts, vocab_size=2000)
    cfg.model.tokenizer.update(tokenizer_file=path, vocab_size=None)
    return HFTokenizer(folder, context_length=64, clean='canonicalize')


def build_pair(name: str, texts: List[str], folder: str):
    """open_clip's random model and mmprompt's, loaded from it, and
    open_clip's tokenizer (for SigLIP, trained on ``texts`` in
    ``folder``)."""
    import open_clip
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    from mmprompt.converters import CONVERTERS
    from mmprompt.registry import MODELS
    from mmprompt.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    config, key = MODELS_[name]
    torch.manual_seed(0)
    ref = open_clip.create_model(name, pretrained=None).eval()
    cfg = Config.fromfile(osp.join(ROOT, 'configs', '_base_', 'models',
                                   config))
    if key == 'siglip':
        tokenizer = siglip_tokenizers(cfg, texts, folder)
    else:
        tokenizer = open_clip.get_tokenizer(name)
    with DefaultScope.overwrite_default_scope('mmprompt'):
        ours = MODELS.build(cfg.model)
    converted, _ = CONVERTERS[key](ref.state_dict())
    ours.load_state_dict(converted, strict=True)
    return ref, ours.eval(), tokenizer


def timed(fn):
    start = time.process_time()
    out = fn()
    return out, time.process_time() - start


def first_call(fn: Callable):
    """``fn()`` and its wall time: a compiled function's first call
    compiles (inductor may work in other processes)."""
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def open_clip_compiled(ref):
    """open_clip's towers under ``torch.compile`` with default settings."""
    return types.SimpleNamespace(
        encode_image=torch.compile(ref.encode_image),
        encode_text=torch.compile(ref.encode_text))


def diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """Max abs diff of the rows of ``a`` and ``b``, each normalised."""
    return float((F.normalize(a.float(), dim=-1)
                  - F.normalize(b.float(), dim=-1)).abs().max())


def prototypes(ref, ours, tokenizer, classes: List[str],
               templates: List[str],
               sample: Optional[int] = None) -> Dict[str, float]:
    """Both builders over ``classes``; with ``sample``, open_clip builds
    only that many classes spread over them, and its time is scaled up."""
    from open_clip import build_zero_shot_classifier
    picked = list(range(len(classes)))
    if sample:
        picked = picked[::max(len(classes) // sample, 1)][:sample]

    def run(model):
        return build_zero_shot_classifier(
            model, tokenizer, [classes[i] for i in picked],
            [t.format for t in templates], num_classes_per_batch=10,
            device='cpu').t()

    with torch.no_grad():
        theirs, t_ref = timed(lambda: run(ref))
        mine, t_ours = timed(
            lambda: ours.build_prototypes(classes, templates))
    row = dict(
        open_clip_s=t_ref * len(classes) / len(picked),
        mmprompt_s=t_ours,
        max_abs_diff=diff(theirs, mine[picked]))
    row['ratio'] = row['open_clip_s'] / t_ours
    if sample:
        row.update(open_clip_sample_classes=len(picked),
                   open_clip_sample_s=t_ref)
    return row, theirs


def count_flops(ref, ours, tokenizer, classes: List[str],
                templates: List[str]) -> Dict[str, float]:
    """The floating-point operations of each prototype builder and of one
    image through each image tower, counted by ``FlopCounterMode`` (matmuls,
    linears, convolutions, attention). A ratio bounds what an exact speed-up
    can gain where both sides run the same GEMM kernels. PyTorch's fused
    ``nn.MultiheadAttention`` path, which open_clip takes, is invisible to
    the counter, so it is switched off for the count (the arithmetic is the
    same)."""
    from open_clip import build_zero_shot_classifier
    from torch.utils.flop_counter import FlopCounterMode

    def count(fn: Callable) -> int:
        with torch.no_grad(), FlopCounterMode(display=False) as mode:
            fn()
        return mode.get_total_flops()

    # The counter's module tracker hooks tensors that require grad.
    ref.requires_grad_(False)
    ours.requires_grad_(False)
    x = image_batch(ours, 1)
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        text = [
            count(lambda: build_zero_shot_classifier(
                ref, tokenizer, classes, [t.format for t in templates],
                num_classes_per_batch=10, device='cpu')),
            count(lambda: ours.build_prototypes(classes, templates))]
        image = [count(lambda: ref.encode_image(x)),
                 count(lambda: ours.extract_image_feat(x))]
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    return dict(
        prototypes=dict(open_clip=text[0], mmprompt=text[1],
                        ratio=text[0] / text[1]),
        image=dict(open_clip=image[0], mmprompt=image[1],
                   ratio=image[0] / image[1]))


def images(ref, ours, batch_size: int, repeats: int) -> Dict[str, float]:
    x = image_batch(ours, batch_size)
    t_ref, t_ours = [], []
    with torch.no_grad():
        ref.encode_image(x)  # warm-up: first-call allocations, not timed
        ours.extract_image_feat(x)
        for _ in range(repeats):
            theirs, t = timed(lambda: ref.encode_image(x))
            t_ref.append(t)
            mine, t = timed(lambda: ours.extract_image_feat(x))
            t_ours.append(t)
    a, b = statistics.median(t_ref), statistics.median(t_ours)
    return dict(
        open_clip_s=a,
        mmprompt_s=b,
        open_clip_img_per_s=batch_size / a,
        mmprompt_img_per_s=batch_size / b,
        ratio=a / b,
        open_clip_runs_s=t_ref,
        mmprompt_runs_s=t_ours,
        max_abs_diff=diff(theirs, mine))


def image_batch(ours, batch_size: int) -> torch.Tensor:
    size = int(ours.visual.img_size[0])
    return torch.randn(batch_size, 3, size, size,
                       generator=torch.Generator().manual_seed(0))


def compiled(ref, ours, tokenizer, classes: List[str], templates: List[str],
             eager: dict, ref_protos: torch.Tensor, batch_size: int,
             repeats: int) -> dict:
    """The compiled figures, against open_clip eager (``eager``, its
    prototypes ``ref_protos``) and open_clip compiled; ``ours`` is compiled
    in place."""
    import torch._inductor.config as inductor_config
    from open_clip import build_zero_shot_classifier

    from mmprompt.models.utils import compile_model
    text = bool(getattr(ours, 'text_compile_modules', ()))
    compile_model(ours, text=text)
    theirs = open_clip_compiled(ref)
    x = image_batch(ours, batch_size)
    row = dict(text_compiled=text)
    with torch.no_grad(), inductor_config.patch(freezing=True):
        ref_feats = ref.encode_image(x)
        _, row['mmprompt_image_compile_s'] = first_call(
            lambda: ours.extract_image_feat(x))
        _, row['open_clip_image_compile_s'] = first_call(
            lambda: theirs.encode_image(x))
        t_ours, t_ref = [], []
        for _ in range(repeats):
            mine, t = timed(lambda: ours.extract_image_feat(x))
            t_ours.append(t)
            other, t = timed(lambda: theirs.encode_image(x))
            t_ref.append(t)
        a, b = statistics.median(t_ref), statistics.median(t_ours)
        base = eager['images']['open_clip_s']
        row['images'] = dict(
            mmprompt_s=b,
            open_clip_s=a,
            mmprompt_img_per_s=batch_size / b,
            open_clip_img_per_s=batch_size / a,
            mmprompt_vs_open_clip_eager=base / b,
            mmprompt_vs_open_clip_compiled=a / b,
            open_clip_compiled_vs_eager=base / a,
            mmprompt_max_abs_diff=diff(ref_feats, mine),
            open_clip_max_abs_diff=diff(ref_feats, other))
        if not text:
            return row

        # Prototypes: the first build compiles every batch shape.
        def run_theirs():
            return build_zero_shot_classifier(
                theirs, tokenizer, classes, [t.format for t in templates],
                num_classes_per_batch=10, device='cpu').t()

        def run_ours():
            return ours.build_prototypes(classes, templates)

        _, row['mmprompt_text_compile_s'] = first_call(run_ours)
        _, row['open_clip_text_compile_s'] = first_call(run_theirs)
        mine, b = timed(run_ours)
        other, a = timed(run_theirs)
    base = eager['prototypes']['open_clip_s']
    row['prototypes'] = dict(
        mmprompt_s=b,
        open_clip_s=a,
        mmprompt_vs_open_clip_eager=base / b,
        mmprompt_vs_open_clip_compiled=a / b,
        open_clip_compiled_vs_eager=base / a,
        mmprompt_max_abs_diff=diff(ref_protos, mine),
        open_clip_max_abs_diff=diff(ref_protos, other))
    return row


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    from mmprompt.models.clip.prompts import (IMAGENET_CATEGORIES,
                                              OPENAI_IMAGENET_TEMPLATES)
    classes = list(IMAGENET_CATEGORIES[:args.num_classes])
    templates = list(OPENAI_IMAGENET_TEMPLATES)
    results = dict(
        threads=args.threads,
        precision=args.precision,
        num_classes=len(classes),
        num_templates=len(templates),
        batch_size=args.batch_size,
        torch=torch.__version__,
        load_average=os.getloadavg(),
        models={})
    texts = [t.format(c) for c in classes for t in templates]
    for name in args.model:
        with tempfile.TemporaryDirectory() as folder:
            ref, ours, tokenizer = build_pair(name, texts, folder)
            if args.precision != 'fp32':
                from mmprompt.models.utils import apply_precision
                apply_precision(ours, args.precision)
            if args.count_flops:
                row = dict(flops=count_flops(
                    ref, ours, tokenizer, classes, templates))
                results['models'][name] = row
                print(f'{name}: {json.dumps(row)}')
                continue
            protos, ref_protos = prototypes(ref, ours, tokenizer, classes,
                                            templates, args.open_clip_sample)
            row = dict(
                prototypes=protos,
                images=images(ref, ours, args.batch_size, args.repeats))
            if args.compile:
                row['compiled'] = compiled(ref, ours, tokenizer, classes,
                                           templates, row, ref_protos,
                                           args.batch_size, args.repeats)
        results['models'][name] = row
        print(f"{name}: prototypes {row['prototypes']['ratio']:.2f}x "
              f"({row['prototypes']['open_clip_s']:.1f} vs "
              f"{row['prototypes']['mmprompt_s']:.1f} CPU-s, diff "
              f"{row['prototypes']['max_abs_diff']:.1e}); images "
              f"{row['images']['ratio']:.2f}x "
              f"({row['images']['open_clip_img_per_s']:.2f} vs "
              f"{row['images']['mmprompt_img_per_s']:.2f} img/s, diff "
              f"{row['images']['max_abs_diff']:.1e})")
        if args.compile:
            print(f'{name} compiled: {json.dumps(row["compiled"])}')
        del ref, ours
    if args.out:
        from mmprompt.utils.io import atomic_write
        with atomic_write(args.out, 'w') as f:
            json.dump(results, f, indent=2)
    return results


if __name__ == '__main__':
    main()
