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

``--mixed`` runs a mixed load for a fixed time instead: ``--clients``
concurrent clients (50), each sending one request after the other for
``--duration`` seconds, in turns closed-set tagging, small open-set
tagging, classification and two bad uploads (a text file named ``.png``
and a 100,000 x 100,000 PNG header); ``--large-clients`` more clients
(1) send open sets of ``--large-names`` (64) new names each. A valid
request counts as answered only if its answer is right (the closed-set
tags equal the warm-up's, open-set and classification answers hold
exactly the request's own categories); a bad upload only if it is refused
with the decoder's message. It reports answered / refused / errors, p50
and p99 latency per kind, the server's RSS after the warm-up, at the end
and its peak, and the load average (the machine may be shared); ``--out``
writes it all as JSON.

Example::

    python benchmarks/demo_load.py --requests 50
    nice -n 10 python benchmarks/demo_load.py --mixed --duration 90 \\
        --out benchmarks/results/demo_mixed_load.json
"""
import argparse
import importlib.util
import itertools
import json
import os
import os.path as osp
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import zlib
from typing import Any, Dict, List, Optional, Sequence, Tuple

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


def stop_demo(proc: subprocess.Popen) -> None:
    """Stop the demo server: SIGTERM, then SIGKILL after 15 s."""
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


def _request(client, kind: str, i: int, image: str):
    from gradio_client import handle_file
    if kind == 'tag':
        # Odd requests use an open set of their own: no state may leak.
        open_set = f'cat, dog, thing {i}' if i % 4 == 1 else ''
        return client.submit(
            handle_file(image), 0.5, True, open_set, api_name='/tag')
    return client.submit(
        *classify_args(image, f'cat, dog, car {i}, tree {i}', 4),
        api_name='/classify')


def classify_args(image: str, categories: str, topk: int) -> tuple:
    """The page's ``/classify`` inputs in order: the image, the categories,
    no descriptions, the ``simple`` templates, top-k and its six example
    slots left empty."""
    from gradio_client import handle_file
    return (handle_file(image), categories, '', 'simple', topk) + (None, ) * 6


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


# ---------------------------------------------------------------------------
# The mixed load (--mixed)
# ---------------------------------------------------------------------------

#: What each client sends, in turns (each client starts elsewhere).
MIXED_KINDS = ('tag', 'tag-open', 'classify', 'bad-upload', 'bomb-upload')
#: The message a bad upload must be refused with.
REFUSALS = {
    'bad-upload': 'not an image file',
    'bomb-upload': 'too large to decode'
}


def _png_header(path: str, width: int, height: int) -> str:
    """A PNG whose header claims ``width x height`` RGB pixels and whose
    image stream is empty: a few bytes that ask for gigabytes."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        body = tag + data
        return struct.pack('>I', len(data)) + body + struct.pack(
            '>I',
            zlib.crc32(body) & 0xffffffff)

    ihdr = struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0)
    with open(path, 'wb') as f:
        f.write(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr) +
                chunk(b'IDAT', zlib.compress(b'')) + chunk(b'IEND', b''))
    return path


def _bad_files(work_dir: str) -> Dict[str, str]:
    junk = osp.join(work_dir, 'junk.png')
    with open(junk, 'w') as f:
        f.write('this is not an image\n')
    bomb = _png_header(osp.join(work_dir, 'bomb.png'), 100000, 100000)
    return {'bad-upload': junk, 'bomb-upload': bomb}


def _large_names(i: int, n: int) -> List[str]:
    return [f'thing {i} {j}' for j in range(n)]


def _submit_mixed(client, kind: str, i: int, files: Dict[str, str],
                  large_names: int):
    from gradio_client import handle_file
    if kind == 'classify':
        return _request(client, 'classify', i, files['image'])
    open_set = {
        'tag': '',
        'tag-open': f'cat, dog, thing {i}',
        'tag-large': ', '.join(_large_names(i, large_names))
    }.get(kind, '')
    image = files.get(kind, files['image'])
    # The open set selects every category at threshold 0 (scores > 0).
    threshold = 0.5 if kind in ('tag', 'bad-upload', 'bomb-upload') else 0.0
    return client.submit(
        handle_file(image), threshold, True, open_set, api_name='/tag')


