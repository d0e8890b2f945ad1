# Copyright (c) mmprompt contributors. All rights reserved.
"""Read the weights of a TorchScript archive (OpenAI's CLIP) without
running it, as ``torch.jit.load`` runs its ``code/`` (``__setstate__``
among it): ``data.pkl`` is unpickled into tensors, containers and inert
records of the archive's classes, whose parameters and buffers are read from
``code/`` with :func:`ast.parse`."""
import ast
import io
import pickle
import sys
import zipfile
from collections import OrderedDict
from typing import Any, Dict, NamedTuple, Tuple

import torch

from .errors import CheckpointError

STORAGE_DTYPES = {
    'DoubleStorage': torch.float64,
    'FloatStorage': torch.float32,
    'HalfStorage': torch.float16,
    'BFloat16Storage': torch.bfloat16,
    'ComplexDoubleStorage': torch.complex128,
    'ComplexFloatStorage': torch.complex64,
    'LongStorage': torch.int64,
    'IntStorage': torch.int32,
    'ShortStorage': torch.int16,
    'CharStorage': torch.int8,
    'ByteStorage': torch.uint8,
    'BoolStorage': torch.bool,
}

#: ``torch.jit._pickle`` helpers that return their first argument.
_TYPE_TAGS = ('restore_type_tag', 'build_intlist', 'build_floatlist',
              'build_doublelist', 'build_boollist', 'build_tensorlist')


def is_torchscript(path: str) -> bool:
    """Whether ``path`` is a zip with ``constants.pkl``.

    Args:
        path (str): An existing file.

    Returns:
        bool: True for an archive ``torch.jit.save`` wrote.
    """
    try:
        with zipfile.ZipFile(path) as zf:
            return any(n.endswith('constants.pkl') for n in zf.namelist())
    except (zipfile.BadZipFile, OSError):
        return False  # not a zip; reading it as a checkpoint says more


class _ClassInfo(NamedTuple):
    """What a ``__torch__`` class's source declares."""
    qualname: str
    is_module: bool
    parameters: Tuple[str, ...]
    buffers: Tuple[str, ...]


class _Object:
    """An inert instance of an archive's class, holding its state."""
    info: _ClassInfo

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _StorageType(NamedTuple):
    """``torch.FloatStorage`` and friends."""
    dtype: torch.dtype


class _Storage(NamedTuple):
    """A storage read from ``data/<key>``, as a flat tensor."""
    key: str
    data: torch.Tensor


def _tagged(value: Any, *tags: Any) -> Any:
    return value


def _rebuild_tensor_v2(storage: _Storage, offset: int, size: tuple,
                       stride: tuple, *flags: Any) -> torch.Tensor:
    """A checked view of ``storage`` (flags and hooks are not state)."""
    if not isinstance(storage, _Storage):
        raise ValueError('a tensor without a storage')
    for dims in (size, stride):
        if not isinstance(dims, tuple) or not all(
                type(d) is int and d >= 0 for d in dims):
            raise ValueError(f'a tensor of size {size!r}, stride {stride!r}')
    if len(size) != len(stride) or type(offset) is not int or offset < 0:
        raise ValueError(f'a tensor of size {size!r}, stride {stride!r}, '
                         f'offset {offset!r}')
    end = offset + sum((n - 1) * s for n, s in zip(size, stride)) + 1
    if all(size) and end > storage.data.numel():
        raise ValueError(f'a tensor past the end of storage {storage.key}')
    return storage.data.as_strided(size, stride, offset)


def _rebuild_parameter(data: torch.Tensor, *flags: Any) -> torch.Tensor:
    if not torch.is_tensor(data):
        raise ValueError('a parameter that is not a tensor')
    return data


_REBUILDERS = {
    ('torch._utils', '_rebuild_tensor_v2'): _rebuild_tensor_v2,
    ('torch._utils', '_rebuild_parameter'): _rebuild_parameter,
    ('collections', 'OrderedDict'): OrderedDict,
}


