# Copyright (c) mmprompt contributors. All rights reserved.
"""Safe file output (atomic writes, output checks) and readers of user
files (line lists, JSON)."""
import contextlib
import errno
import hashlib
import json
import os
import os.path as osp
import re
import signal
import threading
from typing import IO, Any, Iterable, Iterator, List, Optional, Set

from .errors import InvalidInputError, OutputPathError

TEMP_SUFFIX = '.tmp-mmprompt'

#: Errors of the file system being written (also raised in a serializer).
WRITE_ERRNOS = frozenset(
    getattr(errno, name)
    for name in ('ENOSPC', 'EDQUOT', 'EFBIG', 'EIO', 'EROFS')
    if hasattr(errno, name))

_live_temps: Set[str] = set()
_lock = threading.Lock()
_previous_handler = None


def get_umask() -> int:
    """The process umask, read without changing it where the OS allows."""
    try:
        with open('/proc/self/status', encoding='ascii') as f:
            for line in f:
                if line.startswith('Umask:'):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def temp_path(path: str, pid: int = None) -> str:
    """The temporary name :func:`atomic_write` uses for ``path``."""
    pid = os.getpid() if pid is None else pid
    folder, name = osp.split(osp.abspath(path))
    return osp.join(folder, f'.{name}.{pid}{TEMP_SUFFIX}')


def remove_stale_temps(path: str) -> List[str]:
    """Remove the temporary files of ``path`` (an :func:`atomic_write`
    target) left by dead processes; return them."""
    folder, name = osp.split(osp.abspath(path))
    pattern = re.compile(
        re.escape(f'.{name}.') + r'(\d+)' + re.escape(TEMP_SUFFIX))
    removed = []
    try:
        entries = os.listdir(folder)
    except OSError:
        return removed
    for entry in entries:
        match = pattern.fullmatch(entry)
        if not match or pid_alive(int(match.group(1))):
            continue
        with contextlib.suppress(OSError):
            os.remove(osp.join(folder, entry))
            removed.append(osp.join(folder, entry))
    return removed


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host lives (this one does)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _on_sigterm(signum, frame) -> None:
    """Remove every live temporary file, then die of SIGTERM as before."""
    with _lock:
        for tmp in list(_live_temps):
            with contextlib.suppress(OSError):
                os.remove(tmp)
        _live_temps.clear()
    if callable(_previous_handler):
        _previous_handler(signum, frame)
        return
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def _install_sigterm_cleanup() -> None:
    """Install :func:`_on_sigterm` once, from the main thread only."""
    global _previous_handler
    if threading.current_thread() is not threading.main_thread():
        return
    current = signal.getsignal(signal.SIGTERM)
    if current is _on_sigterm or current == signal.SIG_IGN:
        return
    _previous_handler = current
    signal.signal(signal.SIGTERM, _on_sigterm)


@contextlib.contextmanager
def atomic_write(path: str,
                 mode: str = 'wb',
                 encoding: str = None) -> Iterator[IO]:
    """Open a temporary file beside ``path`` that replaces it when the block
    ends, with the umask's mode; on an exception (or SIGTERM) it is removed
    and ``path`` untouched. Call :func:`check_output` first.

    Args:
        path (str): The file to write.
        mode (str): ``'wb'`` or ``'w'``. Defaults to ``'wb'``.
        encoding (str, optional): Text encoding. Defaults to UTF-8.

    Yields:
        file: The open temporary file.

    Raises:
        OutputPathError: If the file system fails (a full disk...), the old
            file intact.
    """
    if mode not in ('w', 'wb'):
        raise InvalidInputError(f"atomic_write mode must be 'w' or 'wb', "
                                f'not {mode!r}')
    if mode == 'w' and encoding is None:
        encoding = 'utf-8'
    existed = osp.lexists(path)
    tmp = temp_path(path)
    _install_sigterm_cleanup()
    with _lock:
        _live_temps.add(tmp)
    try:
        try:
            os.makedirs(osp.dirname(tmp), exist_ok=True)
            remove_stale_temps(path)
            f = open(tmp, mode, encoding=encoding)
        except OSError as e:
            raise write_failure(path, e, existed) from e
        try:
            try:
                yield f
            except Exception as e:
                # An OutputPathError is a nested write's, named already.
                cause = None if isinstance(e, OutputPathError) else \
                    _write_error_of(e, osp.dirname(tmp))
                if cause is None:
                    raise
                raise write_failure(path, cause, existed) from e
            try:
                f.flush()
                os.fsync(f.fileno())
                f.close()
            except OSError as e:
                raise write_failure(path, e, existed) from e
        finally:
            # Closed in any case; a buffer a full disk refuses is dropped.
            with contextlib.suppress(OSError):
                f.close()
        try:
            os.chmod(tmp, 0o666 & ~get_umask())
            os.replace(tmp, path)
        except OSError as e:
            raise write_failure(path, e, existed) from e
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    finally:
        with _lock:
            _live_temps.discard(tmp)


def _write_error_of(error: BaseException, folder: str) -> Optional[OSError]:
    """The file-system error behind an exception of an
    :func:`atomic_write` block, if any: ``torch.save`` chains the
    ``OSError``, safetensors says ``(os error 28)``; a folder with no free
    space counts as a full disk."""
    seen = set()
    cause = error
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, OSError) and cause.errno in WRITE_ERRNOS:
            return cause
        rust = re.search(r'\(os error (\d+)\)', str(cause))
        if rust and int(rust.group(1)) in WRITE_ERRNOS:
            number = int(rust.group(1))
            return OSError(number, os.strerror(number))
        cause = cause.__cause__ or cause.__context__
    try:
        full = os.statvfs(folder).f_bavail == 0
    except (OSError, AttributeError):  # AttributeError: no statvfs
        full = False
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)) if full else None


