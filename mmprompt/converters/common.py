# Copyright (c) mmprompt contributors. All rights reserved.
"""Checkpoint I/O around the pure converters: safe loading, side files,
atomic saving. Torch is imported where used, so ``--help`` needs none."""
import os.path as osp
from collections import OrderedDict
from typing import TYPE_CHECKING, Dict, List, Optional

from mmprompt.utils.errors import UserError

if TYPE_CHECKING:
    import torch

MMPROMPT_FORMAT = 'mmprompt'


class ConverterError(UserError):
    """A checkpoint cannot be converted; the message says why in one line."""


def with_meta(converted: Dict[str, 'torch.Tensor'], dropped: List[str],
              arch: dict, source: str,
              dtype: Optional['torch.dtype']) -> tuple:
    """``(tensors, meta)`` of a CLIP-like converter: floating tensors cast
    to ``dtype`` (None keeps them) and the meta (``format``, ``source``,
    ``arch``, ``dtype``, ``dropped``)."""
    if dtype is not None:
        converted = OrderedDict(
            (k, v.to(dtype) if v.is_floating_point() else v)
            for k, v in converted.items())
    dtypes = sorted(
        {str(v.dtype).replace('torch.', '')
         for v in converted.values()})
    return converted, dict(
        format=MMPROMPT_FORMAT,
        source=source,
        arch=arch,
        dtype=','.join(dtypes),
        dropped=dropped)


def load_source_checkpoint(path: str) -> dict:
    """What a checkpoint file holds, read without running any of its code
    (``weights_only=True``; TorchScript archives by
    :func:`mmprompt.utils.torchscript.read_torchscript`).

    Args:
        path (str): Path of the file.
    """
    import torch

    from mmprompt.utils.torchscript import is_torchscript, read_torchscript
    if not osp.isfile(path):
        raise ConverterError(f'{path}: no such file')
    try:
        if path.endswith('.safetensors'):
            from mmprompt.utils.checkpoint import read_checkpoint
            state_dict, meta = read_checkpoint(path)
            return dict(state_dict=state_dict, meta=meta)
        if is_torchscript(path):
            return read_torchscript(path)
    except UserError as e:
        raise ConverterError(str(e)) from None
    try:
        obj = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many kinds
        reason = str(e).strip().splitlines()[0] if str(e).strip() else ''
        if 'Unsupported global' in str(e) or \
                'was not an allowed global' in str(e):
            raise ConverterError(
                f'{path}: holds pickled Python objects, and loading it '
                'would run their code, which mmprompt never does; save '
                'its state dict (tensors only) and convert that') from None
        raise ConverterError(f'{path}: not a readable PyTorch checkpoint '
                             f'({type(e).__name__}: {reason[:200]})') from None
    if not isinstance(obj, dict):
        raise ConverterError(
            f'{path}: expected a dict of tensors, got {type(obj).__name__}')
    return obj


def unwrap_state_dict(obj: dict,
                      path: str = 'checkpoint') -> Dict[str, 'torch.Tensor']:
    """The tensors under ``'state_dict'`` or ``'model'``, without a
    ``'module.'`` prefix; an mmprompt checkpoint is refused.

    Args:
        obj (dict): What :func:`load_source_checkpoint` returned.
        path (str): Name used in error messages.
    """
    import torch
    meta = obj.get('meta') if isinstance(obj, dict) else None
    if isinstance(meta, dict) and meta.get('format') == MMPROMPT_FORMAT:
        raise ConverterError(
            f'{path}: already an mmprompt checkpoint (converted from '
            f"{meta.get('source', 'unknown')!r}); nothing to convert")
    for wrapper in ('state_dict', 'model'):
        if wrapper in obj and isinstance(obj[wrapper], dict):
            obj = obj[wrapper]
            break
    tensors = OrderedDict(
        (k[len('module.'):] if k.startswith('module.') else k, v)
        for k, v in obj.items() if torch.is_tensor(v))
    if not tensors:
        raise ConverterError(f'{path}: holds no tensors')
    return tensors


def save_checkpoint_atomic(checkpoint: dict,
                           dst: str,
                           force: bool = False) -> None:
    """:func:`mmprompt.utils.checkpoint.save_checkpoint` of a converted
    checkpoint (the format by the extension of ``dst``).

    Args:
        checkpoint (dict): ``state_dict`` (tensors) and ``meta`` (plain data).
        dst (str): Output path.
        force (bool): Overwrite an existing ``dst``. Defaults to False.
    """
    from mmprompt.utils.checkpoint import save_checkpoint
    save_checkpoint(
        checkpoint['state_dict'], checkpoint.get('meta'), dst, force=force)


OUTPUT_FORMATS = ('pth', 'safetensors')


def output_format(dst: str, fmt: Optional[str] = None) -> str:
    """``fmt``, checked against the extension of ``dst`` (which loaders go
    by), or the format that extension gives."""
    by_name = 'safetensors' if dst.endswith('.safetensors') else 'pth'
    if fmt is None:
        return by_name
    if fmt not in OUTPUT_FORMATS:
        raise ConverterError(f'--format must be one of {OUTPUT_FORMATS}, '
                             f'not {fmt!r}')
    if fmt != by_name:
        want = '.safetensors' if fmt == 'safetensors' else \
            'a name not ending in .safetensors (e.g. .pth)'
        raise ConverterError(
            f'{dst}: --format {fmt} needs {want}: loaders read the format '
            'from the extension')
    return fmt


def check_output_path(src: str, dst: str, force: bool) -> None:
    """Fail early, before any work, on an output path that would lose data.

    Args:
        src (str): Input path.
        dst (str): Output path.
        force (bool): Whether overwriting ``dst`` is allowed.
    """
    from mmprompt.utils.io import check_output
    if osp.isdir(src):
        raise ConverterError(f'{src}: is a directory; give the checkpoint '
                             'file')
    if not osp.isfile(src):
        raise ConverterError(f'{src}: no such file')
    if osp.exists(dst) and osp.samefile(src, dst):
        raise ConverterError(f'{dst}: output would overwrite the input')
    check_output(dst, force=force)


def read_tag_list(path: str, unique: bool = True) -> List[str]:
    """A RAM tag list, one name a line, kept exactly (its Chinese names end
    in spaces); a blank line is refused.

    Args:
        path (str): A UTF-8 text file.
        unique (bool): Refuse a repeated name (RAM's Chinese list repeats
            some). Defaults to True.
    """
    from mmprompt.utils.io import read_lines
    return read_lines(
        path, skip_blank=False, unique=unique, what='tag', strip=False)


def read_thresholds(path: str) -> List[float]:
    """RAM's per-class thresholds, one number a line.

    Args:
        path (str): A UTF-8 text file (``ram_tag_list_threshold.txt``).
    """
    from mmprompt.utils.io import read_lines
    lines = read_lines(path, skip_blank=False, what='threshold')
    values = []
    for lineno, line in enumerate(lines, 1):
        try:
            values.append(float(line))
        except ValueError:
            raise ConverterError(
                f'{path}: line {lineno} is not a number: {line!r}') from None
    return values
