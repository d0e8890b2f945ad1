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

from mmprompt.converters.cli import dtype_converter_cli


def describe(converted: dict, meta: dict) -> str:
    return f"{len(converted)} tensors (open_clip {meta['size']}, " \
        f"{meta['arch']['image_size']}px)"


parse_args, main = dtype_converter_cli(
    'open_clip',
    'Convert an open_clip CLIP ViT checkpoint (LAION-2B, DataComp, DFN, '
    'MetaCLIP) to mmprompt.', describe=describe)

if __name__ == '__main__':
    sys.exit(main())
