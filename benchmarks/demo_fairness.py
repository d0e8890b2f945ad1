# Copyright (c) mmprompt contributors. All rights reserved.
"""How long a small tagging request waits behind a large open set.

The demo's backend (``demo/demo_backend.py``) on the tiny random-weight
models of ``tests/testing_utils/demo_models.py``: a request of
``--names`` new open-set names starts; ``--delay`` seconds later a
closed-set request is sent. Measured: the small request's latency and the
large one's, with the open set embedded by the category encoder in chunks
of ``--step`` names (the demo's default, 32) and in one piece (``--step``
>= ``--names``). Requests run side by side, each with its own vocabulary
(the backend keeps no state per request). The two settings alternate
``--repeats`` times on the same machine; medians are reported, with the
load average.

Example::

    nice -n 10 python benchmarks/demo_fairness.py --out fairness.json
"""
import argparse
import importlib.util
import json
import os
import os.path as osp
import statistics
import sys
import tempfile
import threading
import time
from typing import Dict, List, Optional, Sequence

from mmengine.logging import print_log

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.join(REPO, 'demo'))


def _load(path: str, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def probe(backend, image, names: List[str], delay: float) -> Dict[str, float]:
    """Latencies of a large open-set request and of a closed-set request
    sent ``delay`` s after it."""
    out = {}

    def large():
        t0 = time.monotonic()
        backend.tag(image, 0.5, names)
        out['large_s'] = time.monotonic() - t0

    thread = threading.Thread(target=large)
    thread.start()
    time.sleep(delay)
    t0 = time.monotonic()
    backend.tag(image, None, None)
    out['small_s'] = time.monotonic() - t0
    thread.join()
    return out


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--names', type=int, default=128)
    parser.add_argument('--step', type=int, default=32)
    parser.add_argument('--delay', type=float, default=1.0)
    parser.add_argument('--repeats', type=int, default=2)
    parser.add_argument('--out', help='write the figures as JSON')
    parser.add_argument('--force', action='store_true')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    args = parse_args(argv)
    from mmprompt.utils.io import check_output
    if args.out:
        check_output(args.out, args.force)
    tiny = _load(
        osp.join(REPO, 'tests', 'testing_utils', 'demo_models.py'),
        'demo_models')
    with tempfile.TemporaryDirectory(prefix='demo_fairness_') as work:
        return _measure(args, tiny, work)


def _measure(args: argparse.Namespace, tiny, work: str) -> dict:
    from mmprompt.utils.io import atomic_write
    from demo_backend import MMPromptBackend, load_image
    clip = tiny.make_tiny_clip(work)
    ram = tiny.make_tiny_ram(work, clip['checkpoint'])
    image = load_image(
        osp.join(tiny.RAM_VECTORS, 'images', 'img0_rgb_320x240.png'))
    backend = MMPromptBackend(clip['config'], clip['checkpoint'],
                              ram['config'], ram['checkpoint'],
                              clip['checkpoint'])
    alone = time.monotonic()
    backend.tag(image, None, None)  # builds the model
    t0 = time.monotonic()
    backend.tag(image, None, None)
    small_alone = time.monotonic() - t0
    settings = {'in steps': args.step, 'one step': args.names}
    runs: Dict[str, List[dict]] = {k: [] for k in settings}
    load_before = os.getloadavg()
    run = 0
    for _ in range(args.repeats):
        for label, step in settings.items():
            encoder = backend._tagger.get().model.category_encoder
            encoder.chunk_size = step
            names = [f'item {run} {j}' for j in range(args.names)]  # new
            runs[label].append(probe(backend, image, names, args.delay))
            run += 1
    figures = dict(
        benchmark='demo_fairness',
        models='tiny random-weight (tests/testing_utils/demo_models.py)',
        names=args.names,
        step=args.step,
        delay_s=args.delay,
        repeats=args.repeats,
        small_alone_s=round(small_alone, 3),
        build_s=round(t0 - alone, 1),
        load_before=[round(v, 2) for v in load_before],
        load_after=[round(v, 2) for v in os.getloadavg()],
        runs=runs)
    for label, rows in runs.items():
        figures[label] = {
            key: round(statistics.median(r[key] for r in rows), 2)
            for key in ('small_s', 'large_s')
        }
        print_log(
            f'{label:<9} (step {settings[label]}): small request '
            f'{figures[label]["small_s"]} s, large ({args.names} names) '
            f'{figures[label]["large_s"]} s (medians of {args.repeats})',
            logger='current')
    print_log(
        f'small request alone: {small_alone:.2f} s; load '
        f'{load_before[0]:.1f} -> {figures["load_after"][0]:.1f}',
        logger='current')
    if args.out:
        with atomic_write(args.out, 'w') as f:
            json.dump(figures, f, indent=2)
    return figures


if __name__ == '__main__':
    from mmprompt.utils.errors import run_tool
    run_tool(main)