def _check_mixed(kind: str, i: int, result: Any, reference: Dict[str, Any],
                 large_names: int) -> Optional[str]:
    """None if ``result`` is the right answer to request ``i``."""
    if kind in REFUSALS:
        return 'a bad upload was answered'
    if kind == 'classify':
        return _check('classify', i, result)
    if kind == 'tag':
        return None if result[1] == reference['tag'] else \
            f'closed-set tags {result[1]!r}, alone {reference["tag"]!r}'
    want = {'cat', 'dog', f'thing {i}'} if kind == 'tag-open' else \
        set(_large_names(i, large_names))
    # The bars show the best 30; the table has every tag.
    names = {row[0] for row in result[3]['data']}
    return None if names == want else \
        f'open-set tags {sorted(names - want)[:5]} / missing ' \
        f'{sorted(want - names)[:5]}'


def _percentile(values: Sequence[float], q: float) -> Optional[float]:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, int(-(-q * len(ordered) // 100)))
    return round(ordered[rank - 1], 3)


class _RssMonitor(threading.Thread):
    """Samples the server's RSS twice a second; keeps the peak."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak = pid, rss_mb(pid)
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.5):
            self.peak = max(self.peak, rss_mb(self.pid))


def run_mixed(url: str, args: argparse.Namespace, files: Dict[str, str],
              reference: Dict[str, Any]) -> List[Tuple[str, str, float, str]]:
    """The mixed load; returns ``(kind, outcome, seconds, problem)`` per
    request, outcome ``'answered'``, ``'refused'`` or ``'error'``."""
    from gradio_client import Client
    total = args.clients + args.large_clients
    # Every HTTP call may take up to --timeout: gradio_client's default
    # read limit (5 s, for the upload and the queue join) would count a
    # busy machine as a failed request, which a browser does not.
    client = Client(
        url,
        verbose=False,
        max_workers=total,
        httpx_kwargs=dict(timeout=args.timeout))
    stop_at = time.monotonic() + args.duration
    ids = itertools.count()
    records, lock = [], threading.Lock()

    def serve(c: int) -> None:
        kinds = ['tag-large'] if c >= args.clients else MIXED_KINDS
        for j in itertools.count(c):
            if time.monotonic() >= stop_at:
                return
            kind, i = kinds[j % len(kinds)], next(ids)
            t0 = time.monotonic()
            try:
                result = _submit_mixed(
                    client, kind, i, files,
                    args.large_names).result(timeout=args.timeout)
                problem = _check_mixed(kind, i, result, reference,
                                       args.large_names)
                outcome = 'error' if problem else 'answered'
            except Exception as e:  # a refusal, or a failure
                want = REFUSALS.get(kind)
                problem = f'{type(e).__name__}: {e}'
                outcome = 'refused' if want and want in str(e) else 'error'
            with lock:
                records.append((kind, outcome, time.monotonic() - t0,
                                problem if outcome == 'error' else ''))

    threads = [
        threading.Thread(target=serve, args=(c, ), daemon=True)
        for c in range(total)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(args.duration + args.timeout + 30)
    client.close()
    return records


def summarise(records: Sequence[Tuple[str, str, float, str]]) -> dict:
    """Counts and latencies, per kind and over all requests."""

    def figures(rows):
        out = {
            k: sum(r[1] == k for r in rows)
            for k in ('answered', 'refused', 'error')
        }
        latencies = [r[2] for r in rows if r[1] != 'error']
        out.update(
            requests=len(rows),
            p50_s=_percentile(latencies, 50),
            p99_s=_percentile(latencies, 99),
            max_s=round(max(latencies), 3) if latencies else None)
        return out

    kinds = sorted({r[0] for r in records})
    return dict(
        total=figures(records),
        per_kind={
            k: figures([r for r in records if r[0] == k])
            for k in kinds
        })


def main_mixed(args: argparse.Namespace, models: Dict[str, str],
               work: str) -> int:
    """Run ``--mixed``; 0 only if nothing failed that was valid and every
    bad upload was refused."""
    import platform
    files = dict(_bad_files(work), image=args.image or models['image'])
    proc, url = start_demo(args, models, osp.join(work, 'demo.log'))
    try:
        # Warm up (builds both models); the closed-set answer alone is the
        # reference of every later one.
        from gradio_client import Client, handle_file
        client = Client(url, verbose=False)
        reference = dict(
            tag=client.predict(
                handle_file(files['image']), 0.5, True, '', api_name='/tag')
            [1])
        client.predict(
            *classify_args(files['image'], 'cat, dog', 2),
            api_name='/classify')
        client.close()
        rss_before = rss_mb(proc.pid)
        load_before = os.getloadavg()
        monitor = _RssMonitor(proc.pid)
        monitor.start()
        started = time.strftime('%Y-%m-%d %H:%M:%S')
        t0 = time.monotonic()
        records = run_mixed(url, args, files, reference)
        wall = time.monotonic() - t0
        monitor.stopped.set()
        rss_after = rss_mb(proc.pid)
        alive = proc.poll() is None
    finally:
        stop_demo(proc)
    figures = dict(
        benchmark='demo_mixed_load',
        machine=dict(
            cores=os.cpu_count(),
            processor=platform.machine(),
            python=platform.python_version()),
        models='given checkpoints' if args.clip_checkpoint
        or args.ram_checkpoint else 'tiny random-weight '
        '(tests/testing_utils/demo_models.py: CLIP 64 wide x 2 layers, '
        'the 20-tag tiny RAM of shared/ram/vectors)',
        clients=args.clients,
        large_clients=args.large_clients,
        large_names=args.large_names,
        duration_s=args.duration,
        wall_s=round(wall, 1),
        started=started,
        load_before=[round(v, 2) for v in load_before],
        load_after=[round(v, 2) for v in os.getloadavg()],
        rss_mb=dict(
            after_warm_up=round(rss_before, 1),
            after=round(rss_after, 1),
            peak=round(max(monitor.peak, rss_after), 1)),
        server_alive=alive,
        **summarise(records))
    errors = [f'{k}: {p}' for k, o, _, p in records if o == 'error']
    figures['errors_shown'] = errors[:20]
    total = figures['total']
    print_log(
        f'{total["requests"]} requests in {wall:.0f} s from '
        f'{args.clients}+{args.large_clients} clients: '
        f'{total["answered"]} answered, {total["refused"]} refused as '
        f'they should be, {total["error"]} errors; server RSS '
        f'{rss_before:.0f} -> {rss_after:.0f} MiB (peak '
        f'{figures["rss_mb"]["peak"]:.0f}); load '
        f'{load_before[0]:.1f} -> {figures["load_after"][0]:.1f}',
        logger='current')
    for kind, f in figures['per_kind'].items():
        print_log(
            f'  {kind:<12} {f["requests"]:5d} sent  {f["answered"]:5d} '
            f'answered  {f["refused"]:5d} refused  {f["error"]:3d} errors  '
            f'p50 {f["p50_s"]} s  p99 {f["p99_s"]} s',
            logger='current')
    for e in errors[:10]:
        print_log(f'  {e}', logger='current', level=40)
    if args.out:
        from mmprompt.utils.io import atomic_write
        with atomic_write(args.out, 'w') as f:
            json.dump(figures, f, indent=2)
    return 0 if not errors and alive else 1


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
        '--mixed',
        action='store_true',
        help='a mixed load for --duration seconds instead of rounds')
    parser.add_argument('--clients', type=int, default=50)
    parser.add_argument('--duration', type=float, default=90)
    parser.add_argument(
        '--large-clients',
        type=int,
        default=1,
        help='--mixed: clients sending large open sets (default: '
        '%(default)s)')
    parser.add_argument('--large-names', type=int, default=64)
    parser.add_argument('--out', help='--mixed: write the figures as JSON')
    parser.add_argument(
        '--force', action='store_true', help='replace an existing --out')
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
    if args.out:
        from mmprompt.utils.io import check_output
        check_output(args.out, args.force)
    with tempfile.TemporaryDirectory(prefix='demo_load_') as work:
        given = any((args.clip_checkpoint, args.ram_checkpoint))
        models = dict(
            clip_config=args.clip_config,
            clip_checkpoint=args.clip_checkpoint,
            ram_config=args.ram_config,
            ram_checkpoint=args.ram_checkpoint,
            ram_text_checkpoint=args.ram_text_checkpoint,
            image=args.image) if given else _tiny_models(work)
        if args.mixed:
            return main_mixed(args, models, work)
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
            stop_demo(proc)
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
    from mmprompt.utils.errors import run_tool
    run_tool(lambda argv: sys.exit(main(argv)))
