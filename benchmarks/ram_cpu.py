# Copyright (c) mmprompt contributors. All rights reserved.
"""Benchmark: RAM tagging on the CPU, mmprompt vs MMPreTrain 1.2.0.

Both models get the same random full-size weights (Swin-L/384, 4585 tags):
a random checkpoint in the original ``recognize-anything`` layout is made
from the key list ``shared/ram/ram_swin_l_keys.tsv``, converted by
mmprompt's converter for :class:`mmprompt.models.ram.RAMNormal`, and mapped
by name into MMPreTrain's ``RAMNormal`` (its Swin is the same MMPreTrain
``SwinTransformer``, so it takes mmprompt's converted Swin keys; its BERT
tagging head keeps the original names). The two must give the same logits
before anything is timed. Both get the same preprocessed tensor and time
``predict`` only: batch-1 latency and batch-8 throughput, runs interleaved,
medians reported.

MMPreTrain's RAM registers only with ``transformers`` 4.x and
``pycocotools`` installed, builds a Hugging Face ``BertTokenizer`` (given
here offline from a small vocabulary written by this script; tagging does not
use it) and reads pickled tag lists and thresholds from its package folder
(redirected here to files written from ``shared/ram/data``). Run it in a
separate environment that has them, not mmprompt's::

    /work/venv-bench/bin/python benchmarks/ram_cpu.py --threads 1
"""
import argparse
import copy
import json
import os
import os.path as osp
import pickle
import statistics
import tempfile
import time
from typing import Callable, Dict, List, Optional

import torch
from mmengine.logging import print_log

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SHARED = os.environ.get('MMPROMPT_SHARED',
                        osp.join(osp.dirname(REPO_ROOT), 'shared'))


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--threads', type=int, default=1, help='torch threads (default 1)')
    parser.add_argument(
        '--latency-runs', type=int, default=3, help='batch-1 runs per model')
    parser.add_argument(
        '--throughput-runs',
        type=int,
        default=2,
        help='batch-8 runs per model')
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument(
        '--window-msa',
        action='store_true',
        help="also time mmprompt with MMPreTrain's own WindowMSA in the Swin "
        '(fast_attention=False) instead of SDPA')
    parser.add_argument(
        '--compile',
        action='store_true',
        help='also time mmprompt after mmprompt.models.utils.compile_model '
        '(inductor, frozen weights; fp32, checked against eager to 1e-5)')
    parser.add_argument(
        '--bf16',
        action='store_true',
        help='also time both in bf16: mmprompt with apply_precision (towers '
        'cast once), MMPreTrain under torch.autocast; count flipped tags')
    parser.add_argument('--out', help='write the figures to this JSON file')
    return parser.parse_args(argv)


def random_original_state(tsv: str, seed: int = 0) -> Dict[str, torch.Tensor]:
    """Random tensors for every tagging key of RAM's original layout.

    Weights ~ N(0, 1/fan_in), biases ~ N(0, 0.05), norm weights around 1,
    relative position tables ~ N(0, 0.5), unit label embeddings. The
    buffers that the reference loader deletes (``relative_position_index``,
    ``attn_mask``) are left out, as in a released checkpoint.
    """
    g = torch.Generator().manual_seed(seed)
    state = {}
    with open(tsv) as f:
        rows = [line.rstrip('\n').split('\t') for line in f][1:]
    for key, shape, _, kind, _, tagging, _ in rows:
        if tagging != 'yes' or kind != 'param':
            continue
        shape = [] if shape == 'scalar' else [int(s) for s in shape.split('x')]
        t = torch.randn(shape, generator=g)
        if key == 'label_embed':
            t = t / t.norm(dim=-1, keepdim=True)
        elif 'relative_position_bias_table' in key:
            t = 0.5 * t
        elif len(shape) == 1 and key.endswith('weight') and ('norm'
                                                             in key.lower()):
            t = 1 + 0.1 * t
        elif len(shape) == 1:
            t = 0.05 * t
        else:
            t = t / (t[0].numel()**0.5)
        state[key] = t
    return state


def read_lines(path: str) -> List[str]:
    with open(path, encoding='utf-8') as f:
        return f.read().splitlines()