class _Archive:
    """The members of an open archive ``zf`` (named ``path``)."""

    def __init__(self, zf: zipfile.ZipFile, path: str) -> None:
        self.zf, self.path = zf, path
        roots = [
            n[:-len('/data.pkl')] for n in zf.namelist()
            if n.count('/') == 1 and n.endswith('/data.pkl')
        ]
        if len(roots) != 1:
            raise self.error('a TorchScript archive without one '
                             '<name>/data.pkl; truncated or corrupt')
        self.root = roots[0]
        self.sources: Dict[str, ast.Module] = {}
        self.storages: Dict[str, _Storage] = {}

    def error(self, what: str) -> CheckpointError:
        return CheckpointError(f'{self.path}: {what}')

    def read(self, member: str) -> bytes:
        try:
            return self.zf.read(f'{self.root}/{member}')
        except KeyError:
            raise self.error(f'a TorchScript archive without {member}; '
                             'truncated or corrupt') from None

    def class_info(self, qualname: str) -> _ClassInfo:
        """``class <name>`` in ``code/<namespace as folders>.py``."""
        *namespace, name = qualname.split('.')
        found = [
            node for node in self._source('/'.join(namespace)).body
            if isinstance(node, ast.ClassDef) and node.name == name
        ]
        if len(found) != 1:
            raise self.error(f'a TorchScript archive without the class '
                             f'{qualname}; truncated or corrupt')
        declared: Dict[str, Tuple[str, ...]] = {}
        for node in found[0].body:
            if isinstance(node, ast.FunctionDef) and \
                    node.name == '__setstate__':
                raise self.error(
                    f'its class {qualname} restores itself with code '
                    '(__setstate__), and loading it would run that code, '
                    'which mmprompt never does; not a checkpoint to use')
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and \
                    isinstance(node.targets[0], ast.Name) and \
                    node.targets[0].id in ('__parameters__', '__buffers__'):
                declared[node.targets[0].id] = self._names(node, qualname)
        bases = [b.id for b in found[0].bases if isinstance(b, ast.Name)]
        return _ClassInfo(qualname, 'Module' in bases,
                          declared.get('__parameters__', ()),
                          declared.get('__buffers__', ()))

    def _source(self, namespace: str) -> ast.Module:
        if namespace not in self.sources:
            source = self.read(f'code/{namespace}.py')
            try:
                self.sources[namespace] = ast.parse(source.decode('utf-8'))
            except (SyntaxError, ValueError, RecursionError, MemoryError):
                raise self.error(
                    f'code/{namespace}.py in the TorchScript archive does '
                    'not parse; truncated or corrupt') from None
        return self.sources[namespace]

    def _names(self, node: ast.Assign, qualname: str) -> Tuple[str, ...]:
        """The strings of ``__parameters__ = ["weight", ...]``."""
        try:
            names = ast.literal_eval(node.value)
        except ValueError:
            names = None
        if not isinstance(names, list) or not all(
                isinstance(n, str) for n in names):
            raise self.error(
                f'{qualname}.{node.targets[0].id} in the TorchScript '
                'archive is not a list of names; truncated or corrupt')
        return tuple(names)

    def storage(self, pid: Any) -> _Storage:
        """The storage of a ``('storage', type, key, location, numel)`` id,
        read once per key (tensors share it)."""
        if not (isinstance(pid, tuple) and len(pid) == 5
                and pid[0] == 'storage' and isinstance(pid[1], _StorageType)
                and isinstance(pid[2], str) and type(pid[4]) is int
                and pid[4] >= 0):
            raise ValueError(f'an unknown persistent id {str(pid)[:60]}')
        _, (dtype, ), key, _, numel = pid
        if key in self.storages:
            storage = self.storages[key]
            if storage.data.dtype != dtype or storage.data.numel() != numel:
                raise ValueError(f'storage {key} read as two types')
            return storage
        member = f'{self.root}/data/{key}'
        nbytes = numel * torch.empty((), dtype=dtype).element_size()
        try:
            size = self.zf.getinfo(member).file_size
        except KeyError:
            raise self.error(f'a TorchScript archive without data/{key}; '
                             'truncated or corrupt') from None
        if size != nbytes:
            raise self.error(
                f'data/{key} in the TorchScript archive holds {size} bytes, '
                f'not the {nbytes} its tensors need; truncated or corrupt')
        buffer = torch.empty(nbytes, dtype=torch.uint8)
        with self.zf.open(member) as f:
            if nbytes and f.readinto(buffer.numpy()) != nbytes:
                raise self.error(f'data/{key} in the TorchScript archive is '
                                 'truncated or corrupt')
        storage = _Storage(key, buffer.view(dtype))
        self.storages[key] = storage
        return storage


