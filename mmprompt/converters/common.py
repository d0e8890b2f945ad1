# Copyright (c) mmprompt contributors. All rights reserved.
"""Pieces shared by every checkpoint converter.

Converters are pure functions over state dicts; this module holds the I/O
around them (safe loading, unwrapping, atomic saving) and the declarative rule
engine that maps every source key or drops it on purpose.
"""
import os
import os.path as osp
import re
import warnings
import zipfile
from collections import OrderedDict
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import torch

from mmprompt.utils.errors import UserError

Transform = Optional[Callable[[torch.Tensor], torch.Tensor]]
Rule = Tuple[str, str, Transform]

MMPROMPT_FORMAT = 'mmprompt'


class ConverterError(UserError):
    """A checkpoint cannot be converted; the message says why in one line."""


def _is_torchscript(path: str) -> bool:
    """Whether ``path`` is a TorchScript archive (a zip with constants.pkl)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return any(n.endswith('constants.pkl') for n in zf.namelist())


def load_source_checkpoint(path: str) -> dict:
    """Load a source checkpoint without modifying it.

    Plain checkpoints are read with ``weights_only=True``. TorchScript
    archives (OpenAI's released ``ViT-B-16.pt`` and friends) are read with
    ``torch.jit.load`` and turned into a state dict.

    Args:
        path (str): Path of the file.

    Returns:
        dict: What the file holds (a state dict, or a dict wrapping one).

    Raises:
        ConverterError: If the file is missing or is not a readable PyTorch
            checkpoint.
    """
    if not osp.isfile(path):
        raise ConverterError(f'{path}: no such file')
    if path.endswith('.safetensors'):
        from mmprompt.utils.checkpoint import read_checkpoint
        try:
            state_dict, meta = read_checkpoint(path)
        except UserError as e:
            raise ConverterError(str(e)) from None
        return dict(state_dict=state_dict, meta=meta)
    try:
        if _is_torchscript(path):
            with warnings.catch_warnings():
                # torch.jit.load's deprecation notice; OpenAI's releases
                # exist only as TorchScript archives.
                warnings.simplefilter('ignore', FutureWarning)
                module = torch.jit.load(path, map_location='cpu')
            return {k: v for k, v in module.state_dict().items()}
        obj = torch.load(path, map_location='cpu', weights_only=True)
    except ConverterError:
        raise
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
                      path: str = 'checkpoint') -> Dict[str, torch.Tensor]:
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


def apply_rules(
    state_dict: Dict[str, torch.Tensor],
    rules: Sequence[Rule],
    drop: Iterable[str] = (),
    model_name: str = 'model',
) -> Tuple['OrderedDict[str, torch.Tensor]', List[str]]:
    """Map every key of ``state_dict`` by the first rule whose regex matches.

    Args:
        state_dict (dict): Source tensors.
        rules (Sequence[tuple]): ``(pattern, replacement, transform)``: an
            anchored regex (``re.fullmatch``), its replacement (``\\1``
            groups allowed) and an optional tensor transform.
        drop (Iterable[str]): Regexes (``re.fullmatch``) of keys dropped on
            purpose.
        model_name (str): Name used in error messages.

    Returns:
        tuple: The converted ``OrderedDict`` and the sorted dropped keys.

    Raises:
        ConverterError: If a key is neither mapped nor dropped, or two keys
            map to the same target.
    """
    compiled = [(re.compile(p), r, t) for p, r, t in rules]
    dropped_res = [re.compile(p) for p in drop]
    out = OrderedDict()
    dropped, unknown = [], []
    for key, value in state_dict.items():
        for regex, repl, transform in compiled:
            if regex.fullmatch(key):
                new_key = regex.sub(repl, key)
                if new_key in out:
                    raise ConverterError(
                        f'{model_name}: two keys map to {new_key!r}')
                out[new_key] = transform(value) if transform else value
                break
        else:
            if any(r.fullmatch(key) for r in dropped_res):
                dropped.append(key)
            else:
                unknown.append(key)
    if unknown:
        shown = ', '.join(unknown[:10])
        more = f' and {len(unknown) - 10} more' if len(unknown) > 10 else ''
        raise ConverterError(
            f'not a {model_name} checkpoint: {len(unknown)} unknown '
            f'key(s): {shown}{more}')
    return out, sorted(dropped)


def swin_unfold_reduction(weight: torch.Tensor) -> torch.Tensor:
    """Reorder a PatchMerging ``reduction`` weight for ``nn.Unfold`` input.

    The Microsoft layout concatenates the 2x2 neighbours on channels as
    ``[x(0,0), x(1,0), x(0,1), x(1,1)]`` (offsets ``(row, col)``), one block
    of C channels each. MMPreTrain's PatchMerging uses ``nn.Unfold``, whose
    output is channel-major: index ``c * 4 + row * 2 + col``. The input
    columns are permuted accordingly.

    Args:
        weight (Tensor): ``(out, 4C)`` in the Microsoft layout.

    Returns:
        Tensor: ``(out, 4C)`` in MMPreTrain's layout.
    """
    out_ch, in_ch = weight.shape
    # Microsoft block b holds offset (b % 2, b // 2); unfold orders offsets
    # by row * 2 + col, i.e. Microsoft blocks [0, 2, 1, 3], channel-major.
    w = weight.reshape(out_ch, 4, in_ch // 4)[:, [0, 2, 1, 3], :]
    return w.transpose(1, 2).reshape(out_ch, in_ch).contiguous()


def swin_unfold_norm(vector: torch.Tensor) -> torch.Tensor:
    """Reorder a PatchMerging ``norm`` weight or bias like
    :func:`swin_unfold_reduction`.

    Args:
        vector (Tensor): ``(4C,)`` in the Microsoft layout.

    Returns:
        Tensor: ``(4C,)`` in MMPreTrain's layout.
    """
    in_ch = vector.shape[0]
    v = vector.reshape(4, in_ch // 4)[[0, 2, 1, 3], :]
    return v.transpose(0, 1).reshape(in_ch).contiguous()


def swin_relative_position_index(window_size: int) -> torch.Tensor:
    """The ``relative_position_index`` buffer of a Swin window attention.

    Entry ``(i, j)`` is ``(hi - hj + ws - 1) * (2 ws - 1) + (wi - wj + ws -
    1)`` for the row-major positions ``i = (hi, wi)`` and ``j = (hj, wj)``
    of a ``ws x ws`` window: Microsoft's formula, and the values of
    MMPreTrain's (persistent) buffer.

    Args:
        window_size (int): Side of the window.

    Returns:
        torch.Tensor: ``(ws * ws, ws * ws)``, int64.
    """
    coords = torch.arange(window_size)
    rows = coords.repeat_interleave(window_size)
    cols = coords.repeat(window_size)
    rel_rows = rows[:, None] - rows[None, :] + window_size - 1
    rel_cols = cols[:, None] - cols[None, :] + window_size - 1
    return rel_rows * (2 * window_size - 1) + rel_cols


def swin_window_size(bias_table: torch.Tensor) -> int:
    """Window side of a Swin ``relative_position_bias_table``.

    Args:
        bias_table (Tensor): ``((2 ws - 1) ** 2, heads)``.

    Returns:
        int: ``ws``.

    Raises:
        ConverterError: If the first dimension is not an odd square.
    """
    side = round(bias_table.shape[0]**0.5)
    if side * side != bias_table.shape[0] or side % 2 == 0:
        raise ConverterError(
            'relative_position_bias_table has '
            f'{bias_table.shape[0]} rows, not (2 * window - 1) ** 2')
    return (side + 1) // 2


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
