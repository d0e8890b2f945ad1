# Copyright (c) mmprompt contributors. All rights reserved.
"""Convert a RAM or RAM++ checkpoint to mmprompt's format.

The tag names and thresholds are embedded, so the output is all
:class:`RAMNormal` / :class:`RAMPlus` need.

Example:
    python tools/model_converters/ram_to_mmprompt.py \
        ram_swin_large_14m.pth ram_swin_large_14m.safetensors \
        --tag-list ram_tag_list.txt \
        --tag-list-chinese ram_tag_list_chinese.txt \
        --thresholds ram_tag_list_threshold.txt

The output format follows the extension of dst (``.safetensors``: tensors
only, the meta with the tag names in its metadata; anything else: a
``.pth``), or ``--format``.
"""
import argparse
import os.path as osp
import sys
from typing import List, Optional

from mmengine.logging import print_log

from mmprompt.converters import (ConverterError, convert_ram,
                                 load_source_checkpoint,
                                 save_checkpoint_atomic, unwrap_state_dict)
from mmprompt.converters.common import (OUTPUT_FORMATS, check_output_path,
                                        output_format)
from mmprompt.utils.errors import UserError


def read_lines(path: str) -> List[str]:
    """Lines of a UTF-8 file as RAM reads them (``splitlines``, kept as
    they are: RAM's Chinese names end in spaces)."""
    with open(path, encoding='utf-8') as f:
        return f.read().splitlines()


def read_tag_list(path: str, unique: bool = True) -> List[str]:
    """A tag list as RAM reads it, refusing blank lines (a tag ``''``) and,
    if ``unique``, repeated tags (two classes the tagger cannot tell
    apart). RAM's Chinese list repeats names for distinct English tags, so
    it is read with ``unique=False``."""
    if osp.isdir(path):
        raise ConverterError(f'{path}: is a directory, not a tag list')
    lines, seen = read_lines(path), {}
    for i, line in enumerate(lines, 1):
        name = line.strip()
        if not name:
            raise ConverterError(f'{path}:{i}: blank line (a tag with no '
                                 'name)')
        if unique and name in seen:
            raise ConverterError(f'{path}:{i}: the tag {name!r} repeats '
                                 f'line {seen[name]}')
        seen.setdefault(name, i)
    return lines


def read_thresholds(path: str) -> List[float]:
    """One float per line."""
    values = []
    for i, line in enumerate(read_lines(path)):
        try:
            values.append(float(line))
        except ValueError:
            raise ConverterError(
                f'{path}:{i + 1}: not a number: {line!r}') from None
    return values


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Convert a recognize-anything RAM / RAM++ checkpoint '
        'to mmprompt, with its tag names and thresholds.')
    parser.add_argument('src', help='source checkpoint, never modified')
    parser.add_argument('dst', help='output checkpoint')
    parser.add_argument('--tag-list', help='ram_tag_list.txt')
    parser.add_argument('--tag-list-chinese', help='ram_tag_list_chinese.txt')
    parser.add_argument(
        '--thresholds',
        help='ram_tag_list_threshold.txt (default: 0.68 for every tag)')
    parser.add_argument(
        '--model',
        choices=['ram', 'ram_plus'],
        help='expected model (default: detected from the keys)')
    parser.add_argument(
        '--format',
        choices=OUTPUT_FORMATS,
        help='output format (default: from the extension of dst: '
        '.safetensors, tensors only with the meta in its metadata, else a '
        '.pth of tensors and plain data)')
    parser.add_argument(
        '--force', action='store_true', help='overwrite an existing dst')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    try:
        output_format(args.dst, args.format)
        check_output_path(args.src, args.dst, args.force)
        tags = read_tag_list(args.tag_list) if args.tag_list else None
        tags_zh = read_tag_list(args.tag_list_chinese, unique=False) \
            if args.tag_list_chinese else None
        thresholds = read_thresholds(args.thresholds) \
            if args.thresholds else None
        state_dict = unwrap_state_dict(
            load_source_checkpoint(args.src), args.src)
        converted, meta = convert_ram(
            state_dict, tags, tags_zh, thresholds, model=args.model)
        meta['source_file'] = osp.basename(args.src)
        save_checkpoint_atomic(
            dict(state_dict=converted, meta=meta), args.dst, force=args.force)
    except (UserError, OSError, UnicodeDecodeError) as e:
        sys.stderr.write(f'error: {e}\n')
        return 1
    print_log(
        f"Saved {meta['model']} ({meta['num_classes']} tags, "
        f"{len(converted)} tensors, {len(meta['dropped'])} keys dropped) "
        f'to {args.dst}',
        logger='current')
    return 0


if __name__ == '__main__':
    sys.exit(main())
