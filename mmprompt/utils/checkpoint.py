# Copyright (c) mmprompt contributors. All rights reserved.
"""Reading, checking and writing checkpoints; a load never runs code.

Model classes declare, as regexes relative to the module (``re.fullmatch``),
the keys a checkpoint may hold without the model (``runtime_keys``, rebuilt
at run time) or lack (``loaded_elsewhere``, loaded by another module).
"""
import hashlib
import json
import math
import os.path as osp
import re
from collections import OrderedDict
from typing import (Callable, Dict, List, Optional, Pattern, Sequence, Tuple,
                    Union)

import torch
import torch.nn as nn

from .errors import CheckpointError
from .io import atomic_write, check_output
from .torchscript import is_torchscript

#: Metadata key of the JSON meta in a ``.safetensors`` file.
META_KEY = 'mmprompt_meta'

StateDict = Dict[str, torch.Tensor]


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:200] if text else type(e).__name__


def _read_safetensors(path: str) -> Tuple[dict, dict]:
    from safetensors import SafetensorError, safe_open
    try:
        with safe_open(path, framework='pt', device='cpu') as f:
            metadata = f.metadata() or {}
            tensors = OrderedDict((k, f.get_tensor(k)) for k in f.keys())
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f'{path}: not a readable safetensors file '
                              f'({_first_line(e)})') from None
    try:
        meta = json.loads(metadata.get(META_KEY, '{}'))
    except ValueError:
        raise CheckpointError(
            f'{path}: its {META_KEY!r} metadata is not JSON') from None
    return tensors, meta if isinstance(meta, dict) else {}


def _read_pth(path: str) -> object:
    if is_torchscript(path):
        raise CheckpointError(
            f'{path}: a TorchScript archive, not an mmprompt checkpoint; '
            f"{_DESCRIBER['torchscript']()}")
    try:
        # weights_only explicitly: never unpickle objects, whatever torch's
        # default or TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD say.
        return torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many kinds
        if 'weights_only' in str(e) or 'Unsupported global' in str(e):
            raise CheckpointError(
                f'{path}: holds Python objects that a weights-only load '
                'refuses to run; not an mmprompt checkpoint') from None
        raise CheckpointError(
            f'{path}: not a readable checkpoint, truncated or corrupt '
            f'({type(e).__name__}: {_first_line(e)})') from None


def split_checkpoint(obj: object,
                     name: str = 'checkpoint') -> Tuple[dict, dict]:
    """``(state_dict, meta)`` of a loaded checkpoint object, unwrapped
    (``'state_dict'`` / ``'model'``) and without a ``'module.'`` prefix;
    refused if it holds no tensors or non-tensor entries.

    Args:
        obj (object): What ``torch.load`` returned, or a state dict.
        name (str): The file, for messages.
    """
    if not isinstance(obj, dict):
        raise CheckpointError(
            f'{name}: not a checkpoint (a {type(obj).__name__}, not a dict '
            'of tensors)')
    meta = obj.get('meta') if isinstance(obj.get('meta'), dict) else {}
    obj = next((obj[key] for key in ('state_dict', 'model')
                if isinstance(obj.get(key), dict)), obj)
    state_dict = OrderedDict()
    for key, value in obj.items():
        if key == 'meta' and isinstance(value, dict):
            continue
        if not torch.is_tensor(value):
            raise CheckpointError(
                f'{name}: not a checkpoint: {str(key)[:60]!r} is a '
                f'{type(value).__name__}, not a tensor')
        key = str(key)
        if key.startswith('module.'):
            key = key[len('module.'):]
        state_dict[key] = value
    if not state_dict:
        raise CheckpointError(f'{name}: not a checkpoint: holds no tensors')
    return state_dict, meta


#: The extensions of a converted checkpoint: the zoo name plus one of them.
CHECKPOINT_EXTENSIONS = ('.pth', '.safetensors')


