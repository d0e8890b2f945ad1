# Copyright (c) mmprompt contributors. All rights reserved.
"""The command line the ``tools/model_converters`` scripts share: ``src
dst [--format] [--force]``, checked before any work (output path, side
files, source); a failure is one ``error: ...`` line and exit status 2."""
import argparse
import os.path as osp
import sys
from typing import Callable, List, Optional, Tuple, Union

from mmengine.logging import print_log

from mmprompt.utils.errors import UserError
from .common import (OUTPUT_FORMATS, check_output_path, load_source_checkpoint,
                     output_format, save_checkpoint_atomic, unwrap_state_dict)

#: ``convert(state_dict, **inputs) -> (converted, meta)``.
Convert = Callable[..., Tuple[dict, dict]]


def converter_parser(description: str) -> argparse.ArgumentParser:
    """A parser with ``src``, ``dst``, ``--format`` and ``--force``; the
    script adds its own options.

    Args:
        description (str): What the script converts.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        'src',
        help='source checkpoint (a state dict, possibly wrapped, a '
        'TorchScript archive or a .safetensors file), never modified')
    parser.add_argument('dst', help='output checkpoint')
    parser.add_argument(
        '--format',
        choices=OUTPUT_FORMATS,
        help='output format (default: from the extension of dst: '
        '.safetensors, tensors only with the meta in its metadata, else a '
        '.pth of tensors and plain data)')
    parser.add_argument(
        '--force', action='store_true', help='overwrite an existing dst')
    return parser


def run_converter(args: argparse.Namespace,
                  convert: Convert,
                  read_inputs: Optional[Callable[[], dict]] = None,
                  describe: Optional[Callable[[dict, dict], str]] = None
                  ) -> int:
    """Check the paths, read, convert and save; one line on a failure.

    Args:
        args (argparse.Namespace): From :func:`converter_parser`.
        convert (Callable): ``convert(state_dict, **inputs) -> (sd, meta)``.
        read_inputs (Callable, optional): Reads the side files into the
            keyword arguments of ``convert``. Defaults to None.
        describe (Callable, optional): ``describe(converted, meta)`` for the
            success line. Defaults to None.
    """
    try:
        output_format(args.dst, args.format)
        check_output_path(args.src, args.dst, args.force)
        inputs = read_inputs() if read_inputs is not None else {}
        state_dict = unwrap_state_dict(
            load_source_checkpoint(args.src), args.src)
        converted, meta = convert(state_dict, **inputs)
        meta['source_file'] = osp.basename(args.src)
        save_checkpoint_atomic(
            dict(state_dict=converted, meta=meta), args.dst, force=args.force)
    except (UserError, OSError) as e:
        sys.stderr.write(f'error: {e}\n')
        return 2
    what = describe(converted, meta) if describe else \
        f'{len(converted)} tensors'
    print_log(f'Saved {what} to {args.dst}', logger='current')
    return 0


#: ``--dtype`` choices -> ``torch`` dtype names.
DTYPES = {'fp32': 'float32', 'fp16': 'float16'}


def describe_arch(converted: dict, meta: dict) -> str:
    """``'N tensors (key=value, ...)'`` of a converted CLIP-like model."""
    arch = ', '.join(f'{k}={v}' for k, v in meta['arch'].items())
    return f'{len(converted)} tensors ({arch})'


def dtype_converter_cli(
    convert: Union[str, Callable],
    description: str,
    describe: Callable[[dict, dict], str] = describe_arch
) -> Tuple[Callable, Callable]:
    """``parse_args`` and ``main`` of a CLIP-like converter script: the
    shared arguments plus ``--dtype fp32|fp16``.

    Args:
        convert (str | Callable): ``convert(state_dict, dtype=...)``, or
            its key of :data:`mmprompt.converters.CONVERTERS`.
        description (str): The script's ``--help`` description.
        describe (Callable): For the success line. Defaults to
            :func:`describe_arch`.

    Returns:
        tuple: ``(parse_args, main)``, both taking ``argv``.
    """

    def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
        parser = converter_parser(description)
        parser.add_argument(
            '--dtype',
            choices=sorted(DTYPES),
            default='fp32',
            help='type of the saved weights (default: fp32)')
        return parser.parse_args(argv)

    def main(argv: Optional[List[str]] = None) -> int:
        args = parse_args(argv)
        import torch

        from . import CONVERTERS
        dtype = getattr(torch, DTYPES[args.dtype])
        fn = convert if callable(convert) else CONVERTERS[convert]
        return run_converter(
            args, lambda sd: fn(sd, dtype=dtype), describe=describe)

    return parse_args, main
