# Copyright (c) mmprompt contributors. All rights reserved.
"""Tag every image of folders (or a list of files) with RAM / RAM++ and
write one JSON line per image.

Examples:
    # RAM's 4585 tags, English and Chinese (the zoo's official weights,
    # downloaded and converted once; or --checkpoint a converted file).
    python demo/tag_images.py photos/ \
        --config ram_swin-large-p4-w12_384px_normal \
        --out tags.jsonl --batch-size 8

    # RAM++ on categories of your own, with LLM descriptions.
    python demo/tag_images.py a.jpg b.png \
        --config ram-plus_swin-large-p4-w12_384px_openset \
        --checkpoint \
        checkpoints/ram-plus_swin-large-p4-w12_384px_openset.safetensors \
        --categories openimages_rare_200_llm_tag_descriptions.json \
        --out tags.jsonl

Each line of ``--out`` is ``{"image", "tags", "tags_chinese", "scores"}``,
the keys of ``tools/infer.py tag`` (tags in vocabulary order,
``tags_chinese`` null when unknown). Files that cannot be read are
reported with a warning and in the final summary, and skipped; the run
goes on. An existing ``--out`` is never lost: the run
refuses it without ``--force`` (replace) or ``--resume`` (keep its records,
tag the rest); the output may not be an input nor inside an input folder,
and it is written through a temporary file.
"""
import argparse
import json
import logging
import os
import os.path as osp
import sys
from typing import List, Optional, Tuple

from mmengine.logging import print_log

from mmprompt.utils import UserError, atomic_write, check_output, run_tool


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Tag the images of folders with RAM or RAM++.')
    parser.add_argument(
        'inputs', nargs='+', help='image folders and/or image files')
    parser.add_argument(
        '--config',
        required=True,
        help='a model of the zoo (e.g. ram_swin-large-p4-w12_384px_normal, '
        'see mmprompt.apis.list_models), a mmprompt:: config name or a '
        'config file')
    parser.add_argument(
        '--checkpoint',
        help='checkpoint (.pth / .safetensors) converted by '
        'tools/model_converters/ram_to_mmprompt.py (default: the official '
        'weights of a zoo model, downloaded and converted once)')
    parser.add_argument(
        '--text-checkpoint',
        help='open set: a converted CLIP ViT-B/16 checkpoint whose text '
        "tower embeds the categories (default: the zoo's, downloaded once)")
    parser.add_argument(
        '--out', required=True, help='output JSON-lines file (.jsonl)')
    existing = parser.add_mutually_exclusive_group()
    existing.add_argument(
        '--force', action='store_true', help='replace an existing --out')
    existing.add_argument(
        '--resume',
        action='store_true',
        help='keep the records of an existing --out, tag only the images '
        'it lacks and add them')
    parser.add_argument(
        '--categories',
        nargs='+',
        help='open-set categories (needs an open-set config): names, or one '
        '.txt (a name a line) or .json file (RAM++ descriptions: a list of '
        '{name: [descriptions]} items or one such object)')
    parser.add_argument(
        '--threshold',
        type=float,
        help="one threshold for every tag (default: the model's)")
    parser.add_argument('--batch-size', type=int, default=8, help='default: 8')
    parser.add_argument(
        '--recursive',
        action='store_true',
        help='also tag the images of subfolders')
    parser.add_argument('--device', default='cpu', help='default: cpu')
    parser.add_argument(
        '--precision',
        choices=['fp32', 'fp16', 'bf16'],
        default='fp32',
        help='precision of the towers (default: fp32, the one with parity)')
    parser.add_argument(
        '--compile',
        action='store_true',
        help='torch.compile the towers (worth it for large folders: each '
        'batch size compiles on its first batch)')
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error('--batch-size must be at least 1')
    if args.threshold is not None and not 0 <= args.threshold <= 1:
        parser.error('--threshold must lie in [0, 1]')
    return args


def list_images(inputs: List[str], recursive: bool = False) -> List[str]:
    """Image files of the folders (sorted, by extension) and the files
    given, in order; paths that do not exist are kept and fail later.

    Args:
        inputs (list[str]): Folders and files.
        recursive (bool): Walk subfolders. Defaults to False.

    Returns:
        list[str]: Image paths, without repeats.
    """
    from mmprompt.datasets.image_sources import IMAGE_EXTENSIONS
    paths = []
    for item in inputs:
        if not osp.isdir(item):
            paths.append(item)
            continue
        found = []
        for folder, subdirs, files in os.walk(item):
            subdirs.sort()
            found += [
                osp.join(folder, f) for f in files
                if f.lower().endswith(IMAGE_EXTENSIONS)
            ]
            if not recursive:
                break
        paths += sorted(found)
    return list(dict.fromkeys(paths))


