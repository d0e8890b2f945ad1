# Copyright (c) mmprompt contributors. All rights reserved.
"""Load check of the Gradio demo: concurrent requests through gradio_client.

Starts ``demo/gradio_demo.py`` on a free loopback port (tiny random-weight
models by default, or the checkpoints given), fires ``--requests``
concurrent requests at it (tagging and classification alternating, each
with its own category list), then a second round, and reports:

- answered / failed requests (a failure prints its message), latencies;
- the server's resident memory (RSS) after a warm-up request, after round
  one and after round two. Growth from round one to round two is the leak
  signal: the first round may still grow allocator pools.

Everything is bounded: each round has a deadline, the server is killed at
the end. Exit status 0 only if every request was answered without error
and RSS stayed within ``--max-growth-mb``.

Example::

    python benchmarks/demo_load.py --requests 50
"""
import argparse
import importlib.util
import os
import os.path as osp
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Dict, List, Optional, Sequence, Tuple

from mmengine.logging import print_log

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def _tiny_models(work_dir: str) -> Dict[str, str]:
    """Convert the tiny random-weight models of the demo tests."""
    path = osp.join(REPO, 'tests', 'testing_utils', 'demo_models.py')
    spec = importlib.util.spec_from_file_location('demo_models', path)
    tiny = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tiny)
    clip = tiny.make_tiny_clip(work_dir)
    ram = tiny.make_tiny_ram(work_dir, clip['checkpoint'])
    image = osp.join(tiny.RAM_VECTORS, 'images', 'img0_rgb_320x240.png')
    return dict(
        clip_config=clip['config'],
        clip_checkpoint=clip['checkpoint'],
        ram_config=ram['config'],
        ram_checkpoint=ram['checkpoint'],
        ram_text_checkpoint=clip['checkpoint'],
        image=image)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children, in MiB (Linux)."""
    total = 0
    pids = [pid]
    children = f'/proc/{pid}/task/{pid}/children'
    if osp.exists(children):
        with open(children) as f:
            pids += [int(p) for p in f.read().split()]
    for p in pids:
        try:
            with open(f'/proc/{p}/status') as f:
                for line in f:
                    if line.startswith('VmRSS:'):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def start_demo(args: argparse.Namespace, models: Dict[str, str],
               log_path: str) -> Tuple[subprocess.Popen, str]:
    """Start the demo on a free loopback port; wait until it serves."""
    port = _free_port()
    cmd = [
        sys.executable,
        osp.join(REPO, 'demo', 'gradio_demo.py'), '--server-name', '127.0.0.1',
        '--port',
        str(port), '--queue-size',
        str(args.queue_size)
    ]
    for key in ('clip_config', 'clip_checkpoint', 'ram_config',
                'ram_checkpoint', 'ram_text_checkpoint'):
        if models.get(key):
            cmd += ['--' + key.replace('_', '-'), models[key]]
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED='0')
    with open(log_path, 'w') as log:
        proc = subprocess.Popen(
            cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f'http://127.0.0.1:{port}/'
    deadline = time.monotonic() + args.start_timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    with open(log_path, errors='replace') as f:
        raise RuntimeError(f'the demo did not start; log:\n{f.read()[-2000:]}')


def _request(client, kind: str, i: int, image: str):
    from gradio_client import handle_file
    if kind == 'tag':
        # Odd requests use an open set of their own: no state may leak.
        open_set = f'cat, dog, thing {i}' if i % 4 == 1 else ''
        return client.submit(
            handle_file(image), 0.5, True, open_set, api_name='/tag')
    categories = f'cat, dog, car {i}, tree {i}'
    return client.submit(
        handle_file(image),
        categories,
        '',
        'simple',
        4,
        None,
        None,
        None,
        None,
        None,
        None,
        api_name='/classify')


def _check(kind: str, i: int, result) -> Optional[str]:
    """None if the answer belongs to request ``i``, else what is wrong."""
    if kind == 'classify':
        names = {c['label'] for c in result.get('confidences', [])}
        want = {'cat', 'dog', f'car {i}', f'tree {i}'}
        return None if names == want else f'got {sorted(names)}'
    if i % 4 == 1:
        names = {c['label'] for c in result[0].get('confidences', [])}
        extra = names - {'cat', 'dog', f'thing {i}'}
        return f'open-set tags from elsewhere: {sorted(extra)}' \
            if extra else None
    return None


def run_round(url: str, n: int, image: str, kinds: Sequence[str],
              timeout: float) -> Tuple[int, List[str], List[float]]:
    """``n`` concurrent requests; returns answered, errors, latencies."""
    from gradio_client import Client
    client = Client(url, verbose=False, max_workers=n)
    start = time.monotonic()
    jobs = []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        jobs.append((kind, i, _request(client, kind, i, image)))
    answered, errors, latencies = 0, [], []
    deadline = start + timeout
    for kind, i, job in jobs:
        try:
            result = job.result(timeout=max(0.1, deadline - time.monotonic()))
        except Exception as e:
            errors.append(f'{kind} #{i}: {type(e).__name__}: {e}')
            continue
        latencies.append(time.monotonic() - start)
        problem = _check(kind, i, result)
        if problem:
            errors.append(f'{kind} #{i}: {problem}')
        else:
            answered += 1
    client.close()
    return answered, errors, latencies


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--requests', type=int, default=50)
    parser.add_argument('--rounds', type=int, default=2)
    parser.add_argument(
        '--kinds',
        default='tag,classify',
        help='endpoints to alternate (default: %(default)s)')
    parser.add_argument('--image', help='image to send (default: shared)')
    parser.add_argument('--clip-config')
    parser.add_argument('--clip-checkpoint')
    parser.add_argument('--ram-config')
    parser.add_argument('--ram-checkpoint')
    parser.add_argument('--ram-text-checkpoint')
    parser.add_argument(
        '--queue-size',
        type=int,
        default=64,
        help='the demo\'s queue bound (default: %(default)s)')
    parser.add_argument(
        '--timeout',
        type=float,
        default=240,
        help='seconds per round (default: %(default)s)')
    parser.add_argument('--start-timeout', type=float, default=120)
    parser.add_argument(
        '--max-growth-mb',
        type=float,
        default=64,
        help='allowed RSS growth from round 1 to the last (default: '
        '%(default)s)')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    kinds = [k.strip() for k in args.kinds.split(',') if k.strip()]
    with tempfile.TemporaryDirectory(prefix='demo_load_') as work:
        given = any((args.clip_checkpoint, args.ram_checkpoint))
        models = dict(
            clip_config=args.clip_config,
            clip_checkpoint=args.clip_checkpoint,
            ram_config=args.ram_config,
            ram_checkpoint=args.ram_checkpoint,
            ram_text_checkpoint=args.ram_text_checkpoint,
            image=args.image) if given else _tiny_models(work)
        image = args.image or models['image']
        log_path = osp.join(work, 'demo.log')
        proc, url = start_demo(args, models, log_path)
        try:
            # Warm up: load the models once, then measure.
            run_round(url, len(kinds), image, kinds, args.timeout)
            rss = [rss_mb(proc.pid)]
            failures = []
            for r in range(args.rounds):
                t0 = time.monotonic()
                ok, errors, lat = run_round(url, args.requests, image, kinds,
                                            args.timeout)
                wall = time.monotonic() - t0
                rss.append(rss_mb(proc.pid))
                p50 = statistics.median(lat) if lat else float('nan')
                p95 = sorted(lat)[int(0.95 * (len(lat) - 1))] if lat else \
                    float('nan')
                print_log(
                    f'round {r + 1}: {ok}/{args.requests} answered, '
                    f'{len(errors)} errors, wall {wall:.1f}s, latency '
                    f'p50 {p50:.2f}s p95 {p95:.2f}s, server RSS '
                    f'{rss[-1]:.0f} MiB',
                    logger='current')
                for e in errors[:10]:
                    print_log(f'  {e}', logger='current', level=40)
                failures += errors
                if ok + len(errors) < args.requests:
                    failures.append(f'round {r + 1}: unanswered requests')
            alive = proc.poll() is None
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        growth = rss[-1] - rss[1] if len(rss) > 2 else 0.0
        print_log(
            'server RSS (MiB): ' + ' -> '.join(f'{v:.0f}' for v in rss) +
            f' (warm-up, after each round); growth after round 1: '
            f'{growth:+.1f} MiB',
            logger='current')
        if not alive:
            failures.append('the server died')
        if growth > args.max_growth_mb:
            failures.append(f'RSS grew by {growth:.0f} MiB')
        if failures:
            print_log(
                f'FAILED: {len(failures)} problems',
                logger='current',
                level=40)
            return 1
        print_log('OK: every request answered, memory flat', logger='current')
        return 0


if __name__ == '__main__':
    sys.exit(main())
