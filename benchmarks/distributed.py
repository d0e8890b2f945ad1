# Copyright (c) mmprompt contributors. All rights reserved.
"""Scaling of evaluation and bulk tagging from 1 to N processes on CPU.

Runs, for each process count (``--procs``, default 1 and 2), one thread
per process (``OMP_NUM_THREADS=1``), over gloo:

- **evaluation**: ``tools/test.py`` (``torchrun`` for N > 1) with a
  random-weight CLIP ViT-B/32 zero-shot classifier (10 categories, one
  template) on ``--images`` synthetic JPEGs (320 x 240) in ImageNet's val
  layout, batch 8, no DataLoader workers; the figure is the img/s of the
  whole test loop that the tool reports (loading, preprocessing, model,
  gathering), without start-up (also recorded: after the first batch,
  which builds the prototypes);
- **bulk tagging**: ``tools/infer.py tag`` over the same images with the
  tiny RAM of the tests (``shared/ram/vectors``, converted by our
  converter; 384 px input), batch 8, chunks of 16, decoding in the
  process itself by default (``--tag-workers 0``: with a DataLoader
  worker per process, one process already keeps two cores busy, main and
  worker, and the ratio no longer measures the processes' scaling); the
  figure is the tool's img/s (first image to merged output, without
  start-up).

The scaling ratio is img/s(N) / img/s(1). Results go to a JSON file with
the machine's core count and load average before and after each run (on a
shared machine the ratio is only as good as the idle cores).

Example::

    python benchmarks/distributed.py --images 160 \
        --out benchmarks/results/distributed_cpu.json
"""
import argparse
import json
import os
import os.path as osp
import platform
import re
import subprocess
import sys
import tempfile
import time
from typing import List

import numpy as np

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.join(REPO, 'tests'))


def write_images(root: str, num: int) -> None:
    from PIL import Image
    os.makedirs(osp.join(root, 'val'))
    os.makedirs(osp.join(root, 'meta'))
    rng = np.random.default_rng(0)
    lines = []
    for i in range(num):
        pixels = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
        name = f'{i:06d}.JPEG'
        Image.fromarray(pixels).save(osp.join(root, 'val', name), quality=90)
        lines.append(f'{name} {i % 10}\n')
    with open(osp.join(root, 'meta', 'val.txt'), 'w') as f:
        f.writelines(lines)


def clip_setup(work: str, data_root: str) -> List[str]:
    """A ViT-B/32 zero-shot config and a random checkpoint of it."""
    import torch
    from mmengine.config import Config

    from mmprompt.registry import MODELS
    from mmprompt.utils import register_all_modules
    register_all_modules()
    config = osp.join(work, 'clip.py')
    base = osp.join(REPO, 'configs', 'clip',
                    'clip_vit-base-p32_zeroshot-cls_in1k.py')
    with open(config, 'w') as f:
        f.write(f'_base_ = [{base!r}]\n'
                'model = dict(categories=[f"class {i}" for i in range(10)],'
                " templates=['a photo of a {}.'])\n"
                'test_dataloader = dict(batch_size=8, num_workers=0, '
                f'dataset=dict(data_root={data_root!r}))\n')
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(config).model)
    checkpoint = osp.join(work, 'clip.pth')
    torch.save(dict(state_dict=model.state_dict()), checkpoint)
    return [config, checkpoint]


def ram_setup(work: str) -> List[str]:
    from testing_utils import ram as R
    vectors = osp.join(
        os.environ.get('MMPROMPT_SHARED', osp.join(osp.dirname(REPO),
                                                   'shared')), 'ram',
        'vectors')
    checkpoint = R.convert_tiny(vectors, work)
    config = R.write_tiny_config(
        osp.join(work, 'ram.py'),
        'ram/ram_swin-large-p4-w12_384px_normal.py', 20)
    return [config, checkpoint]


def load_average() -> List[float]:
    return [round(x, 2) for x in os.getloadavg()]


