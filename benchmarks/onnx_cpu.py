# Copyright (c) mmprompt contributors. All rights reserved.
"""Benchmark: onnxruntime on the CPU vs PyTorch eager, same exported graph.

For CLIP ViT-B/16's image tower and RAM (Swin-L/384, 4585 tags), random
full-size weights: the wrapper of :mod:`mmprompt.deployment.onnx` runs in
PyTorch eager (``torch.inference_mode``) and as its exported ONNX file in
onnxruntime's CPU provider, on the same inputs, with the same number of
threads. Runs are interleaved (torch, ort, torch, ort, ...) after a warm-up;
medians are reported, and the outputs are compared first (max abs diff).

    python benchmarks/onnx_cpu.py --model image --threads 1 --batch 1
    python benchmarks/onnx_cpu.py --model ram --onnx /tmp/ram.onnx

``--onnx`` keeps the export (an existing file is reused).
"""
import argparse
import json
import os.path as osp
import statistics
import tempfile
import time

import torch
from mmengine.config import Config

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = dict(
    image=('clip/clip_vit-base-p16_zeroshot-cls_in1k.py', 'image'),
    ram=('ram/ram_swin-large-p4-w12_384px_normal.py', 'tagging'))


def build(name: str) -> torch.nn.Module:
    """The random model of tests/test_deployment/test_onnx_parity.py (same
    seeds, so that test's export can be passed as ``--onnx``)."""
    from mmprompt.apis.utils import build_from_config
    from mmprompt.deployment import build_export_module
    from mmprompt.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    config, kind = CONFIGS[name]
    torch.manual_seed(0 if kind == 'image' else 1)
    model = build_from_config(
        Config.fromfile(osp.join(REPO_ROOT, 'configs', config)))
    model.init_weights()
    if kind == 'tagging':
        with torch.no_grad():
            model.label_embed.normal_(std=0.5)
            model.class_threshold.uniform_(0.3, 0.7)
    return build_export_module(model.eval(), kind)


def timed(fn, repeats: int) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--model', choices=list(CONFIGS), default='image')
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--runs', type=int, default=5)
    parser.add_argument('--onnx', help='keep the export here (reused)')
    args = parser.parse_args()
    from mmprompt.deployment import (compare_onnx, export_onnx, onnx_session,
                                     run_onnx)
    torch.set_num_threads(args.threads)
    module = build(args.model)
    path = args.onnx or osp.join(tempfile.mkdtemp(), f'{args.model}.onnx')
    start = time.perf_counter()
    if not osp.exists(path):
        export_onnx(module, path)
    export_s = time.perf_counter() - start
    session = onnx_session(path, threads=args.threads)
    inputs = module.example_inputs(args.batch)
    diffs = compare_onnx(session, module, inputs)

    def eager():
        with torch.inference_mode():
            module(*inputs)

    def ort():
        run_onnx(session, module, inputs)

    eager(), ort()  # warm-up
    times = dict(torch=[], onnxruntime=[])
    for _ in range(args.runs):
        times['torch'].append(timed(eager, 1))
        times['onnxruntime'].append(timed(ort, 1))
    medians = {k: statistics.median(v) for k, v in times.items()}
    print(
        json.dumps(
            dict(
                model=args.model,
                batch=args.batch,
                threads=args.threads,
                runs=args.runs,
                export_s=round(export_s, 1),
                max_abs_diff=diffs,
                median_s=medians,
                eager_over_ort=medians['torch'] / medians['onnxruntime'],
                torch=torch.__version__),
            indent=2))


if __name__ == '__main__':
    main()