def build_mmprompt(original: dict, data: str):
    from mmengine.config import Config

    from mmprompt.converters import convert_ram
    from mmprompt.registry import MODELS
    from mmprompt.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    tags = read_lines(osp.join(data, 'ram_tag_list.txt'))
    thresholds = [
        float(x)
        for x in read_lines(osp.join(data, 'ram_tag_list_threshold.txt'))
    ]
    converted, meta = convert_ram(original, tags, None, thresholds)
    cfg = Config.fromfile(
        osp.join(REPO_ROOT, 'configs', 'ram',
                 'ram_swin-large-p4-w12_384px_normal.py'))
    model = MODELS.build(cfg.model)
    model.load_state_dict(converted, strict=True)
    model.set_tags_from_meta(meta)
    return model.eval(), converted


def build_mmpretrain(original: dict, converted: dict, data: str, tmp: str):
    """MMPreTrain 1.2.0's RAMNormal, offline, with the same weights."""
    import mmpretrain.models.multimodal.ram.ram as mmpretrain_ram
    from mmpretrain.models.multimodal.ram.config.ram_swin_large_14m import \
        get_ram_cfg
    from mmpretrain.registry import MODELS
    from mmpretrain.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    # Its tag lists and thresholds are pickles looked up in its package
    # folder (./data/...); give it ours.
    files = {
        'ram_tag_list.pickle':
        read_lines(osp.join(data, 'ram_tag_list.txt')),
        'ram_tag_list_chinese.pickle':
        read_lines(osp.join(data, 'ram_tag_list_chinese.txt')),
        'ram_tag_list_threshold.pickle': [
            float(x)
            for x in read_lines(osp.join(data, 'ram_tag_list_threshold.txt'))
        ],
    }
    for name, value in files.items():
        with open(osp.join(tmp, name), 'wb') as f:
            pickle.dump(value, f)
    mmpretrain_ram.get_path = lambda path: osp.join(tmp, osp.basename(path))
    # An offline BERT tokenizer: a few words are enough, tagging never
    # tokenizes.
    vocab = osp.join(tmp, 'bert')
    os.makedirs(vocab, exist_ok=True)
    with open(osp.join(vocab, 'vocab.txt'), 'w') as f:
        f.write('\n'.join([
            '[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', 'a', 'picture', 'of'
        ]) + '\n')
    cfg = get_ram_cfg('normal')
    cfg['tokenizer'] = dict(type='BertTokenizer', name_or_path=vocab)
    model = MODELS.build(cfg)
    state = {
        k: v
        for k, v in original.items() if not k.startswith('visual_encoder.')
    }
    state.update({
        k: v
        for k, v in converted.items() if k.startswith('visual_encoder.')
    })
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected, unexpected[:5]
    # Only the captioning towers (unused by tagging) and buffers stay.
    bad = [
        k for k in missing
        if not k.startswith(('tag_encoder.', 'text_decoder.'))
        and not k.endswith(('relative_position_index', 'attn_mask'))
    ]
    assert not bad, bad[:5]
    return model.eval()


