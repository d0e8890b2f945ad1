# Copyright (c) mmprompt contributors. All rights reserved.
"""Convert an OpenAI CLIP ViT checkpoint to mmprompt's format.

Example:
    python tools/model_converters/openai_clip_to_mmprompt.py \
        ViT-B-16.pt clip_vit-base-p16_openai.safetensors

The output format follows the extension of dst (``.safetensors``: tensors
only, the meta as JSON in its metadata; anything else: a ``.pth``), or
``--format``.
"""
import argparse
import os.path as osp
import sys
from typing import List, Optional

import torch
from mmengine.logging import print_log

from mmprompt.converters import (convert_openai_clip,
                                 load_source_checkpoint,
                                 save_checkpoint_atomic, unwrap_state_dict)
from mmprompt.converters.common import (OUTPUT_FORMATS, check_output_path,
                                        output_format)
from mmprompt.utils.errors import UserError

DTYPES = {'fp32': torch.float32, 'fp16': torch.float16}


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Convert an OpenAI CLIP ViT checkpoint (TorchScript '
        'archive or state dict, open_clip -quickgelu too) to mmprompt.')
    parser.add_argument('src', help='source checkpoint, never modified')
    parser.add_argument('dst', help='output checkpoint')
    parser.add_argument(
        '--format',
        choices=OUTPUT_FORMATS,
        help='output format (default: from the extension of dst: '
        '.safetensors, tensors only with the meta in its metadata, else a '
        '.pth of tensors and plain data)')
    parser.add_argument(
        '--force', action='store_true', help='overwrite an existing dst')
    parser.add_argument(
        '--dtype',
        choices=sorted(DTYPES),
        default='fp32',
        help='type of the saved weights (default: fp32)')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    try:
        output_format(args.dst, args.format)
        check_output_path(args.src, args.dst, args.force)
        state_dict = unwrap_state_dict(
            load_source_checkpoint(args.src), args.src)
        converted, meta = convert_openai_clip(
            state_dict, dtype=DTYPES[args.dtype])
        meta['source_file'] = osp.basename(args.src)
        save_checkpoint_atomic(
            dict(state_dict=converted, meta=meta), args.dst, force=args.force)
    except (UserError, OSError) as e:
        sys.stderr.write(f'error: {e}\n')
        return 1
    arch = ', '.join(f'{k}={v}' for k, v in meta['arch'].items())
    print_log(
        f'Saved {len(converted)} tensors to {args.dst} ({arch})',
        logger='current')
    return 0


if __name__ == '__main__':
    sys.exit(main())
