# Copyright (c) mmprompt contributors. All rights reserved.
"""Benchmark: one CoOp training step (text side) on a full-size ViT-B/16
text tower, ours vs the reference loop of CoOp's code (full 77-token rows
for every class, no shared prefix), same weights, same context, same batch.

The image features (batch 32) are given: both compute them the same way
(without gradients), so the step measured is prompts -> text tower ->
logits -> cross-entropy -> backward -> SGD. Each method runs in a fresh
process of its own. Peak memory is that of the step alone: the kernel's
high-water mark of the resident set is reset just before it
(``/proc/self/clear_refs``), and the peak is the mark after the step minus
the resident set before it. ``--mem-limit-gb`` caps each process's address
space (``RLIMIT_AS``), so a side that does not fit fails with an
allocation error instead of waking the machine's OOM killer.

Example:
    python benchmarks/prompt_learning.py --num-classes 100 --threads 1
    python benchmarks/prompt_learning.py --num-classes 1000 --mem-limit-gb 12
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

GIB = 1024**3


def memory_kib(field: str) -> int:
    """A ``Vm*`` line of ``/proc/self/status``, in KiB."""
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise KeyError(field)


def reset_peak() -> None:
    """Set the resident high-water mark (VmHWM) to the current RSS."""
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')


def run(method: str, num_classes: int, threads: int,
        mem_limit_gb: float = 0) -> dict:
    import os.path as osp
    if mem_limit_gb:
        limit = int(mem_limit_gb * GIB)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    import torch
    import torch.nn.functional as F
    root = osp.dirname(osp.dirname(osp.abspath(__file__)))
    sys.path[:0] = [root, osp.join(root, 'tests')]
    from test_models.test_prompt_learning import (RefPromptLearner,
                                                  RefTextEncoder, clip_cfg,
                                                  ref_logits)

    from mmprompt.converters import convert_openai_clip
    from mmprompt.models.prompt_learning import CoOp
    from mmprompt.registry import MODELS
    from mmprompt.utils import register_all_modules
    import open_clip
    torch.set_num_threads(threads)
    register_all_modules()
    torch.manual_seed(0)
    ref = open_clip.create_model('ViT-B-16-quickgelu').eval()
    ref.requires_grad_(False)
    names = [f'class number {i}' for i in range(num_classes)]
    feats = F.normalize(torch.randn(32, 512), dim=-1)
    labels = torch.randint(0, num_classes, (32, ))
    if method == 'mmprompt':
        clip = MODELS.build(clip_cfg())
        clip.load_state_dict(convert_openai_clip(ref.state_dict())[0])
        del ref
        model = CoOp(clip, categories=names, n_ctx=16).train()
        params = list(model.prompt_learner.parameters())
        step = lambda: F.cross_entropy(model.compute_logits(feats), labels)  # noqa
    else:
        learner = RefPromptLearner(names, ref,
                                   torch.randn(16, 512) * 0.02, 16, None,
                                   'end')
        text = RefTextEncoder(ref)
        params = list(learner.parameters())
        step = lambda: F.cross_entropy(  # noqa
            ref_logits(ref, text, learner, feats), labels)
    opt = torch.optim.SGD(params, lr=0.002, momentum=0.9)
    result = dict(method=method, num_classes=num_classes, threads=threads,
                  mem_limit_gb=mem_limit_gb or None)
    reset_peak()
    before = memory_kib('VmRSS')
    start, cpu = time.perf_counter(), time.process_time()
    try:
        loss = step()
        opt.zero_grad()
        loss.backward()
        opt.step()
    except (MemoryError, RuntimeError) as e:  # RLIMIT_AS reached
        result.update(fits=False, error=str(e).splitlines()[0][:200])
    else:
        result['fits'] = True
    result.update(
        seconds=time.perf_counter() - start,
        cpu_seconds=time.process_time() - cpu,
        peak_mib=(memory_kib('VmHWM') - before) / 1024,
        rss_before_mib=before / 1024)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--num-classes', type=int, default=100)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument(
        '--mem-limit-gb',
        type=float,
        default=0,
        help='cap the address space of each process (0: no cap)')
    parser.add_argument(
        '--methods',
        nargs='+',
        default=['mmprompt', 'reference'],
        choices=['mmprompt', 'reference'])
    parser.add_argument('--method', help=argparse.SUPPRESS)
    parser.add_argument('--out', help='write the results to this JSON file')
    args = parser.parse_args()
    if args.method:
        print(
            json.dumps(
                run(args.method, args.num_classes, args.threads,
                    args.mem_limit_gb)))
        return
    results = {}
    load_before = os.getloadavg()
    for method in args.methods:
        out = subprocess.run([
            sys.executable, __file__, '--method', method, '--num-classes',
            str(args.num_classes), '--threads',
            str(args.threads), '--mem-limit-gb',
            str(args.mem_limit_gb)
        ],
                             capture_output=True,
                             text=True,
                             check=True).stdout
        results[method] = json.loads(out.strip().splitlines()[-1])
    summary = dict(
        results=results, load_before=load_before, load_after=os.getloadavg())
    print(json.dumps(summary, indent=1))
    if len(results) == 2 and all(r['fits'] for r in results.values()):
        ours, ref = results['mmprompt'], results['reference']
        print(f"speed-up {ref['seconds'] / ours['seconds']:.2f}x wall, "
              f"{ref['cpu_seconds'] / ours['cpu_seconds']:.2f}x CPU; "
              f"peak memory {ours['peak_mib']:.0f} vs {ref['peak_mib']:.0f} "
              f"MiB ({ours['peak_mib'] / ref['peak_mib']:.3f} of the "
              'reference)')
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(summary, f, indent=1)


if __name__ == '__main__':
    main()
