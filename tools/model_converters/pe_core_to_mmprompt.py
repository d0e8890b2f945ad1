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

from mmprompt.converters.cli import dtype_converter_cli

parse_args, main = dtype_converter_cli(
    'pe_core',
    "Convert a PE-Core checkpoint (open_clip's layout, .safetensors or "
    'state dict) to mmprompt.')

if __name__ == '__main__':
    sys.exit(main())
