# Copyright (c) mmprompt contributors. All rights reserved.
"""Convert a PE-Core checkpoint in open_clip's layout to mmprompt's format.

Example:
    python tools/model_converters/pe_core_to_mmprompt.py \
        open_clip_model.safetensors pe-core_vit-base-p16.safetensors

The source is the ``open_clip_model.safetensors`` (or
``open_clip_pytorch_model.bin``) of ``timm/PE-Core-B-16`` or
``timm/PE-Core-L-14-336`` on the Hugging Face Hub. The arguments every
converter takes (``src dst [--format] [--force]``, the format by the
extension of dst) are :mod:`mmprompt.converters.cli`'s.
"""
import sys
from typing import List, Optional

import torch

from mmprompt.converters import convert_pe_core
from mmprompt.converters.cli import converter_parser, run_converter

DTYPES = {'fp32': torch.float32, 'fp16': torch.float16}


def parse_args(argv: Optional[List[str]] = None):
    parser = converter_parser(
        "Convert a PE-Core checkpoint (open_clip's layout, .safetensors or "
        'state dict) to mmprompt.')
    parser.add_argument(
        '--dtype',
        choices=sorted(DTYPES),
        default='fp32',
        help='type of the saved weights (default: fp32)')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)

    def convert(state_dict):
        return convert_pe_core(state_dict, dtype=DTYPES[args.dtype])

    def describe(converted, meta):
        arch = ', '.join(f'{k}={v}' for k, v in meta['arch'].items())
        return f'{len(converted)} tensors ({arch})'

    return run_converter(args, convert, describe=describe)


if __name__ == '__main__':
    sys.exit(main())
