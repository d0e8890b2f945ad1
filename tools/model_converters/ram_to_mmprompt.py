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

The arguments every converter takes (``src dst [--format] [--force]``, the
format by the extension of dst) are :mod:`mmprompt.converters.cli`'s.
"""
import sys
from typing import List, Optional

from mmprompt.converters.cli import converter_parser, run_converter


def parse_args(argv: Optional[List[str]] = None):
    parser = converter_parser(
        'Convert a recognize-anything RAM / RAM++ checkpoint to mmprompt, '
        'with its tag names and thresholds.')
    parser.add_argument('--tag-list', help='ram_tag_list.txt')
    parser.add_argument('--tag-list-chinese', help='ram_tag_list_chinese.txt')
    parser.add_argument(
        '--thresholds',
        help='ram_tag_list_threshold.txt (default: 0.68 for every tag)')
    parser.add_argument(
        '--model',
        choices=['ram', 'ram_plus'],
        help='expected model (default: detected from the keys)')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    from mmprompt.converters import (convert_ram, read_tag_list,
                                     read_thresholds)

    def read_inputs():
        return dict(
            tag_list=read_tag_list(args.tag_list) if args.tag_list else None,
            tag_list_chinese=read_tag_list(args.tag_list_chinese,
                                           unique=False)
            if args.tag_list_chinese else None,
            thresholds=read_thresholds(args.thresholds)
            if args.thresholds else None)

    def convert(state_dict, **inputs):
        return convert_ram(state_dict, model=args.model, **inputs)

    def describe(converted, meta):
        return (f"{meta['model']} ({meta['num_classes']} tags, "
                f"{len(converted)} tensors, {len(meta['dropped'])} keys "
                'dropped)')

    return run_converter(args, convert, read_inputs, describe)


if __name__ == '__main__':
    sys.exit(main())