def timeit(fns: Dict[str, Callable], runs: int) -> Dict[str, List[float]]:
    """One warm-up each, then ``runs`` timed calls, interleaved."""
    times: Dict[str, List[float]] = {name: [] for name in fns}
    for fn in fns.values():
        fn()
    for _ in range(runs):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    from mmpretrain.structures import DataSample
    data = osp.join(SHARED, 'ram', 'data')
    original = random_original_state(
        osp.join(SHARED, 'ram', 'ram_swin_l_keys.tsv'))
    with tempfile.TemporaryDirectory() as tmp:
        ours, converted = build_mmprompt(original, data)
        theirs = build_mmpretrain(original, converted, data, tmp)
    del original, converted
    g = torch.Generator().manual_seed(1)
    images = torch.randn(args.batch_size, 3, 384, 384, generator=g)

    with torch.no_grad():
        ours_logits = ours.compute_logits(images[:2])
        embeds, atts = theirs.extract_visual_feature(images[:2])
        theirs_logits = theirs.image2tag(theirs.get_label_embed(), embeds,
                                         atts)
    diff = (ours_logits - theirs_logits).abs().max().item()
    same_tags = bool(
        torch.equal(
            ours.select_tags(ours_logits.sigmoid()),
            theirs_logits.sigmoid() > theirs.class_threshold))
    print_log(
        f'max |logit diff| = {diff:.2e}, same tags: {same_tags}',
        logger='current')
    assert diff < 1e-3, diff

    def run_ours(x):
        return lambda: ours.predict(x)

    def run_theirs(x):
        return lambda: theirs.predict(x, DataSample())

    models = dict(mmprompt=run_ours, mmpretrain=run_theirs)
    if args.window_msa:
        from mmpretrain.models.utils.attention import WindowMSA

        from mmprompt.models.utils import SDPAWindowMSA
        plain = copy.deepcopy(ours)
        for module in plain.modules():
            if isinstance(module, SDPAWindowMSA):
                module.__class__ = WindowMSA
        models['mmprompt_wmsa'] = lambda x: (lambda: plain.predict(x))
    if args.compile:
        from mmprompt.models.utils import compile_model
        compiled = compile_model(copy.deepcopy(ours))
        with torch.no_grad():
            diff = (compiled.compute_logits(images) -
                    ours.compute_logits(images)).abs().max().item()
        print_log(f'compiled: max |logit diff| = {diff:.2e}', logger='current')
        assert diff < 1e-5, diff
        models['mmprompt_compiled'] = lambda x: (lambda: compiled.predict(x))
    flips = {}
    if args.bf16:
        from mmprompt.models.utils import apply_precision
        half = apply_precision(copy.deepcopy(ours), 'bf16')
        models['mmprompt_bf16'] = lambda x: (lambda: half.predict(x))

        def theirs_bf16(x):

            def run():
                # Its predict, with the network under autocast (its numpy
                # post-processing takes no bf16).
                with torch.autocast('cpu', dtype=torch.bfloat16):
                    embeds, atts = theirs.extract_visual_feature(x)
                    logits = theirs.image2tag(theirs.get_label_embed(), embeds,
                                              atts)
                return theirs.tag_process(logits.float())

            return run

        models['mmpretrain_bf16'] = theirs_bf16
        with torch.no_grad():
            ref = ours.select_tags(ours.compute_logits(images).sigmoid())
            got = half.select_tags(half.compute_logits(images).sigmoid())
            flips['mmprompt_bf16'] = int((ref != got).sum())
            with torch.autocast('cpu', dtype=torch.bfloat16):
                embeds, atts = theirs.extract_visual_feature(images)
                logits = theirs.image2tag(theirs.get_label_embed(), embeds,
                                          atts)
            got = logits.float().sigmoid() > theirs.class_threshold
            flips['mmpretrain_bf16'] = int((ref != got).sum())
        print_log(
            f'tags flipped by bf16 against fp32 on {images.size(0)} random '
            f'images x 4585 tags: {flips}',
            logger='current')
    result = dict(
        threads=args.threads,
        bf16_flipped_tags=flips,
        max_logit_diff=diff,
        same_tags=same_tags,
        torch=torch.__version__)
    with torch.no_grad():
        for label, x, runs in [('batch1', images[:1], args.latency_runs),
                               (f'batch{args.batch_size}', images,
                                args.throughput_runs)]:
            times = timeit({k: f(x) for k, f in models.items()}, runs)
            med = {k: statistics.median(v) for k, v in times.items()}
            result[label] = dict(
                seconds=med,
                images_per_s={
                    k: x.size(0) / v
                    for k, v in med.items()
                },
                speedup={
                    k: med['mmpretrain'] / v
                    for k, v in med.items() if k != 'mmpretrain'
                },
                runs=times)
            lines = [f'{label} ({runs} runs, median):']
            for k, v in med.items():
                lines.append(f'  {k:<14} {v:8.3f} s  '
                             f'{x.size(0) / v:6.3f} img/s  '
                             f'x{med["mmpretrain"] / v:.2f} vs mmpretrain')
            print_log('\n'.join(lines), logger='current')
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == '__main__':
    main()
