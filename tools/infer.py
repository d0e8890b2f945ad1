# Copyright (c) mmprompt contributors. All rights reserved.
"""Bulk inference: tag, classify or embed a whole collection of images.

Examples:
    # RAM's tags of a photo tree, 8 processes of one machine.
    torchrun --nproc_per_node 8 tools/infer.py tag photos/ \
        --model ram_swin-large-p4-w12_384px_normal --out tags.jsonl \
        --launcher pytorch
    # Open-set tags of WebDataset shards.
    python tools/infer.py tag shards/*.tar --categories my_tags.txt \
        --model ram-plus_swin-large-p4-w12_384px_openset --out tags.jsonl
    # Zero-shot classes, or CLIP image features (.npy + index).
    python tools/infer.py classify list.txt --model clip_vit-base-p16 \
        --categories imagenet --out classes.jsonl
    python tools/infer.py embed photos/ --model clip_vit-base-p16 \
        --out feats.npy

Inputs are folders (searched at any depth), ``.txt`` lists (a path a
line) and uncompressed ``.tar`` shards in WebDataset layout, see
:mod:`mmprompt.datasets.image_sources`. The output is one file in input
order: JSON lines (``tag``: ``image``, ``tags``, ``tags_chinese``,
``scores``, ``labels``; ``classify``: ``image``, ``classes``, ``scores``,
``labels``) or, for ``embed``, an ``(N, D)`` float32 ``.npy`` of
L2-normalised features and ``<stem>.index.jsonl`` (``image``, ``row``).
Unreadable images go to ``<stem>.failed.jsonl`` with the reason. Work is
saved in chunks under ``<out>.parts/`` (see :mod:`mmprompt.apis.bulk`);
``--resume`` continues an interrupted run, with any number of processes, if
nothing that decides the answers changed.
"""
import argparse
import os
import time
from typing import TYPE_CHECKING, Any, Callable, List, Optional, Sequence

from mmprompt.utils.errors import UserError, run_tool
from mmprompt.utils.io import check_output
from mmprompt.utils.options import LAUNCHERS

if TYPE_CHECKING:
    from mmprompt.apis import bulk

# torch, MMEngine and the models are imported where they are used: --help
# and the argument errors come at once.

TASKS = ('tag', 'classify', 'embed')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Tag, classify or embed a collection of images.')
    parser.add_argument('task', choices=TASKS)
    parser.add_argument(
        'inputs',
        nargs='+',
        help='image folders, .txt lists of image paths, .tar shards '
        '(WebDataset layout) and image files')
    parser.add_argument(
        '--model',
        required=True,
        help='a zoo name (see mmprompt.apis.list_models()), a mmprompt:: '
        'config name or a config file')
    parser.add_argument(
        '--checkpoint',
        help="weights (default: the zoo's official weights, or the "
        "config's load_from)")
    parser.add_argument(
        '--text-checkpoint',
        help='tag, open set: a converted CLIP ViT-B/16 checkpoint whose text '
        "tower embeds the categories (default: the zoo's, downloaded once)")
    parser.add_argument('--out', required=True, help='.jsonl, or .npy for '
                        'embed')
    parser.add_argument(
        '--categories',
        nargs='+',
        help='tag: open-set categories (an open-set config); classify: '
        'names, a built-in set (imagenet, cifar100) or a .txt file')
    parser.add_argument('--templates', help='prompt templates (a set name)')
    parser.add_argument(
        '--learned',
        help='classify: a learned-prompt file of tools/train.py (CoOp, '
        'CoCoOp); --model is its prompt-learning config, or the CLIP it '
        'was learned on (a zoo name or a zero-shot config)')
    parser.add_argument(
        '--allow-other-clip-weights',
        action='store_true',
        help='use a --learned file over other CLIP weights than it was '
        'learned on (refused by default: the prompts were tuned for other '
        'features)')
    parser.add_argument(
        '--threshold',
        type=threshold_arg,
        help='tag: one threshold for all tags, in [0, 1]')
    parser.add_argument(
        '--topk', type=int, default=5, help='classify: classes per image')
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument(
        '--num-workers',
        type=int,
        # More workers than cores only adds contention.
        default=min(2, os.cpu_count() or 1),
        help='DataLoader workers decoding images, per process (default: '
        '2, at most the number of CPU cores)')
    parser.add_argument(
        '--chunk-size',
        type=int,
        default=1024,
        help='images per saved chunk: a killed run loses at most the '
        'chunks in progress (default: 1024)')
    parser.add_argument('--device', help='default: cuda:LOCAL_RANK, or cpu')
    parser.add_argument(
        '--precision', choices=['fp32', 'fp16', 'bf16'], default='fp32')
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        '--force', action='store_true', help='overwrite existing outputs')
    group.add_argument(
        '--resume',
        action='store_true',
        help='continue an interrupted run (its <out>.parts/)')
    parser.add_argument('--no-progress', action='store_true')
    parser.add_argument(
        '--launcher', choices=LAUNCHERS, default='none', help='job launcher')
    args = parser.parse_args(argv)
    if args.task == 'embed' and not args.out.endswith('.npy'):
        parser.error('embed writes a .npy file: --out must end with .npy')
    if args.task != 'embed' and not args.out.endswith('.jsonl'):
        parser.error('--out must end with .jsonl')
    for name in ('batch_size', 'chunk_size', 'topk'):
        if getattr(args, name) < 1:
            parser.error(f'--{name.replace("_", "-")} must be at least 1')
    if args.learned and args.task != 'classify':
        parser.error('--learned is for classify')
    if args.num_workers < 0:
        parser.error('--num-workers must be >= 0')
    return args


