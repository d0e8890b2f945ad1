# Copyright (c) mmprompt contributors. All rights reserved.
"""Classify images among categories given on the command line.

Examples:
    # Official ViT-B/16 weights, downloaded and converted on first use.
    python demo/classify.py cat.jpg --categories "tabby cat" beagle owl

    # A config and a converted checkpoint, ImageNet's 1000 classes.
    python demo/classify.py a.jpg b.png \
        --model configs/clip/clip_vit-base-p16_zeroshot-cls_in1k.py \
        --checkpoint checkpoints/clip_vit-base-p16.pth --topk 5

    # Descriptions (JSON {name: text or texts}) and example images.
    python demo/classify.py cat.jpg --categories "tabby cat" beagle \
        --descriptions descriptions.json \
        --examples "tabby cat=examples/cat1.jpg,examples/cat2.jpg"

    # Prompts learned by tools/train.py (CoOp, CoCoOp) on the same CLIP;
    # a unified context also takes new names (--categories).
    python demo/classify.py cat.jpg --learned work_dirs/coop/learned.pth

An unreadable image among the inputs is reported and skipped (in ``--out``
as ``{"image": ..., "error": ...}``), as ``tools/infer.py`` does; the run
fails only when none is readable. The device defaults to CUDA when there
is one.
"""
import argparse
import json
import logging
import os.path as osp
import sys
from typing import Dict, List, Optional, Tuple

from mmengine.logging import print_log

from mmprompt.utils.errors import ImageDecodeError, InvalidInputError
from mmprompt.utils.io import atomic_write, check_output


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Zero-shot image classification with CLIP.')
    parser.add_argument('images', nargs='+', help='image files')
    parser.add_argument(
        '--categories',
        nargs='+',
        help='category names, or one built-in set (imagenet, cifar100) or '
        'text file; default: those of the config')
    parser.add_argument(
        '--model',
        default='clip_vit-base-p16',
        help='model name (official weights) or config file '
        '(default: clip_vit-base-p16)')
    parser.add_argument(
        '--checkpoint',
        help='converted checkpoint; default: the official weights of a '
        "named model, or the config's load_from")
    parser.add_argument(
        '--templates',
        help='template set (openai_imagenet, openai_cifar, simple, ...) or '
        'text file; default: the config\'s')
    parser.add_argument(
        '--descriptions', help='JSON file {category: text or list of texts}')
    parser.add_argument(
        '--description-weight',
        type=float,
        help='weight of the descriptions against the templates, in [0, 1]')
    parser.add_argument(
        '--examples',
        nargs='+',
        metavar='NAME=IMG[,IMG...]',
        help='example images per category, or one folder holding a '
        'subfolder per category')
    parser.add_argument(
        '--learned',
        help='a learned-prompt file of tools/train.py (CoOp, CoCoOp) '
        'learned on this CLIP; its prompts replace the templates')
    parser.add_argument(
        '--allow-other-clip-weights',
        action='store_true',
        help='use a --learned file over other CLIP weights than it was '
        'learned on (refused by default)')
    parser.add_argument('--topk', type=int, default=5, help='default: 5')
    parser.add_argument(
        '--device', help='default: cuda when there is one, else cpu')
    parser.add_argument('--out', help='also write the results to this JSON')
    parser.add_argument(
        '--force', action='store_true', help='replace an existing --out')
    return parser.parse_args(argv)


def check_out(args: argparse.Namespace) -> None:
    """Refuse, before the model is built, an ``--out`` that is one of the
    input files, exists (without ``--force``) or cannot be written."""
    if not args.out:
        return
    examples = [
        path for item in args.examples or []
        for path in item.partition('=')[2 if '=' in item else 0].split(',')
    ]
    # Names that are no file (categories, set names) are skipped.
    inputs = [
        *args.images, *(args.categories or []), *examples, args.checkpoint,
        args.templates, args.descriptions, args.learned
    ]
    check_output(args.out, args.force, inputs=[p for p in inputs if p])


def parse_examples(items: Optional[List[str]]) -> Optional[object]:
    """``['a=x.jpg,y.jpg', 'b=z.png']`` -> ``{'a': [...], 'b': [...]}``;
    a single item without ``=`` is a folder."""
    if not items:
        return None
    if len(items) == 1 and '=' not in items[0]:
        return items[0]
    examples: Dict[str, List[str]] = {}
    for item in items:
        name, sep, paths = item.partition('=')
        if not sep or not name.strip() or not paths:
            raise ValueError(f'bad --examples item {item!r}: use '
                             'NAME=IMG[,IMG...]')
        examples.setdefault(name.strip(),
                            []).extend(p for p in paths.split(',') if p)
    return examples


def readable_images(paths: List[str]) -> Tuple[List[str], Dict[str, str]]:
    """Split ``paths`` into the images the library's decoder reads and the
    others (path -> why), each of those reported in the log."""
    from mmprompt.utils.image_io import decode_image
    good, bad = [], {}
    for path in paths:
        try:
            decode_image(path)
            good.append(path)
        except (ImageDecodeError, OSError) as e:
            bad[path] = str(e)
            print_log(f'skipped: {e}', logger='current',
                      level=logging.WARNING)
    if not good:
        raise InvalidInputError(
            f'none of the {len(paths)} images can be read')
    return good, bad


def main(argv: Optional[List[str]] = None) -> list:
    args = parse_args(argv)
    check_out(args)
    images, unreadable = readable_images(args.images)
    import torch

    from mmprompt.apis import ZeroShotClassifier
    from mmprompt.models.clip.prompts import builtin_category_sets
    overrides = {}
    if args.description_weight is not None:
        overrides['description_weight'] = args.description_weight
    classifier = ZeroShotClassifier(
        args.model,
        pretrained=args.checkpoint or True,
        device=args.device or ('cuda' if torch.cuda.is_available() else 'cpu'),
        learned=args.learned,
        allow_other_weights=args.allow_other_clip_weights,
        **overrides)
    categories = args.categories
    if categories and len(categories) == 1 and (categories[0]
                                                in builtin_category_sets()
                                                or osp.isfile(categories[0])):
        categories = categories[0]  # a set name or a file
    results = classifier(
        images,
        categories=categories,
        templates=args.templates,
        descriptions=args.descriptions,
        examples=parse_examples(args.examples),
        topk=args.topk)
    lines = []
    for path, result in zip(images, results):
        lines.append(path)
        for name, score in zip(result['topk_classes'], result['topk_scores']):
            lines.append(f'  {score:7.2%}  {name}')
    if unreadable:
        lines.append(f'skipped {len(unreadable)} unreadable of '
                     f'{len(args.images)} images: ' + ', '.join(unreadable))
    print_log('\n'.join(lines), logger='current')
    if args.out:
        by_path = dict(zip(images, results))
        records = [
            dict(image=p, **by_path[p]) if p in by_path else dict(
                image=p, error=unreadable[p]) for p in args.images
        ]
        with atomic_write(args.out, 'w') as f:
            json.dump(records, f, indent=2, default=lambda a: a.tolist())
    return results


if __name__ == '__main__':
    from mmprompt.utils.errors import UserError
    try:
        main()
    except (UserError, ValueError, TypeError, FileNotFoundError) as e:
        sys.stderr.write(f'error: {e}\n')
        sys.exit(2)
