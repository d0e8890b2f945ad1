# Copyright (c) mmprompt contributors. All rights reserved.
"""Benchmark: one CoOp training step (text side) on a full-size ViT-B/16
text tower, ours vs the reference loop of CoOp's code (full 77-token rows
for every class, no shared prefix), same weights, same context, same batch.

The image features (batch 32) are given: both compute them the same way
(without gradients), so the step measured is prompts -> text tower ->
logits -> cross-entropy -> backward -> SGD. Each method runs in its own
process; peak memory is the process's max RSS growth during the step.

Example:
    python benchmarks/prompt_learning.py --num-classes 100 --threads 1
"""
import argparse
import json
import resource
import subprocess
import sys
import time


def run(method: str, num_classes: int, threads: int) -> dict:
    import os.path as osp

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
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    loss = step()
    opt.zero_grad()
    loss.backward()
    opt.step()
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base
    return dict(method=method, num_classes=num_classes, seconds=seconds,
                peak_mib=peak / 1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--num-classes', type=int, default=100)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--method')
    args = parser.parse_args()
    if args.method:
        print(json.dumps(run(args.method, args.num_classes, args.threads)))
        return
    results = []
    for method in ('mmprompt', 'reference'):
        out = subprocess.run([
            sys.executable, __file__, '--method', method, '--num-classes',
            str(args.num_classes), '--threads',
            str(args.threads)
        ], capture_output=True, text=True, check=True).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
    ours, ref = results
    print(json.dumps(results, indent=1))
    print(f"speed-up {ref['seconds'] / ours['seconds']:.2f}x, memory "
          f"{ours['peak_mib'] / max(ref['peak_mib'], 1e-9):.3f} of the "
          'reference')


if __name__ == '__main__':
    main()