class _ArchiveUnpickler(pickle.Unpickler):
    """Unpickles ``data.pkl``, refusing any other global."""

    def __init__(self, file: Any, archive: _Archive) -> None:
        super().__init__(file)
        self.archive = archive
        self.types: Dict[str, type] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == '__torch__' or module.startswith('__torch__.'):
            qualname = f'{module}.{name}'
            if qualname not in self.types:
                info = self.archive.class_info(qualname)
                self.types[qualname] = type(name, (_Object, ), dict(info=info))
            return self.types[qualname]
        if (module, name) in _REBUILDERS:
            return _REBUILDERS[module, name]
        if module == 'torch' and name in STORAGE_DTYPES:
            return _StorageType(STORAGE_DTYPES[name])
        if module == 'torch.jit._pickle' and name in _TYPE_TAGS:
            return _tagged
        raise self.archive.error(
            f'its data refers to {module}.{name}, which is no tensor or '
            'module: loading it would run code, which mmprompt never does; '
            'not a checkpoint to use')

    def persistent_load(self, pid: Any) -> _Storage:
        return self.archive.storage(pid)


def _collect(obj: _Object,
             prefix: str,
             out: Dict[str, torch.Tensor],
             archive: _Archive,
             parents: Tuple[int, ...] = ()) -> None:
    """Add parameters, buffers, submodules' (``state_dict``'s order)."""
    if id(obj) in parents:
        raise archive.error(f'{prefix[:-1]} in the TorchScript archive '
                            'contains itself; truncated or corrupt')
    state = getattr(obj, 'state', None)
    if not isinstance(state, dict):
        raise archive.error(
            f'{obj.info.qualname} in the TorchScript archive has no '
            'attributes; truncated or corrupt')
    for name in (*obj.info.parameters, *obj.info.buffers):
        value = state.get(name)
        if value is None:
            continue
        if not torch.is_tensor(value):
            raise archive.error(f'{prefix}{name} in the TorchScript archive '
                                f'is a {type(value).__name__}, not a tensor')
        out[prefix + name] = value
    for name, value in state.items():
        if isinstance(value, _Object) and value.info.is_module:
            _collect(value, f'{prefix}{name}.', out, archive,
                     parents + (id(obj), ))


def read_torchscript(path: str) -> Dict[str, torch.Tensor]:
    """``torch.jit.load(path).state_dict()``, without running its code.

    Args:
        path (str): A file :func:`is_torchscript` accepts.

    Returns:
        OrderedDict: Key to tensor; storages shared as in the archive.

    Raises:
        CheckpointError: If the archive refers to anything but tensors,
            containers and its own classes, has a class that restores
            itself with code, or is truncated or corrupt.
    """
    try:
        with zipfile.ZipFile(path) as zf:
            return _read_archive(_Archive(zf, path))
    except CheckpointError:
        raise
    except Exception as e:  # noqa: BLE001 - corrupt pickles fail many ways
        text = str(e).strip().splitlines()[0][:200] if str(e).strip() else ''
        raise CheckpointError(
            f'{path}: a TorchScript archive that is truncated or corrupt '
            f'({type(e).__name__}{": " + text if text else ""})') from None


def _read_archive(archive: _Archive) -> Dict[str, torch.Tensor]:
    if f'{archive.root}/byteorder' in archive.zf.namelist() and \
            archive.read('byteorder').decode() != sys.byteorder:
        raise archive.error('a TorchScript archive written on a machine of '
                            'another byte order')
    data = io.BytesIO(archive.read('data.pkl'))
    root = _ArchiveUnpickler(data, archive).load()
    if not (isinstance(root, _Object) and root.info.is_module):
        raise archive.error('a TorchScript archive that holds no module')
    out: Dict[str, torch.Tensor] = OrderedDict()
    _collect(root, '', out, archive)
    return out
