# Copyright (c) mmprompt contributors. All rights reserved.
"""Checkpoint I/O around the converters.

The converters themselves are pure functions over state dicts (the rule
engine is :mod:`mmprompt.converters.rules`, Swin's layout helpers sit beside
the RAM converter in :mod:`mmprompt.converters.swin`). This module reads
what they take (source checkpoints without running their code, RAM's tag
lists and thresholds) and writes what they give (atomically, the format by
the extension); :mod:`mmprompt.converters.cli` is the command line both
``tools/model_converters`` scripts share. Torch is imported where a
checkpoint is read, so that a script's ``--help`` does without it.
"""
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
    """A converter's result: its tensors cast to ``dtype`` (floating ones;
    None keeps the source's) and the meta every mmprompt checkpoint of a
    CLIP-like model carries (``format``, ``source``, ``arch``, ``dtype``,
    the ``dropped`` source keys).

    Returns:
        tuple: ``(OrderedDict, meta)``.
    """
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
    """Load a source checkpoint without modifying it.

    Plain checkpoints are read with ``weights_only=True``. TorchScript
    archives (OpenAI's released ``ViT-B-16.pt`` and friends) are read by
    :func:`mmprompt.utils.torchscript.read_torchscript`, which runs none of
    their code.

    Args:
        path (str): Path of the file.

    Returns:
        dict: What the file holds (a state dict, or a dict wrapping one).

    Raises:
        ConverterError: If the file is missing or is not a readable PyTorch
            checkpoint.
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
        raise ConverterError(
            f'{path}: not a readable PyTorch checkpoint '
            f'({type(e).__name__}: {reason[:200]})') from None
    if not isinstance(obj, dict):
        raise ConverterError(
            f'{path}: expected a dict of tensors, got {type(obj).__name__}')
    return obj


def unwrap_state_dict(obj: dict,
                      path: str = 'checkpoint') -> Dict[str, 'torch.Tensor']:
    """Return the tensors of a checkpoint, whatever wraps them.

    Unwraps ``'state_dict'`` and ``'model'`` entries and strips a
    ``'module.'`` prefix (DataParallel). A checkpoint written by mmprompt's
    own converters is rejected: it is already converted.

    Args:
        obj (dict): What :func:`load_source_checkpoint` returned.
        path (str): Name used in error messages.

    Returns:
        dict: Key to tensor.
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
    tensors = OrderedDict()
    for k, v in obj.items():
        if not torch.is_tensor(v):
            continue
        tensors[k[len('module.'):] if k.startswith('module.') else k] = v
    if not tensors:
        raise ConverterError(f'{path}: holds no tensors')
    return tensors


def save_checkpoint_atomic(checkpoint: dict,
                           dst: str,
                           force: bool = False) -> None:
    """Write a converted checkpoint, ``.safetensors`` or ``.pth`` by the
    extension of ``dst``, atomically and with the umask's mode.

    See :func:`mmprompt.utils.checkpoint.save_checkpoint`: a ``.pth`` holds
    ``dict(state_dict=..., meta=...)``; a ``.safetensors`` file the tensors
    and the meta as JSON under the metadata key ``'mmprompt_meta'``.

    Args:
        checkpoint (dict): ``state_dict`` (tensors) and ``meta``
            (JSON-serialisable: dicts, lists, strings, numbers).
        dst (str): Output path.
        force (bool): Overwrite an existing ``dst``. Defaults to False.

    Raises:
        UserError: If ``dst`` exists and ``force`` is False, or cannot be
            written.
    """
    from mmprompt.utils.checkpoint import save_checkpoint
    save_checkpoint(
        checkpoint['state_dict'],
        checkpoint.get('meta'),
        dst,
        force=force)


OUTPUT_FORMATS = ('pth', 'safetensors')


def output_format(dst: str, fmt: Optional[str] = None) -> str:
    """The format a converter writes ``dst`` in: ``fmt`` if given (it must
    agree with the extension, which is what loaders go by), else
    ``'safetensors'`` for a ``.safetensors`` name and ``'pth'`` otherwise.

    Raises:
        ConverterError: If ``fmt`` and the extension disagree.
    """
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
    # An existing file, a dangling symbolic link, a directory or an
    # unwritable folder: refused with one line.
    check_output(dst, force=force)


def read_tag_list(path: str, unique: bool = True) -> List[str]:
    """A RAM tag list as recognize-anything reads it: one name a line, kept
    exactly (its Chinese names end in spaces).

    Read with :func:`mmprompt.utils.io.read_lines`: a blank line (a tag with
    no name) is refused, and with ``unique`` a repeated name (two classes
    the tagger cannot tell apart). RAM's Chinese list repeats names for
    distinct English tags, so it is read with ``unique=False``.

    Args:
        path (str): A UTF-8 text file.
        unique (bool): Refuse a repeated name. Defaults to True.

    Returns:
        list[str]: The names, one per class.

    Raises:
        InvalidInputError: A one-line message naming the file and line.
    """
    from mmprompt.utils.io import read_lines
    return read_lines(
        path, skip_blank=False, unique=unique, what='tag', strip=False)


def read_thresholds(path: str) -> List[float]:
    """RAM's per-class thresholds, one number a line.

    Args:
        path (str): A UTF-8 text file (``ram_tag_list_threshold.txt``).

    Returns:
        list[float]: The thresholds, one per class.

    Raises:
        UserError: If a line is blank or not a number (one line naming it).
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
