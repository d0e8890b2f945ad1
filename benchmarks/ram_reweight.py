# Copyright (c) mmprompt contributors. All rights reserved.
"""Benchmark: RAM++'s per-image mixing of tag descriptions.

For each image, every tag's 51 description embeddings are weighted by a
softmax of their similarity to the image and summed (RAM++'s label
queries). Three implementations, same inputs, full size (4585 tags x 51
descriptions x 512):

- mmprompt: :meth:`RAMPlus.reweight_label_embed`, one batched ``einsum``;
- per image: the reference's loop over the batch, each image multiplying
  and summing the whole ``(4585, 51, 512)`` table (``batch_inference.py``);
- per image and tag: the plain double loop, one small softmax and weighted
  sum per (image, tag).

All three must agree to 1e-6 (``tests/test_models/test_ram.py`` checks the
same on the tiny model). The Swin and tagging head are not involved, so the
model is built with a tiny Swin.

Example:
    python benchmarks/ram_reweight.py --threads 1
"""
import argparse
import json
import math
import os.path as osp
import statistics
import time
from typing import Callable, Dict, List, Optional

import torch
from mmengine.logging import print_log

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--threads', type=int, default=1, help='torch threads (default 1)')
    parser.add_argument('--num-tags', type=int, default=4585)
    parser.add_argument('--num-descriptions', type=int, default=51)
    parser.add_argument('--batch-sizes', type=int, nargs='+', default=[1, 8])
    parser.add_argument('--runs', type=int, default=3)
    parser.add_argument(
        '--loop-runs',
        type=int,
        default=1,
        help='runs of the per-image-and-tag loop (slow)')
    parser.add_argument('--out', help='write the figures to this JSON file')
    return parser.parse_args(argv)


def build_model(num_tags: int, num_descriptions: int):
    """A RAMPlus with random unit description embeddings, tiny Swin."""
    from mmengine.config import Config

    from mmprompt.registry import MODELS
    from mmprompt.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(
        osp.join(REPO_ROOT, 'configs', 'ram',
                 'ram-plus_swin-large-p4-w12_384px_normal.py')).model
    cfg.visual_encoder.arch = dict(
        embed_dims=12, depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8])
    cfg.num_classes = num_tags
    cfg.num_descriptions = num_descriptions
    model = MODELS.build(cfg).eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        embed = torch.randn(model.label_embed.shape, generator=g)
        model.label_embed.copy_(embed / embed.norm(dim=-1, keepdim=True))
        model.reweight_scale.fill_(math.log(1 / 0.07))
    return model


def per_image(model, image_embeds: torch.Tensor) -> torch.Tensor:
    """The reference's loop: one image at a time, the whole table."""
    k, d = model.vocabulary.num_tags, model.num_descriptions
    table = model.label_embed.view(k, d, -1)
    image = image_embeds[:, 0]
    image = image / image.norm(dim=-1, keepdim=True)
    sim = model.reweight_scale.exp() * image @ model.label_embed.t()
    weights = sim.view(image.size(0), k, d).softmax(dim=-1)
    out = torch.empty(image.size(0), k, table.size(-1))
    for b in range(image.size(0)):
        out[b] = (weights[b].unsqueeze(-1) * table).sum(dim=1)
    return out


def per_image_and_tag(model, image_embeds: torch.Tensor) -> torch.Tensor:
    """The plain double loop over images and tags."""
    k, d = model.vocabulary.num_tags, model.num_descriptions
    table = model.label_embed.view(k, d, -1)
    scale = model.reweight_scale.exp()
    out = torch.empty(image_embeds.size(0), k, table.size(-1))
    for b in range(image_embeds.size(0)):
        image = image_embeds[b, 0] / image_embeds[b, 0].norm()
        for t in range(k):
            w = torch.softmax(scale * table[t] @ image, dim=0)
            out[b, t] = (w[:, None] * table[t]).sum(dim=0)
    return out


def median_time(fn: Callable, runs: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    model = build_model(args.num_tags, args.num_descriptions)
    result: Dict[str, dict] = dict(
        threads=args.threads,
        num_tags=args.num_tags,
        num_descriptions=args.num_descriptions)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for batch in args.batch_sizes:
            x = torch.randn(batch, 145, 512, generator=g)
            ours = model.reweight_label_embed(x)
            diffs = {
                name: (fn(model, x) - ours).abs().max().item()
                for name, fn in [(
                    'per_image',
                    per_image), ('per_image_and_tag', per_image_and_tag)]
            }
            assert max(diffs.values()) < 1e-6, diffs
            seconds = dict(
                mmprompt=median_time(lambda: model.reweight_label_embed(x),
                                     args.runs),
                per_image=median_time(lambda: per_image(model, x), args.runs),
                per_image_and_tag=median_time(
                    lambda: per_image_and_tag(model, x), args.loop_runs))
            speedup = {
                k: v / seconds['mmprompt']
                for k, v in seconds.items() if k != 'mmprompt'
            }
            result[f'batch{batch}'] = dict(
                seconds=seconds, speedup=speedup, max_abs_diff=diffs)
            lines = [f'batch {batch}, max |diff| {max(diffs.values()):.1e}:']
            for name, value in seconds.items():
                ratio = value / seconds['mmprompt']
                lines.append(f'  {name:<18} {value * 1000:9.1f} ms  '
                             f'x{ratio:.1f} mmprompt\'s time')
            print_log('\n'.join(lines), logger='current')
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == '__main__':
    main()
