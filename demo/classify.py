# Copyright (c) mmprompt contributors. All rights reserved.
"""Classify images among categories given on the command line.

Examples:
    # Official ViT-B/16 weights, downloaded and converted on first use.
    python demo/classify.py cat.jpg --categories "tabby cat" beagle owl

    # A converted checkpoint, ImageNet's classes, descriptions (JSON
    # {name: text or texts}), example images, learned prompts.
    python demo/classify.py photos/ --categories imagenet \
        --checkpoint checkpoints/clip_vit-base-p16.pth \
        --descriptions descriptions.json --examples "cat=c1.jpg,c2.jpg"
    python demo/classify.py cat.jpg --learned work_dirs/coop/learned.pth

Inputs are listed as ``tools/infer.py`` lists them (files, folders, .txt
lists, .tar shards); an unreadable image is reported and skipped (in
``--out`` as ``{"image": ..., "error": ...}``). For collections, use
``tools/infer.py classify``.
"""
import argparse
import json
import logging
from typing import Dict, List, Optional

from mmengine.logging import print_log

from mmprompt.utils.errors import InvalidInputError, run_tool
from mmprompt.utils.io import atomic_write, check_output
from mmprompt.utils.options import category_spec


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Zero-shot image classification with CLIP.')
    parser.add_argument('images', nargs='+', help='images, folders, lists')
    parser.add_argument(
        '--categories',
        nargs='+',
        help='names, or one built-in set (imagenet, cifar100) or text file; '
        "default: the config's")
    parser.add_argument(
        '--model',
        default='clip_vit-base-p16',
        help='zoo name or config file (default: %(default)s)')
    parser.add_argument('--checkpoint', help='default: the official weights')
    parser.add_argument('--templates', help='template set or text file')
    parser.add_argument('--descriptions', help='JSON {category: texts}')
    parser.add_argument(
        '--description-weight', type=float, help='in [0, 1]')
    parser.add_argument(
        '--examples',
        nargs='+',
        metavar='NAME=IMG[,IMG...]',
        help='example images per category, or a folder of subfolders')
    parser.add_argument(
        '--learned', help='a learned-prompt file of tools/train.py')
    parser.add_argument('--allow-other-clip-weights', action='store_true')
    parser.add_argument('--topk', type=int, default=5, help='default: 5')
    parser.add_argument('--device', help='default: cuda if there is one')
    parser.add_argument('--out', help='also write the results to this JSON')
    parser.add_argument('--force', action='store_true')
    return parser.parse_args(argv)


def parse_examples(items: Optional[List[str]]) -> Optional[object]:
    """``['a=x.jpg,y.jpg', 'b=z.png']`` -> ``{'a': [...], 'b': [...]}``;
    a single item without ``=`` is a folder."""
    if not items or (len(items) == 1 and '=' not in items[0]):
        return items[0] if items else None
    examples: Dict[str, List[str]] = {}
    for item in items:
        name, sep, paths = item.partition('=')
        if not sep or not name.strip() or not paths:
            raise InvalidInputError(f'bad --examples item {item!r}: use '
                                    'NAME=IMG[,IMG...]')
        examples.setdefault(name.strip(),
                            []).extend(p for p in paths.split(',') if p)
    return examples


def main(argv: Optional[List[str]] = None) -> list:
    args = parse_args(argv)
    examples = parse_examples(args.examples)
    if args.out:  # refused before the model is built
        example_files = [] if examples is None else [examples] if isinstance(
            examples, str) else [p for ps in examples.values() for p in ps]
        inputs = [
            *args.images, *(args.categories or []), *example_files,
            args.checkpoint, args.templates, args.descriptions, args.learned
        ]
        check_output(args.out, args.force, inputs=[p for p in inputs if p])
    from mmprompt.apis.utils import prompt_errors
    from mmprompt.datasets.image_sources import ImageItemDataset, list_images
    items = list_images(args.images)
    decoded = ImageItemDataset(items, range(len(items)), lambda im: im)
    records = [decoded[i] for i in range(len(items))]
    for r in records:
        if 'error' in r:
            print_log(f'skipped: {r["error"]}', 'current', logging.WARNING)
    good = [r for r in records if 'data' in r]
    if not good:
        raise InvalidInputError(
            f'none of the {len(items)} images can be read')
    import torch

    from mmprompt.apis import ZeroShotClassifier
    overrides = {} if args.description_weight is None else dict(
        description_weight=args.description_weight)
    classifier = ZeroShotClassifier(
        args.model,
        pretrained=args.checkpoint or True,
        device=args.device or ('cuda' if torch.cuda.is_available() else 'cpu'),
        learned=args.learned,
        allow_other_weights=args.allow_other_clip_weights,
        **overrides)
    with prompt_errors():
        results = classifier([r['data'] for r in good],
                             categories=category_spec(args.categories),
                             templates=args.templates,
                             descriptions=args.descriptions,
                             examples=examples,
                             topk=args.topk)
    for r, result in zip(good, results):
        r['result'] = result
    lines = []
    for r in good:
        lines.append(items[r['index']].name)
        lines += [
            f'  {score:7.2%}  {name}' for name, score in zip(
                r['result']['pred_classes'], r['result']['pred_scores'])
        ]
    bad = [items[r['index']].name for r in records if 'error' in r]
    if bad:
        lines.append(f'skipped {len(bad)} unreadable of {len(items)} '
                     'images: ' + ', '.join(bad))
    print_log('\n'.join(lines), logger='current')
    if args.out:
        with atomic_write(args.out, 'w') as f:
            json.dump([
                dict(image=items[r['index']].name,
                     **r.get('result', dict(error=r.get('error'))))
                for r in records
            ], f, indent=2)
    return results


if __name__ == '__main__':
    run_tool(main)