def write_failure(path: str, error: OSError, existed: bool) -> OutputPathError:
    """The one line of a failed write of ``path`` (a full disk...).

    Args:
        path (str): The output.
        error (OSError): What the file system said.
        existed (bool): Whether ``path`` existed (and is left as it was).
    """
    reason = os.strerror(error.errno) if error.errno else str(error)
    reason = reason[:1].lower() + reason[1:]
    kept = 'the old file is untouched' if existed else 'nothing was written'
    return OutputPathError(f'could not write {path}: {reason}; {kept}')


def _inside(path: str, folder: str) -> bool:
    path, folder = osp.realpath(path), osp.realpath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def check_output(path: str,
                 force: bool = False,
                 inputs: Iterable[str] = (),
                 flag: str = '--force') -> None:
    """Refuse, before any work, an output path that would lose data or
    cannot be written.

    Args:
        path (str): The output file.
        force (bool): Replace an existing file. Defaults to False.
        inputs (Iterable[str]): Input files or folders the output may not be
            nor be inside. Defaults to ().
        flag (str): The option named in the message. Defaults to ``'--force'``.

    """
    if not path:
        raise OutputPathError('empty output path')
    if osp.isdir(path):
        raise OutputPathError(f'{path}: is a directory; give a file name')
    for item in inputs:
        if not osp.lexists(item):
            continue
        if osp.exists(path) and osp.exists(item) and osp.samefile(
                path, item):  # also a hard link of an input
            raise OutputPathError(
                f'{path}: is one of the inputs; write it elsewhere')
        if _inside(path, item) and osp.isdir(item):
            raise OutputPathError(
                f'{path}: is inside the input folder {item}; write it '
                'elsewhere')
        if osp.lexists(path) and _inside(path, item):
            raise OutputPathError(
                f'{path}: is one of the inputs; write it elsewhere')
    if osp.islink(path) and not osp.exists(path) and not force:
        raise OutputPathError(
            f'{path}: exists (a dangling symbolic link); pass {flag} to '
            'replace it')
    if osp.exists(path) and not force:
        raise OutputPathError(f'{path}: exists; pass {flag} to overwrite it')
    folder = osp.dirname(osp.abspath(path))
    while not osp.exists(folder):
        folder = osp.dirname(folder)
    if not osp.isdir(folder):
        raise OutputPathError(f'{path}: {folder} is not a folder')
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputPathError(f'{path}: {folder} is not writable')


def _read_text(path: str, what: str, noun: str) -> str:
    """A user's UTF-8 file; a byte-order mark is not part of the text."""
    if osp.isdir(path):
        raise InvalidInputError(f'{path}: is a directory, not a {what}')
    try:
        with open(path, encoding='utf-8-sig') as f:
            return f.read()
    except FileNotFoundError:
        raise InvalidInputError(f'{path}: no such {noun}') from None
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidInputError(f'{path}: cannot read ({e})') from None


def read_lines(path: str,
               skip_blank: bool = True,
               unique: bool = False,
               what: str = 'name',
               strip: bool = True) -> List[str]:
    """Read one item per line (categories, templates, tags, images).

    Args:
        path (str): A UTF-8 text file, with or without a byte-order mark.
        skip_blank (bool): Skip blank lines, else refuse them (where line
            numbers are indices). Defaults to True.
        unique (bool): Refuse a repeated item. Defaults to False.
        what (str): What a line holds, for messages. Defaults to ``'name'``.
        strip (bool): Strip each item; False keeps its spaces (RAM's
            Chinese tag names end in spaces). Defaults to True.

    Returns:
        list[str]: The items, in file order.

    Raises:
        InvalidInputError: If the file is unreadable, empty, or breaks
            ``skip_blank`` / ``unique``.
    """
    items, seen = [], {}
    raw = _read_text(path, 'text file', 'file').splitlines()
    for lineno, line in enumerate(raw, 1):
        item = line.strip() if strip else line
        if not item.strip():
            if skip_blank:
                continue
            raise InvalidInputError(f'{path}: line {lineno} is blank')
        if unique and item in seen:
            raise InvalidInputError(
                f'{path}: line {lineno} repeats the {what} {item!r} of line '
                f'{seen[item]}')
        seen.setdefault(item, lineno)
        items.append(item)
    if not items:
        raise InvalidInputError(f'{path}: holds no {what}')
    return items


def read_json(path: str, what: str = 'JSON file') -> Any:
    """Read a user's JSON file (categories, templates, few-shot lists).

    Args:
        path (str): A UTF-8 JSON file.
        what (str): What it is, for messages. Defaults to ``'JSON file'``.

    Returns:
        Any: The parsed value.

    Raises:
        InvalidInputError: If the file is missing, unreadable or not
            valid JSON.
    """
    text = _read_text(path, what, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise InvalidInputError(
            f'{path}: not valid JSON at line {e.lineno} column {e.colno}: '
            f'{e.msg}') from None


def file_digest(path: str,
                algorithm: str = 'sha256',
                chunk: int = 1 << 20) -> str:
    """The hex digest of a file, read in blocks.

    Args:
        path (str): The file.
        algorithm (str): A ``hashlib`` name. Defaults to ``'sha256'``.
        chunk (int): Bytes per read. Defaults to 1 MiB.
    """
    digest = hashlib.new(algorithm)
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk), b''):
            digest.update(block)
    return digest.hexdigest()