def threshold_arg(text: str) -> float:
    """``--threshold`` as ImageTagger takes it (:func:`check_threshold`)."""
    from mmprompt.models.ram.vocabulary import check_threshold
    try:
        return check_threshold(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def check_prompts(args: argparse.Namespace) -> None:
    """Refuse, before any work, the categories and templates the
    inferencers would refuse (:func:`mmprompt.apis.utils.check_prompts`)
    and, for a zero-shot classifier, prompts over the text tower's
    context."""
    from mmprompt.apis.utils import check_prompts as check
    from mmprompt.apis.utils import prompt_errors
    from mmprompt.models.clip.prompts import category_spec
    spec = category_spec(args.categories)
    if args.task == 'embed':
        return
    check(spec, args.templates, open_set=args.task == 'tag')
    if args.task == 'classify' and spec is not None and not args.learned:
        from mmprompt.models.clip.prompts import (resolve_categories,
                                                  resolve_templates)
        templates = None if args.templates is None else \
            resolve_templates(args.templates)
        with prompt_errors():
            check_prompt_lengths(args.model, resolve_categories(spec),
                                 templates)


def check_prompt_lengths(model: str, names: Sequence[str],
                         templates: Optional[Sequence[str]]) -> None:
    """Tokenize every prompt as the classifier will (``ValueError`` for
    one over the context), with the config's templates by default."""
    from mmprompt.apis.model_zoo import load_config
    from mmprompt.models.clip.prompts import resolve_templates
    from mmprompt.models.clip.tokenizer import CLIPTokenizer
    cfg = load_config(model)[0].model
    if templates is None:
        templates = resolve_templates(cfg.get('templates', 'simple'))
    text = cfg.get('text_backbone') or {}
    CLIPTokenizer()([t.format(n) for n in names for t in templates],
                    context_length=text.get('context_length'))


def default_device() -> str:
    import torch
    if torch.cuda.is_available():
        return f'cuda:{int(os.environ.get("LOCAL_RANK", 0))}'
    return 'cpu'


def build_task(args: argparse.Namespace):
    """The model and what it computes per batch."""
    from mmprompt.apis import bulk
    from mmprompt.apis.utils import prompt_errors
    from mmprompt.models.clip.prompts import category_spec
    pretrained = args.checkpoint or True
    device = args.device or default_device()
    if args.task == 'tag':
        from mmprompt.apis import ImageTagger
        from mmprompt.apis.image_tagger import text_encoder_from
        overrides = dict(text_encoder=text_encoder_from(
            args.text_checkpoint)) if args.text_checkpoint else {}
        tagger = ImageTagger(
            args.model, pretrained, device, precision=args.precision,
            **overrides)
        spec = category_spec(args.categories)
        if spec is not None:
            with prompt_errors():
                tagger.set_categories(spec, args.templates)
        return bulk.TagTask(tagger, args.threshold, spec)
    if args.task == 'classify' and args.learned:
        model, vocabulary = learned_model(args, device)
        return bulk.ClassifyTask(model, args.topk, vocabulary)
    if args.task == 'classify':
        from mmprompt.apis import ZeroShotClassifier
        classifier = ZeroShotClassifier(
            args.model, pretrained, device, precision=args.precision)
        with prompt_errors():
            vocabulary = classifier.set_categories(
                category_spec(args.categories), args.templates)
        return bulk.ClassifyTask(classifier.model, args.topk, vocabulary)
    from mmprompt.apis.utils import speed_up
    from mmprompt.apis.zero_shot_classifier import build_zero_shot_model
    model = build_zero_shot_model(args.model, pretrained, device)
    speed_up(model, args.precision, False)
    return bulk.EmbedTask(model)


def learned_model(args: argparse.Namespace, device: str) -> tuple:
    """The prompt-learning model of ``--learned`` over ``--model`` (see
    :func:`mmprompt.apis.get_model` with ``learned=``), on
    ``--categories`` if given."""
    from mmprompt.apis.utils import prompt_errors
    from mmprompt.apis.utils import speed_up
    from mmprompt.apis.builder import get_model
    from mmprompt.models.clip.prompts import (category_spec,
                                              resolve_categories)
    model = get_model(
        args.model,
        args.checkpoint or True,
        device,
        learned=args.learned,
        allow_other_weights=args.allow_other_clip_weights)
    if args.categories:
        with prompt_errors():
            model.set_categories(
                list(resolve_categories(category_spec(args.categories))))
    speed_up(model, args.precision, False)
    return model, None


def plan(args: argparse.Namespace, kind: str) -> dict:
    """Rank 0's checks before the model is built, inputs first, then the
    outputs; nothing is written yet."""
    from mmprompt.apis import bulk
    from mmprompt.datasets.image_sources import list_images
    items = list_images(args.inputs)
    paths = bulk.output_paths(args.out, kind)
    mode = bulk.check_outputs(paths, args.force, args.resume)
    inputs = [
        *args.inputs, *(args.categories or []), args.model, args.checkpoint,
        args.learned
    ]
    if mode == 'new':
        for key in ('out', 'failed', 'index'):
            if key in paths:
                check_output(paths[key], args.force,
                             inputs=[p for p in inputs if p])
    return dict(items=items, paths=paths, mode=mode)


def answer_digests(args: argparse.Namespace, task) -> dict:
    """Digests of what decides the answers (see
    :data:`mmprompt.apis.bulk.ANSWER_INPUTS`): the weight files' and the
    learned prompts' contents, the resolved categories, templates,
    descriptions and thresholds, and the model settings."""
    from mmprompt.apis import bulk
    from mmprompt.apis.builder import weight_files
    from mmprompt.utils.io import file_digest
    answers = task.answer_inputs()
    answers['model'] = dict(
        settings=answers['model'], task=args.task, precision=args.precision)
    digests = {
        key: bulk.value_digest(value)
        for key, value in answers.items()
    }
    digests['checkpoint'] = bulk.value_digest([
        file_digest(f) for f in weight_files(args.model, args.checkpoint
                                             or True)
    ])
    digests['learned'] = file_digest(args.learned) if args.learned else None
    return digests


def begin(args: argparse.Namespace, setup: dict, task) -> 'bulk.RunLock':
    """Rank 0, once the model is built: lock the chunk folder and write the
    manifest, or check the interrupted run's (``--resume``)."""
    from mmprompt.apis import bulk
    items = setup['items']
    manifest = dict(
        format=bulk.FORMAT,
        task=args.task,
        chunk_size=args.chunk_size,
        num_images=len(items),
        listing=bulk.listing_digest(items),
        answers=answer_digests(args, task))
    return bulk.begin_run(setup['paths'], manifest, setup['mode'])


def on_main(fn: Callable, *args) -> Any:
    """``fn(*args)`` on rank 0; its result (or its error) on every rank."""
    from mmengine.dist import (broadcast_object_list, get_dist_info,
                               is_main_process)
    box = [None]
    if is_main_process():
        try:
            box[0] = fn(*args)
        except UserError as e:
            box[0] = e
    if get_dist_info()[1] > 1:
        broadcast_object_list(box, src=0)
    if isinstance(box[0], UserError):
        raise box[0]
    return box[0]


def run_chunks(task, items, store, chunks, chunk_size, args,
               progress) -> int:
    """Process this rank's chunks, writing each as it completes."""
    import numpy as np
    import torch
    from mmengine.dist import get_dist_info
    from torch.utils.data import DataLoader

    from mmprompt.datasets.image_sources import (ImageItemDataset,
                                                 collate_items)
    indices = [
        i for c in chunks
        for i in range(c * chunk_size, min(len(items), (c + 1) * chunk_size))
    ]
    loader = DataLoader(
        ImageItemDataset(items, indices, task.transform),
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        collate_fn=collate_items,
        pin_memory=torch.cuda.is_available())
    remaining = {
        c: min(len(items), (c + 1) * chunk_size) - c * chunk_size
        for c in chunks
    }
    records = {c: {} for c in chunks}
    rows = {c: {} for c in chunks}
    world = get_dist_info()[1]
    for batch in loader:
        outputs = task(batch['data']) if batch['data'] else []
        done = []
        for j, index in enumerate(batch['indices']):
            c = index // chunk_size
            record = dict(image=items[index].name)
            if items[index].key:
                record['key'] = items[index].key
            if task.kind == 'npy':
                rows[c][index] = outputs[j]
            else:
                record.update(outputs[j])
            records[c][index] = record
            done.append(c)
        for index, reason in batch['failed']:
            c = index // chunk_size
            records[c][index] = dict(image=items[index].name, error=reason)
            done.append(c)
        for c in done:
            remaining[c] -= 1
            if remaining[c] == 0:
                order = sorted(records[c])
                good = [rows[c][i] for i in order if i in rows[c]]
                store.write(
                    c, [records[c][i] for i in order],
                    np.stack(good) if good else np.zeros((0, 0), 'float32'))
                del records[c], rows[c]
        progress.update((len(batch['indices']) + len(batch['failed'])) *
                        world)
    return len(indices)


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    from mmprompt.utils.dist import init_distributed
    check_prompts(args)
    init_distributed(args.launcher)
    kind = 'npy' if args.task == 'embed' else 'jsonl'
    setup = on_main(plan, args, kind)
    # The parts folder is made only once the model is built: a refused
    # checkpoint or category set leaves nothing behind.
    task = build_task(args)
    lock = on_main(begin, args, setup, task)
    try:
        return run(args, task, setup, kind)
    finally:
        lock.release()  # a no-op where another process holds it


def run(args: argparse.Namespace, task, setup: dict, kind: str) -> dict:
    """Process the chunks not done yet, then merge them (rank 0)."""
    from mmengine.dist import barrier, get_dist_info, is_main_process
    from mmengine.logging import print_log

    from mmprompt.apis import bulk
    rank, world = get_dist_info()
    items, paths = setup['items'], setup['paths']
    store = bulk.ChunkStore(paths, kind)
    num_chunks = -(-len(items) // args.chunk_size)
    finished = store.done(num_chunks)
    mine = [
        c for c in range(num_chunks) if c % world == rank and not finished[c]
    ]
    todo = sum(
        min(len(items), (c + 1) * args.chunk_size) - c * args.chunk_size
        for c in range(num_chunks) if not finished[c])
    if is_main_process():
        print_log(
            f'{len(items)} images in {num_chunks} chunks, {todo} to do '
            f'({setup["mode"]} run) on {world} process(es)',
            logger='current')
    progress = bulk.Progress(todo, is_main_process() and not args.no_progress)
    start = time.perf_counter()
    run_chunks(task, items, store, mine, args.chunk_size, args, progress)
    if world > 1:
        barrier()
    seconds = time.perf_counter() - start
    progress.close()
    summary = dict(images=len(items), processed=todo, seconds=seconds,
                   images_per_s=todo / seconds if seconds > 0 else None,
                   world_size=world)
    if is_main_process():
        good, bad = store.merge(num_chunks)
        summary.update(readable=good, unreadable=bad)
        rate = summary['images_per_s'] or 0.0
        print_log(
            f'{len(items)} images: {good} done, {bad} unreadable'
            f'{" (listed in " + paths["failed"] + ")" if bad else ""}; '
            f'{todo} processed in {seconds:.1f} s, {rate:.1f} img/s on '
            f'{world} process(es); output {paths["out"]}',
            logger='current')
    if world > 1:
        barrier()
    return summary


if __name__ == '__main__':
    run_tool(main)