def read_batch(paths: List[str]) -> Tuple[list, list, list]:
    """Decode images with the library's decoder (RGB, as RAM does first);
    return the readable ones, their paths and the paths that failed."""
    from mmprompt.utils.image_io import decode_image
    images, good, bad = [], [], []
    for path in paths:
        try:
            images.append(decode_image(path))
            good.append(path)
        except ValueError as e:
            bad.append(path)
            print_log(f'skipped: {e}', logger='current', level=logging.WARNING)
    return images, good, bad


def check_paths(args: argparse.Namespace) -> None:
    """Before anything is opened: every input exists, and ``--out`` can be
    written without losing a file (not an input, not inside an input
    folder, not an existing file without ``--force`` / ``--resume``)."""
    for item in args.inputs:
        if not osp.exists(item):
            raise UserError(f'{item}: no such file or folder')
    inputs = [*args.inputs, *(args.categories or []), args.config,
              args.checkpoint]
    check_output(
        args.out,
        force=args.force or args.resume,
        inputs=[p for p in inputs if p],
        flag='--force (or --resume)')


def read_done(path: str) -> List[str]:
    """The records of an earlier run's output, as JSON lines; a cut last
    line (an interrupted run) is dropped."""
    if not osp.exists(path):
        return []
    lines = []
    with open(path, encoding='utf-8') as f:
        for line in f:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and 'image' in record:
                lines.append(json.dumps(record, ensure_ascii=False))
    return lines


def categories_arg(items: Optional[List[str]]) -> Optional[object]:
    """One existing file stays a path; otherwise a list of names."""
    if not items:
        return None
    if len(items) == 1 and osp.isfile(items[0]):
        return items[0]
    return items


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    from mmprompt.utils.progress import Progress

    from mmprompt.apis import ImageTagger
    check_paths(args)
    done = read_done(args.out) if args.resume else []
    done_paths = {json.loads(line)['image'] for line in done}
    paths = list_images(args.inputs, args.recursive)
    if done_paths:
        print_log(
            f'--resume: {len(done_paths)} images already in {args.out}',
            logger='current')
        paths = [p for p in paths if p not in done_paths]
    if not paths and done_paths:
        print_log('nothing left to tag', logger='current')
        return 0
    if not paths:
        print_log(
            f'no images found in {args.inputs}',
            logger='current',
            level=logging.ERROR)
        return 1
    from mmprompt.apis.image_tagger import text_encoder_from
    overrides = dict(text_encoder=text_encoder_from(
        args.text_checkpoint)) if args.text_checkpoint else {}
    tagger = ImageTagger(
        args.config,
        pretrained=args.checkpoint or True,
        device=args.device,
        precision=args.precision,
        compile=args.compile,
        **overrides)
    categories = categories_arg(args.categories)
    if categories is not None:
        tagger.set_categories(categories)
    skipped, tagged = [], 0
    bar = Progress(len(paths))
    # Written whole through a temporary file: an interrupted run leaves the
    # previous output as it was.
    with atomic_write(args.out, 'w') as f:
        for line in done:
            f.write(line + '\n')
        for start in range(0, len(paths), args.batch_size):
            chunk = paths[start:start + args.batch_size]
            images, good, bad = read_batch(chunk)
            skipped += bad
            results = tagger(
                images, threshold=args.threshold,
                batch_size=len(images)) if images else []
            for path, result in zip(good, results):
                record = dict(
                    image=path,
                    tags=result['tags'],
                    tags_chinese=result['tags_chinese'],
                    scores=[round(s, 6) for s in result['tag_scores']])
                f.write(json.dumps(record, ensure_ascii=False) + '\n')
            f.flush()
            tagged += len(good)
            for _ in chunk:
                bar.update()
    summary = f'\nTagged {tagged} of {len(paths)} images into {args.out}'
    if skipped:
        summary += f'; skipped {len(skipped)} unreadable:\n' + '\n'.join(
            f'  {p}' for p in skipped)
    print_log(
        summary,
        logger='current',
        level=logging.WARNING if skipped else logging.INFO)
    return 0


if __name__ == '__main__':
    run_tool(lambda argv: sys.exit(main(argv)))
