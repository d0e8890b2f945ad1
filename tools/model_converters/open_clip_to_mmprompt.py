# Copyright (c) mmprompt contributors. All rights reserved.
"""Convert an open_clip CLIP ViT checkpoint to mmprompt's format.

Takes open_clip's released files: ``open_clip_pytorch_model.bin`` or
``open_clip_model.safetensors`` from the Hugging Face Hub (LAION-2B,
DataComp-1B, DFN) and MetaCLIP's ``.pt`` files.

Example:
    python tools/model_converters/open_clip_to_mmprompt.py \
        open_clip_pytorch_model.bin clip_vit-huge-p14_laion2b.safetensors

The arguments every converter takes (``src dst [--format] [--force]``, the
format by the extension of dst) are :mod:`mmprompt.converters.cli`'s. The
activation (GELU or QuickGELU) and preprocessing are not in the weights:
load the output with the config of the model (``configs/open_clip``).
"""
import sys
from typing import List, Optional

import torch

from mmprompt.converters import convert_open_clip
from mmprompt.converters.cli import converter_parser, run_converter

DTYPES = {'fp32': torch.float32, 'fp16': torch.float16}


def parse_args(argv: Optional[List[str]] = None):
    parser = converter_parser(
        'Convert an open_clip CLIP ViT checkpoint (LAION-2B, DataComp, DFN, '
        'MetaCLIP) to mmprompt.')
    parser.add_argument(
        '--dtype',
        choices=sorted(DTYPES),
        default='fp32',
        help='type of the saved weights (default: fp32)')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)

    def convert(state_dict):
        return convert_open_clip(state_dict, dtype=DTYPES[args.dtype])

    def describe(converted, meta):
        return f"{len(converted)} tensors (open_clip {meta['size']}, " \
            f"{meta['arch']['image_size']}px)"

    return run_converter(args, convert, describe=describe)


if __name__ == '__main__':
    sys.exit(main())
