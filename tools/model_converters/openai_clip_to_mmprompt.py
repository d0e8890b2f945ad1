# Copyright (c) mmprompt contributors. All rights reserved.
"""Convert an OpenAI CLIP ViT checkpoint to mmprompt's format.

Example:
    python tools/model_converters/openai_clip_to_mmprompt.py \
        ViT-B-16.pt clip_vit-base-p16_openai.safetensors

The arguments every converter takes (``src dst [--format] [--force]``, the
format by the extension of dst) are :mod:`mmprompt.converters.cli`'s.
"""
import sys
from typing import List, Optional

import torch

from mmprompt.converters import convert_openai_clip
from mmprompt.converters.cli import converter_parser, run_converter

DTYPES = {'fp32': torch.float32, 'fp16': torch.float16}


def parse_args(argv: Optional[List[str]] = None):
    parser = converter_parser(
        'Convert an OpenAI CLIP ViT checkpoint (TorchScript archive or '
        'state dict, open_clip -quickgelu too) to mmprompt.')
    parser.add_argument(
        '--dtype',
        choices=sorted(DTYPES),
        default='fp32',
        help='type of the saved weights (default: fp32)')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)

    def convert(state_dict):
        return convert_openai_clip(state_dict, dtype=DTYPES[args.dtype])

    def describe(converted, meta):
        arch = ', '.join(f'{k}={v}' for k, v in meta['arch'].items())
        return f'{len(converted)} tensors ({arch})'

    return run_converter(args, convert, describe=describe)


if __name__ == '__main__':
    sys.exit(main())