def find_checkpoint(path: str) -> str:
    """``path`` if it is a file, else the same name with the other
    extension of :data:`CHECKPOINT_EXTENSIONS` if that one is, else
    refused."""
    if osp.isfile(path):
        return path
    stem, ext = osp.splitext(path)
    if ext in CHECKPOINT_EXTENSIONS:
        for other in CHECKPOINT_EXTENSIONS:
            if other != ext and osp.isfile(stem + other):
                return stem + other
    raise CheckpointError(f'{path}: no such checkpoint file')


def read_checkpoint(path: str) -> Tuple[StateDict, dict]:
    """Read a ``.pth`` (weights only) or ``.safetensors`` checkpoint.

    Args:
        path (str): The file.

    Returns:
        tuple: ``(state_dict, meta)``; ``meta`` is ``{}`` if none.

    Raises:
        CheckpointError: If the file is not a readable dict of tensors.
    """
    if osp.isdir(path):
        raise CheckpointError(f'{path}: is a directory, not a checkpoint')
    path = find_checkpoint(path)
    if path.endswith('.safetensors'):
        return _read_safetensors(path)
    return split_checkpoint(_read_pth(path), path)


def _own_storage(state_dict: StateDict) -> StateDict:
    """Tensors safetensors accepts: contiguous, detached, none sharing
    storage with another (those are copied; the others are not)."""
    out, seen = OrderedDict(), set()
    for key, value in state_dict.items():
        value = value.detach()
        if value.numel():
            ptr = value.untyped_storage().data_ptr()
            if ptr in seen or not value.is_contiguous():
                value = value.contiguous().clone()
            seen.add(value.untyped_storage().data_ptr())
        out[key] = value
    return out


def save_checkpoint(state_dict: StateDict,
                    meta: Optional[dict],
                    path: str,
                    force: bool = False) -> None:
    """Write a checkpoint atomically: ``.safetensors`` (``meta`` as JSON
    under :data:`META_KEY`), else ``.pth`` (``dict(state_dict, meta)``).

    Args:
        state_dict (dict): Key to tensor.
        meta (dict, optional): JSON-serialisable data, so that a ``.pth``
            loads with ``weights_only``.
        path (str): Output file.
        force (bool): Replace an existing file. Defaults to False.
    """
    check_output(path, force=force)
    meta = dict(meta or {})
    if path.endswith('.safetensors'):
        from safetensors.torch import save_file
        with atomic_write(path) as f:
            # By path into the temporary file atomic_write fsyncs and
            # renames: tensor by tensor, never the whole file in memory.
            save_file(
                _own_storage(state_dict),
                f.name,
                metadata={META_KEY: json.dumps(meta)})
        return
    with atomic_write(path) as f:
        torch.save(dict(state_dict=OrderedDict(state_dict), meta=meta), f)


# -- what a state dict is -----------------------------------------------------
#: What a state dict is, told by :mod:`mmprompt.converters` (this module
#: knows no family) through :func:`set_checkpoint_describer`.
_DESCRIBER: Dict[str, Callable] = dict(
    describe=lambda sd, meta=None: '',
    mismatch=lambda name, sd, meta, model_sd: None,
    torchscript=lambda: 'convert it first')


def set_checkpoint_describer(describe: Callable[[StateDict, Optional[dict]],
                                                str],
                             mismatch: Callable[..., Optional[str]],
                             torchscript: Callable[[], str]) -> None:
    """Name what a refused checkpoint is.

    Args:
        describe (Callable): ``describe(sd, meta) -> str``, a noun phrase,
            ``''`` if unknown.
        mismatch (Callable): ``mismatch(name, sd, meta, model_sd) -> str |
            None``, one line for a file of the wrong family or size.
        torchscript (Callable): ``torchscript() -> str``, what to do with a
            TorchScript archive, e.g. ``'convert it with <script>'``.
    """
    _DESCRIBER.update(
        describe=describe, mismatch=mismatch, torchscript=torchscript)


def describe(sd: StateDict, meta: Optional[dict] = None) -> str:
    """What a state dict is, in words (``'a CLIP ViT-B/16 checkpoint'``),
    or ``''``: see :func:`set_checkpoint_describer`."""
    return _DESCRIBER['describe'](sd, meta)