def launch(script: str, args: List[str], procs: int, port: int) -> str:
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1',
               CUDA_VISIBLE_DEVICES='', PYTHONPATH=REPO)
    path = osp.join(REPO, 'tools', script)
    if procs == 1:
        argv = [sys.executable, path, *args]
    else:
        argv = [
            sys.executable, '-m', 'torch.distributed.run',
            f'--nproc_per_node={procs}', '--master_addr=127.0.0.1',
            f'--master_port={port}', path, *args, '--launcher', 'pytorch'
        ]
    out = subprocess.run(
        argv, env=env, cwd=REPO, capture_output=True, text=True,
        timeout=1800)
    if out.returncode:
        raise RuntimeError(f'{" ".join(argv)} failed:\n{out.stdout[-3000:]}'
                           f'{out.stderr[-3000:]}')
    return out.stdout + out.stderr


def run_eval(work, clip, procs, port) -> dict:
    out = osp.join(work, f'eval_{procs}.json')
    before = load_average()
    launch('test.py', [
        *clip, '--out', out, '--work-dir',
        osp.join(work, f'w{procs}'), '--no-progress'
    ], procs, port)
    with open(out) as f:
        speed = json.load(f)['speed']
    return dict(
        images=speed['images'],
        seconds=round(speed['seconds'], 3),
        images_per_s=round(speed['images_per_s'], 3),
        images_per_s_after_first_batch=round(
            speed['images_per_s_after_first_batch'] or 0, 3),
        load_before=before,
        load_after=load_average())


def run_tag(work, ram, data_root, procs, port, workers=0) -> dict:
    out = osp.join(work, f'tags_{procs}.jsonl')
    before = load_average()
    log = launch('infer.py', [
        'tag',
        osp.join(data_root, 'val'), '--model', ram[0], '--checkpoint',
        ram[1], '--out', out, '--batch-size', '8', '--num-workers', str(workers),
        '--chunk-size', '16', '--no-progress'
    ], procs, port)
    match = re.search(r'(\d+) processed in ([\d.]+) s, ([\d.]+) img/s', log)
    return dict(
        images=int(match.group(1)),
        seconds=float(match.group(2)),
        images_per_s=float(match.group(3)),
        load_before=before,
        load_after=load_average())


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--images', type=int, default=160)
    parser.add_argument('--procs', type=int, nargs='+', default=[1, 2])
    parser.add_argument(
        '--tag-workers', type=int, default=0,
        help='DataLoader workers per process for bulk tagging')
    parser.add_argument(
        '--only', choices=['evaluation', 'tagging'],
        help='run one of the two benchmarks')
    parser.add_argument('--out', help='write the results to this JSON file')
    args = parser.parse_args(argv)
    from testing_utils.dist import free_port
    results = dict(
        benchmark='distributed',
        machine=dict(
            cores=os.cpu_count(),
            processor=platform.processor() or platform.machine(),
            python=platform.python_version()),
        images=args.images,
        tag_workers=args.tag_workers,
        started=time.strftime('%Y-%m-%d %H:%M:%S'),
        evaluation={},
        tagging={})
    with tempfile.TemporaryDirectory() as work:
        data_root = osp.join(work, 'data')
        write_images(data_root, args.images)
        clip = (clip_setup(work, data_root)
                if args.only != 'tagging' else None)
        ram = ram_setup(work) if args.only != 'evaluation' else None
        for procs in args.procs:
            if args.only != 'tagging':
                results['evaluation'][procs] = run_eval(
                    work, clip, procs, free_port())
                print(f'evaluation, {procs} process(es): '
                      f'{results["evaluation"][procs]}', flush=True)
            if args.only != 'evaluation':
                results['tagging'][procs] = run_tag(
                    work, ram, data_root, procs, free_port(),
                    args.tag_workers)
                print(f'tagging, {procs} process(es): '
                      f'{results["tagging"][procs]}', flush=True)
    names = [args.only] if args.only else ['evaluation', 'tagging']
    for name in names:
        runs = results[name]
        base = runs[args.procs[0]]['images_per_s']
        results[f'{name}_scaling'] = {
            p: round(r['images_per_s'] / base, 3)
            for p, r in runs.items()
        }
    print(json.dumps({f'{k}_scaling': results[f'{k}_scaling']
                      for k in names}))
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(results, f, indent=2)
            f.write('\n')
    return results


if __name__ == '__main__':
    main()
