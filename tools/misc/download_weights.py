# Copyright (c) mmprompt contributors. All rights reserved.
"""Fetch, verify, convert and cache the official weights of zoo models,
e.g. once on a cluster's shared cache before the jobs start.

Example:
    python tools/misc/download_weights.py clip_vit-base-p16 \
        ram-plus_swin-large-p4-w12_384px_openset
    MMPROMPT_HOME=/shared/mmprompt python tools/misc/download_weights.py 'ram*'
    MMPROMPT_ENDPOINT=https://mirror.example.com/{host} \
        python tools/misc/download_weights.py clip_vit-base-p16
    python tools/misc/download_weights.py --list

Each name may be a pattern of ``mmprompt.apis.list_models``; an open-set
model also fetches the CLIP whose text tower it uses. Prints the cached
file of each; a failure is one line (``--debug`` for a traceback).
"""
import argparse
from typing import List, Optional

from mmprompt.utils.errors import run_tool


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description='Cache the official weights of zoo models.')
    parser.add_argument('names', nargs='*', help='zoo names or patterns')
    parser.add_argument(
        '--home', help='cache folder (default: $MMPROMPT_HOME or '
        '~/.cache/mmprompt)')
    parser.add_argument(
        '--endpoint',
        help='download from this mirror: it replaces the scheme and host '
        'of every URL, {host} standing for the original host (default: '
        '$MMPROMPT_ENDPOINT, else the official URLs)')
    parser.add_argument(
        '--list', action='store_true', help='list the zoo and exit')
    args = parser.parse_args(argv)
    from mmprompt.apis import hub, model_zoo
    if args.list or not args.names:
        for name in model_zoo.list_models():
            info = model_zoo.get_model_info(name)
            weights = info.weights or 'no released weights: tools/train.py'
            print(f'{name}  ({info.task}; {weights})')
        return 0
    names = []
    for item in args.names:
        if any(c in item for c in '*?['):
            # Recipes without released weights (CoOp, ...) are trained:
            # skipped, or named in one line when nothing else matches.
            infos = [model_zoo.get_model_info(n)
                     for n in model_zoo.list_models(item)]
            matched = [i.name for i in infos if i.weights]
            if infos and not matched:
                infos[0].require_weights()
        else:
            matched = [model_zoo.get_model_info(item).name]
        if not matched:
            raise model_zoo.UnknownModelError(
                f'{item!r} matches no model of the zoo; '
                f'{model_zoo.close_names(item, model_zoo.list_models())}')
        for name in matched:
            text_encoder = model_zoo.get_model_info(name).text_encoder
            names += [name] + ([text_encoder] if text_encoder else [])
    seen = set()
    for name in names:
        path = hub.get_checkpoint(
            name, home=args.home, endpoint=args.endpoint)
        if path not in seen:
            seen.add(path)
            print(f'{name}: {path}')
    return 0


if __name__ == '__main__':
    run_tool(main)