def config_phrase(model_sd: StateDict) -> str:
    """What a model is, from its state dict: ``'CLIP ViT-B/16'``, or
    ``'this model'``."""
    what = describe(model_sd)
    for article in ('an ', 'a '):
        if what.startswith(article):
            what = what[len(article):]
    return what.replace(' checkpoint', '') or 'this model'


def _declared_keys(model: nn.Module, attr: str) -> List[Pattern]:
    """The ``attr`` regexes of the model's modules, anchored at each
    module's place."""
    return [
        re.compile(re.escape(f'{prefix}.' if prefix else '') + pattern)
        for prefix, module in model.named_modules()
        for pattern in getattr(type(module), attr, ())
    ]


def _drop_runtime_keys(sd: StateDict, model: nn.Module) -> StateDict:
    runtime = _declared_keys(model, 'runtime_keys')
    return OrderedDict((k, v) for k, v in sd.items()
                       if not any(r.fullmatch(k) for r in runtime))


def _listing(keys, n: int = 3) -> str:
    keys = sorted(keys)
    shown = ', '.join(keys[:n])
    return shown + (f' and {len(keys) - n} more' if len(keys) > n else '')


def check_state_dict(model: nn.Module, sd: StateDict, meta: dict,
                     name: str) -> None:
    """Refuse, in one line, a state dict that does not fit ``model``: of
    another family or size, shape, kind of dtype (floating-point, integer or
    boolean; the precision may differ) or with NaN / Inf weights."""
    model_sd = _drop_runtime_keys(model.state_dict(), model)
    message = _DESCRIBER['mismatch'](name, sd, meta, model_sd)
    if message:
        raise CheckpointError(message)
    shapes = [
        f'{k} {tuple(sd[k].shape)} vs {tuple(v.shape)}'
        for k, v in model_sd.items() if k in sd and sd[k].shape != v.shape
    ]
    if shapes:
        raise CheckpointError(
            f'{name}: does not fit this config: {len(shapes)} tensor(s) of '
            f'another shape (checkpoint vs model): {_listing(shapes, 2)}')
    for key, value in model_sd.items():
        if key in sd:
            _check_values(name, key, sd[key], value)


def _dtype_kind(dtype: torch.dtype) -> str:
    if dtype == torch.bool:
        return 'boolean'
    if dtype.is_floating_point or dtype.is_complex:
        return 'floating-point'
    return 'integer'


def _all_finite(tensor: torch.Tensor) -> bool:
    """Whether no value is NaN or infinite.

    A sum is finite only if every term is (an overflow can only make it look
    non-finite), and on CPU costs a seventh of ``isfinite().all()``, which
    runs only when the sum is not finite.
    """
    if tensor.dtype.is_floating_point and math.isfinite(
            float(tensor.sum(dtype=torch.float32))):
        return True
    return bool(torch.isfinite(tensor).all())


def _check_values(name: str, key: str, tensor: torch.Tensor,
                  target: torch.Tensor) -> None:
    """Refuse a tensor of another kind of dtype than the model's (integers
    where weights are floats give confident nonsense), or NaN / Inf."""
    got, want = _dtype_kind(tensor.dtype), _dtype_kind(target.dtype)
    if got != want:
        raise CheckpointError(
            f'{name}: {key} holds {got} values ({tensor.dtype}) where the '
            f'model has {want} ones ({target.dtype}); the file is broken: '
            'convert or download it again')
    if want == 'floating-point' and not _all_finite(tensor):
        bad = int((~torch.isfinite(tensor)).sum())
        raise CheckpointError(
            f'{name}: {key} holds {bad} NaN or infinite value(s) of '
            f'{tensor.numel()}; the weights are broken: convert or download '
            'them again')


