# Copyright (c) mmprompt contributors. All rights reserved.
"""Convert an open_clip SigLIP / SigLIP 2 checkpoint to mmprompt's format.

Example:
    python tools/model_converters/siglip_to_mmprompt.py \
        open_clip_pytorch_model.bin siglip2_vit-base-p16.safetensors

The model's ``tokenizer.json`` is not converted: the zoo downloads it with
the weights; give its path to the config's ``tokenizer.tokenizer_file``.
The arguments every converter takes (``src dst [--format] [--force]``) are
:mod:`mmprompt.converters.cli`'s.
"""
import sys

from mmprompt.converters.cli import dtype_converter_cli

parse_args, main = dtype_converter_cli(
    'siglip',
    'Convert an open_clip SigLIP / SigLIP 2 checkpoint '
    '(open_clip_pytorch_model.bin or .safetensors) to mmprompt.')

if __name__ == '__main__':
    sys.exit(main())
