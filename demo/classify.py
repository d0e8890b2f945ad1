# Copyright (c) mmprompt contributors. All rights reserved.
"""Classify images among categories given on the command line::

    python demo/classify.py cat.jpg --categories "tabby cat" beagle owl
    python demo/classify.py photos/ --categories imagenet --examples \
        "owl=o1.jpg,o2.jpg" --checkpoint checkpoints/clip_vit-base-p16.pth

Images are listed and read as ``tools/infer.py classify`` (for large
collections) does; an unreadable one is reported and skipped."""
import argparse
import json
import logging
import re
from typing import Dict, List, Optional

from mmengine.logging import print_log

from mmprompt.utils.errors import InvalidInputError, run_tool
from mmprompt.utils.io import atomic_write, check_output


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Zero-shot image classification with CLIP.')
    add = parser.add_argument
    add('images', nargs='+', help='images, folders, .txt lists, .tar shards')
    add('--categories', nargs='+', help='names, or one built-in set '
        "(imagenet, cifar100) or text file; default: the config's")
    add('--model', default='clip_vit-base-p16',
        help='zoo name or config file (default: %(default)s)')
    add('--checkpoint', help='default: the official weights')
    add('--templates', help='template set or text file')
    add('--descriptions', help='JSON {category: text or texts}')
    add('--description-weight', type=float, help='in [0, 1]')
    add('--examples', nargs='+', metavar='NAME=IMG[,IMG...]',
        help='example images per category, or a folder of subfolders')
    add('--learned', help='a learned-prompt file of tools/train.py')
    add('--allow-other-clip-weights', action='store_true')
    add('--topk', type=int, default=5, help='default: 5')
    add('--device', help='default: cuda if there is one, else cpu')
    add('--out', help='also write the results to this JSON file')
    add('--force', action='store_true', help='replace an existing --out')
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
        inputs = [
            *args.images, *(args.categories or []), args.checkpoint,
            args.templates, args.descriptions, args.learned,
            *(p for i in args.examples or [] for p in re.split('[=,]', i))
        ]
        check_output(args.out, args.force, inputs=[p for p in inputs if p])
    from mmprompt.apis.utils import prompt_errors
    from mmprompt.datasets.image_sources import ImageItemDataset, list_images
    items = list_images(args.images)
    dataset = ImageItemDataset(items, range(len(items)), lambda im: im)
    records = [dict(image=it.name, **dataset[i]) for i, it in enumerate(items)]
    good = [r for r in records if 'data' in r]
    for r in records:
        if 'error' in r:
            print_log(f'skipped: {r["error"]}', 'current', logging.WARNING)
    if not good:
        raise InvalidInputError(f'none of the {len(items)} images can be read')
    import torch

    from mmprompt.apis import ZeroShotClassifier
    from mmprompt.models.clip.prompts import category_spec
    overrides = {} if args.description_weight is None else dict(
        description_weight=args.description_weight)
    classifier = ZeroShotClassifier(
        args.model, args.checkpoint or True,
        device=args.device or ('cuda' if torch.cuda.is_available() else 'cpu'),
        learned=args.learned,
        allow_other_weights=args.allow_other_clip_weights, **overrides)
    with prompt_errors():
        results = classifier([r.pop('data') for r in good],
                             categories=category_spec(args.categories),
                             templates=args.templates,
                             descriptions=args.descriptions,
                             examples=examples, topk=args.topk)
    lines = []
    for r, result in zip(good, results):
        r.update(result)
        lines += [r['image']] + [
            f'  {score:7.2%}  {name}'
            for name, score in zip(result['topk_classes'],
                                   result['topk_scores'])
        ]
    print_log('\n'.join(lines), logger='current')
    if args.out:
        with atomic_write(args.out, 'w') as f:
            json.dump([{k: v for k, v in r.items() if k != 'index'}
                       for r in records], f, indent=2,
                      default=lambda a: a.tolist())
    return results


if __name__ == '__main__':
    run_tool(main)
