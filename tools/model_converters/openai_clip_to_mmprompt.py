# Copyright (c) mmprompt contributors. All rights reserved.
"""Convert an OpenAI CLIP ViT checkpoint to mmprompt's format.

Example:
    python tools/model_converters/openai_clip_to_mmprompt.py \
        ViT-B-16.pt clip_vit-base-p16.safetensors

The arguments every converter takes (``src dst [--format] [--force]``, the
format by the extension of dst) are :mod:`mmprompt.converters.cli`'s.
"""
import sys

from mmprompt.converters.cli import dtype_converter_cli

parse_args, main = dtype_converter_cli(
    'openai_clip',
    'Convert an OpenAI CLIP ViT checkpoint (TorchScript archive or '
    'state dict, open_clip -quickgelu too) to mmprompt.')

if __name__ == '__main__':
    sys.exit(main())
