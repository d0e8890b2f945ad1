# Copyright (c) mmprompt contributors. All rights reserved.
"""Benchmark: onnxruntime on the CPU vs PyTorch eager, same exported graph.

For CLIP ViT-B/16's image tower, RAM and RAM++ (Swin-L/384, 4585 tags),
random full-size weights: the wrapper of :mod:`mmprompt.deployment.onnx`
runs in PyTorch eager (``torch.inference_mode``) and as its exported ONNX
file in onnxruntime's CPU provider, on the same inputs, with the same
number of threads. Runs are interleaved (torch, ort, torch, ort, ...)
after a warm-up; medians of the wall and of the CPU time are reported, with
the load average before and after, and the outputs are compared first
(max abs diff).

    python benchmarks/onnx_cpu.py --model image --threads 1 --batch 1
    python benchmarks/onnx_cpu.py --model ram ram_plus \
        --onnx /tmp/ram.onnx /tmp/ram_plus.onnx --out results.json

``--onnx`` (one file per ``--model``) keeps the exports; an existing file
is reused, e.g. the one the heavy parity test leaves in pytest's temporary
folder (``test_ram_tagging_ram_plus0/ram_plus.onnx``): same seeds, same
model.
"""
import argparse
import json
import os
import os.path as osp
import statistics
import tempfile
import time

import torch
from mmengine.config import Config

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = dict(
    image=('clip/clip_vit-base-p16_zeroshot-cls_in1k.py', 'image'),
    ram=('ram/ram_swin-large-p4-w12_384px_normal.py', 'tagging'),
    ram_plus=('ram/ram-plus_swin-large-p4-w12_384px_normal.py', 'tagging'))


def build(name: str) -> torch.nn.Module:
    """The random model of tests/test_deployment/test_onnx_parity.py (same
    seeds, so that test's export can be passed as ``--onnx``)."""
    from mmprompt.apis.builder import build_from_config
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


def timed(fn) -> tuple:
    """Wall and CPU seconds (the process's, all threads) of one call. On
    a shared machine the wall time includes waiting for a core; with one
    thread per side the CPU time is the work itself."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def load_average() -> list:
    return [round(x, 2) for x in os.getloadavg()]


def bench(name: str, path: str, batch: int, threads: int, runs: int) -> dict:
    """One model: export (or reuse ``path``), compare, interleaved timing."""
    from mmprompt.deployment import (compare_onnx, export_onnx, onnx_session,
                                     run_onnx)
    module = build(name)
    start = time.perf_counter()
    reused = osp.exists(path)
    if not reused:
        export_onnx(module, path)
    export_s = time.perf_counter() - start
    session = onnx_session(path, threads=threads)
    inputs = module.example_inputs(batch)
    diffs = compare_onnx(session, module, inputs)

    def eager():
        with torch.inference_mode():
            module(*inputs)

    def ort():
        run_onnx(session, module, inputs)

    load_before = load_average()
    eager(), ort()  # warm-up
    sides = dict(torch=eager, onnxruntime=ort)
    times = {k: [] for k in sides}
    cpu = {k: [] for k in sides}
    for _ in range(runs):
        for side, fn in sides.items():
            wall_s, cpu_s = timed(fn)
            times[side].append(wall_s)
            cpu[side].append(cpu_s)
    medians = {k: statistics.median(v) for k, v in times.items()}
    cpu_medians = {k: statistics.median(v) for k, v in cpu.items()}
    return dict(
        model=name,
        batch=batch,
        threads=threads,
        runs=runs,
        export_s=None if reused else round(export_s, 1),
        max_abs_diff=diffs,
        times_s={
            k: [round(t, 3) for t in v]
            for k, v in times.items()
        },
        median_s={
            k: round(v, 3)
            for k, v in medians.items()
        },
        eager_over_ort=round(medians['torch'] / medians['onnxruntime'], 3),
        cpu_s={
            k: [round(t, 3) for t in v]
            for k, v in cpu.items()
        },
        cpu_median_s={
            k: round(v, 3)
            for k, v in cpu_medians.items()
        },
        cpu_eager_over_ort=round(
            cpu_medians['torch'] / cpu_medians['onnxruntime'], 3),
        load_before=load_before,
        load_after=load_average())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--model', nargs='+', choices=list(CONFIGS), default=['image'])
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--runs', type=int, default=5)
    parser.add_argument(
        '--onnx', nargs='+', help='keep the exports here (reused)')
    parser.add_argument('--out', help='write the figures to this JSON file')
    args = parser.parse_args()
    if args.onnx and len(args.onnx) != len(args.model):
        parser.error('give one --onnx file per --model')
    if args.out:
        from mmprompt.utils.io import check_output
        check_output(args.out)
    torch.set_num_threads(args.threads)
    tmp = tempfile.mkdtemp()
    paths = args.onnx or [osp.join(tmp, f'{m}.onnx') for m in args.model]
    results = dict(
        benchmark='onnx_cpu',
        started=time.strftime('%Y-%m-%d %H:%M:%S'),
        cores=os.cpu_count(),
        torch=torch.__version__,
        onnxruntime=__import__('onnxruntime').__version__,
        models=[])
    for name, path in zip(args.model, paths):
        results['models'].append(
            bench(name, path, args.batch, args.threads, args.runs))
        print(json.dumps(results['models'][-1]), flush=True)
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        from mmprompt.utils.io import atomic_write
        with atomic_write(args.out, 'w') as f:
            f.write(text + '\n')


if __name__ == '__main__':
    main()