def load_checkpoint(model: nn.Module,
                    checkpoint: Union[str, dict],
                    name: Optional[str] = None) -> dict:
    """Load weights into ``model`` strictly, or refuse in one line before
    any weight is copied.

    Args:
        model (nn.Module): The model, built from its config.
        checkpoint (str | dict): A checkpoint file, or a loaded one (a
            state dict, or a dict wrapping one with ``meta``).
        name (str, optional): What to call it in messages. Defaults to the
            file name, or ``'checkpoint'``.

    Returns:
        dict: ``dict(state_dict=..., meta=...)``, what MMEngine's hooks
        (``after_load_checkpoint``) expect.

    Raises:
        CheckpointError: If the file cannot be read, misses a key or has an
            unexpected one, or fails :func:`check_state_dict`.
    """
    if isinstance(checkpoint, str):
        name = name or checkpoint
        sd, meta = read_checkpoint(checkpoint)
    else:
        name = name or 'checkpoint'
        sd, meta = split_checkpoint(checkpoint, name)
    sd = _drop_runtime_keys(sd, model)
    check_state_dict(model, sd, meta, name)
    model_keys = set(_drop_runtime_keys(model.state_dict(), model))
    elsewhere = _declared_keys(model, 'loaded_elsewhere')
    missing = [
        k for k in model_keys - set(sd)
        if not any(r.fullmatch(k) for r in elsewhere)
    ]
    unexpected = list(set(sd) - model_keys)
    parts = [
        f'{len(keys)} {label} ({_listing(keys)})'
        for label, keys in (('key(s) missing', missing),
                            ('unexpected key(s)', unexpected)) if keys
    ]
    if parts:
        what = describe(sd, meta)
        raise CheckpointError(
            f"{name}: {what + ', ' if what else ''}does not fit "
            f"{config_phrase(model.state_dict())}: {'; '.join(parts)}")
    model.load_state_dict(sd, strict=False)
    return dict(state_dict=sd, meta=meta)


# -- MMEngine's loaders -------------------------------------------------------
def load_from_safetensors(filename: str, map_location=None) -> dict:
    """MMEngine ``CheckpointLoader`` backend for ``.safetensors`` files:
    ``dict(state_dict=..., meta=...)`` by :func:`read_checkpoint`."""
    state_dict, meta = read_checkpoint(filename)
    if map_location not in (None, 'cpu'):
        state_dict = OrderedDict(
            (k, v.to(map_location)) for k, v in state_dict.items())
    return dict(state_dict=state_dict, meta=meta)


def _mmengine_local(filename: str, map_location=None) -> dict:
    """MMEngine's local-file loader, weights only."""
    filename = osp.expanduser(filename)
    try:
        found = find_checkpoint(filename)
    except CheckpointError:
        raise FileNotFoundError(f'{filename} can not be found.') from None
    if found.endswith('.safetensors'):
        return load_from_safetensors(found, map_location)
    return _read_pth(found)


def _mmengine_http(filename: str,
                   map_location=None,
                   model_dir: Optional[str] = None,
                   progress: bool = False) -> dict:
    """MMEngine's URL loader with ``weights_only=True``."""
    return torch.hub.load_state_dict_from_url(
        filename,
        model_dir=model_dir,
        map_location=map_location or 'cpu',
        progress=progress,
        weights_only=True)


def install_mmengine_loaders() -> None:
    """Make MMEngine's loads (``load_from``, ``init_cfg=dict(
    type='Pretrained')``) weights-only, as :func:`read_checkpoint`'s: torch
    before 2.6 would otherwise unpickle anything. Run on import."""
    from mmengine.runner.checkpoint import CheckpointLoader
    CheckpointLoader.register_scheme(
        prefixes=r'(?!\w+://).*\.safetensors$',
        loader=load_from_safetensors,
        force=True)
    CheckpointLoader.register_scheme('', _mmengine_local, force=True)
    CheckpointLoader.register_scheme(('http://', 'https://'),
                                     _mmengine_http,
                                     force=True)


install_mmengine_loaders()


def tensors_fingerprint(
        named_tensors: Sequence[Tuple[str, torch.Tensor]]) -> str:
    """The SHA-256 hex digest of names, shapes, dtypes and values.

    Args:
        named_tensors (Sequence[tuple]): ``(name, tensor)`` pairs.
    """
    digest = hashlib.sha256()
    for name, tensor in named_tensors:
        t = tensor.detach().cpu().contiguous()
        digest.update(f'{name}:{tuple(t.shape)}:{t.dtype};'.encode())
        if t.numel():
            digest.update(t.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()
