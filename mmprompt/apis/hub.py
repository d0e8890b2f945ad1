# Copyright (c) mmprompt contributors. All rights reserved.
"""Official weights of the zoo's models: download, verify, convert once,
cache.

:func:`get_checkpoint` takes any name of :func:`mmprompt.apis.list_models`.
It fetches the model's official weights file (OpenAI's CLIP release,
recognize-anything's RAM / RAM++ release) and the data files its conversion
embeds (RAM's tag lists and thresholds), checks each against its published
SHA-256, converts them with the converter the zoo names, and stores one
``.safetensors`` file under ``<home>/checkpoints``: a cached model never goes
through pickle. Names that share weights share the cached file.

Downloads go to a temporary folder that is removed afterwards; a file that
is cut short or has another SHA-256 is discarded, so nothing half-done is
ever cached. Offline, put the file by hand in ``<home>/downloads/``: it is
checked and used as if downloaded. The cache is ``$MMPROMPT_HOME`` or
``~/.cache/mmprompt``; files get the umask's mode (0644 typically), so a
shared cache is readable by all.
"""
import hashlib
import json
import logging
import os
import os.path as osp
import shlex
import shutil
import socket
import tempfile
import urllib.error
import urllib.request
from typing import Dict, Optional

from mmengine.logging import print_log

from mmprompt.utils.errors import UserError
from mmprompt.utils.io import atomic_write, file_digest
from .model_zoo import (ModelInfo, get_configs_dir, get_model_info,
                        url_file_name)

__all__ = [
    'get_home', 'get_configs_dir', 'get_checkpoint', 'checkpoint_path',
    'tokenizer_path',
    'download', 'ChecksumError', 'DownloadError'
]

CHUNK = 1 << 20
#: Socket timeout of downloads, in seconds.
TIMEOUT = 60


class DownloadError(UserError, OSError):
    """A file could not be downloaded (offline, refused, cut short)."""


class ChecksumError(DownloadError):
    """A file does not have its published SHA-256."""


def get_home() -> str:
    """mmprompt's cache folder: ``$MMPROMPT_HOME`` or ``~/.cache/mmprompt``.

    Returns:
        str: The folder (not created here).
    """
    return os.environ.get('MMPROMPT_HOME') or osp.join(
        osp.expanduser('~'), '.cache', 'mmprompt')


def _reason(e: BaseException) -> str:
    if isinstance(e, urllib.error.HTTPError):
        return f'HTTP {e.code} {e.reason}'
    reason = getattr(e, 'reason', None) or e
    return str(reason).strip().splitlines()[0][:120] if str(reason) else \
        type(e).__name__


def download(url: str,
             dst: str,
             sha256: str,
             progress: bool = True,
             timeout: float = TIMEOUT,
             what_to_do: str = '') -> str:
    """Download ``url`` to ``dst`` if its SHA-256 is ``sha256``.

    The bytes go through :func:`mmprompt.utils.io.atomic_write`, hashed on
    the way; only a complete file with the right digest replaces ``dst``.
    On any failure the temporary file is removed.

    Args:
        url (str): Source URL.
        dst (str): Destination path.
        sha256 (str): Expected hex digest.
        progress (bool): Show a progress bar. Defaults to True.
        timeout (float): Socket timeout in seconds. Defaults to 60.
        what_to_do (str): Appended to the error message of a failed
            download. Defaults to ``''``.

    Returns:
        str: ``dst``.

    Raises:
        DownloadError: If the server cannot be reached, refuses, or the
            download stops short (one line: the URL and ``what_to_do``).
        ChecksumError: If the digest differs.
    """
    tail = f'; {what_to_do}' if what_to_do else ''
    h = hashlib.sha256()
    try:
        response = urllib.request.urlopen(url, timeout=timeout)
    except (urllib.error.URLError, socket.timeout, OSError) as e:
        raise DownloadError(
            f'cannot download {url} ({_reason(e)}){tail}') from None
    # An error inside the block removes the temporary file: nothing is kept.
    with response, atomic_write(dst) as f:
        total = int(response.headers.get('Content-Length') or 0)
        bar = None
        if progress and total > CHUNK:
            from mmengine.utils import ProgressBar
            bar = ProgressBar(total // CHUNK + 1)
        got = 0
        while True:
            try:
                block = response.read(CHUNK)
            except (OSError, ValueError) as e:  # reset, http.client
                raise DownloadError(
                    f'download of {url} failed after {got} bytes '
                    f'({_reason(e)}); nothing was kept{tail}') from None
            if not block:
                break
            f.write(block)
            h.update(block)
            got += len(block)
            if bar is not None:
                bar.update()
        if total and got != total:
            raise DownloadError(
                f'download of {url} stopped after {got} of {total} '
                f'bytes; nothing was kept{tail}')
        if h.hexdigest() != sha256.lower():
            raise ChecksumError(
                f'{url}: SHA-256 {h.hexdigest()} differs from the published '
                f'{sha256}; the download was discarded')
    return dst


def checkpoint_path(name: str, home: Optional[str] = None) -> str:
    """Where the converted checkpoint of ``name`` is cached:
    ``<home>/checkpoints/<weights file stem>_<sha256[:8]>.safetensors``,
    one file for all the names that share the weights."""
    info = get_model_info(name)
    stem = osp.splitext(info.weights_file)[0]
    tag = (info.sha256 or 'unverified')[:8]
    return osp.join(home or get_home(), 'checkpoints',
                    f'{stem}_{tag}.safetensors')


def tokenizer_path(name: str, home: Optional[str] = None) -> Optional[str]:
    """Where the tokenizer file of ``name`` is cached, beside its checkpoint
    (``<checkpoint stem>.tokenizer.json``); None for models whose row lists
    no ``tokenizer`` data file (their tokenizer ships with mmprompt)."""
    if 'tokenizer' not in get_model_info(name).data_files:
        return None
    return osp.splitext(checkpoint_path(name, home))[0] + '.tokenizer.json'


def manual_path(file_name: str, home: Optional[str] = None) -> str:
    """Where a file downloaded by hand is looked for:
    ``<home>/downloads/<file_name>``."""
    return osp.join(home or get_home(), 'downloads', file_name)


def _converter_key(info: ModelInfo) -> str:
    """The :data:`mmprompt.converters.CONVERTERS` key of a row's
    ``Converter``: a key itself, or (older rows) a converter command line,
    read as that script converts."""
    from mmprompt.converters import CONVERTERS
    if info.converter in CONVERTERS:
        return info.converter
    tool = shlex.split(info.converter)
    name = osp.basename(tool[0]) if tool else ''
    if name == 'openai_clip_to_mmprompt.py':
        return 'openai_clip'
    if name == 'ram_to_mmprompt.py':
        return tool[tool.index('--model') + 1] if '--model' in tool else 'ram'
    raise UserError(f'{info.metafile}: {info.name} names an unknown '
                    f'converter {info.converter!r}')


def _converter_tool(info: ModelInfo) -> list:
    """The converter's command line (script and options)."""
    from mmprompt.converters import CONVERTERS
    if info.converter in CONVERTERS:
        return [f'tools/model_converters/{info.converter}_to_mmprompt.py']
    return shlex.split(info.converter)


def _convert_command(info: ModelInfo, dst: str, home: str) -> str:
    """The converter command line for files downloaded by hand."""
    downloads = osp.join(home, 'downloads')
    args = ['python', *_converter_tool(info),
            osp.join(downloads, info.weights_file), dst]
    options = dict(
        tag_list='--tag-list',
        tag_list_chinese='--tag-list-chinese',
        thresholds='--thresholds')
    for key, entry in info.data_files.items():
        if key in options:
            args += [
                options[key],
                osp.join(downloads, url_file_name(entry['URL']))
            ]
    return ' '.join(shlex.quote(a) for a in args)


def _fetch(url: str, sha256: Optional[str], work: str, home: str,
           progress: bool, what_to_do: str) -> str:
    """A verified local copy of ``url``: the file in ``<home>/downloads`` if
    there is one, else a download into ``work``."""
    file_name = url_file_name(url)
    manual = manual_path(file_name, home)
    if not sha256:
        if osp.isfile(manual):
            return manual
        raise DownloadError(
            f'{url} has no published SHA-256 in the zoo, so mmprompt does '
            f'not download it; {what_to_do}')
    if osp.isfile(manual):
        got = file_digest(manual)
        if got != sha256.lower():
            raise ChecksumError(
                f'{manual}: SHA-256 {got} differs from the published '
                f'{sha256} of {url}; remove it or download it again')
        return manual
    print_log(f'Downloading {url}', logger='current', level=logging.INFO)
    return download(
        url,
        osp.join(work, file_name),
        sha256,
        progress=progress,
        what_to_do=what_to_do)


def _convert(info: ModelInfo, weights: str, data: Dict[str, str]):
    """Convert the downloaded files with the converter the zoo names."""
    from mmprompt.converters import (CONVERTERS, load_source_checkpoint,
                                     unwrap_state_dict)
    convert = CONVERTERS[_converter_key(info)]
    state_dict = unwrap_state_dict(load_source_checkpoint(weights), weights)
    return convert(state_dict, data)


def _stamp_path(path: str) -> str:
    return path + '.stamp.json'


def write_stamp(path: str) -> None:
    """Record the size and SHA-256 of a cached file beside it."""
    from mmprompt.utils.io import atomic_write
    stamp = dict(size=os.path.getsize(path), sha256=file_digest(path))
    with atomic_write(_stamp_path(path), 'w') as f:
        json.dump(stamp, f)


def cache_is_valid(path: str) -> bool:
    """Whether a cached checkpoint matches its stamp (size, then SHA-256).

    A file without a stamp (cached by an older version) is read once; if it
    loads it gets a stamp. A file that fails is removed, with a message,
    so that the caller fetches it again.
    """
    from mmprompt.utils.checkpoint import read_checkpoint
    from mmprompt.utils.errors import CheckpointError
    stamp_file = _stamp_path(path)
    reason = None
    try:
        with open(stamp_file, encoding='utf-8') as f:
            stamp = json.load(f)
    except (OSError, ValueError):
        stamp = None
    if stamp is None:
        try:
            read_checkpoint(path)
            write_stamp(path)
            return True
        except CheckpointError as e:
            reason = str(e)
    elif os.path.getsize(path) != stamp.get('size'):
        reason = (f'{os.path.getsize(path)} bytes, its stamp says '
                  f"{stamp.get('size')}")
    elif file_digest(path) != stamp.get('sha256'):
        reason = 'its SHA-256 differs from its stamp'
    if reason is None:
        return True
    print_log(
        f'The cached checkpoint {path} is damaged ({reason}); fetching it '
        'again',
        logger='current',
        level=logging.WARNING)
    for stale in (path, stamp_file):
        if osp.exists(stale):
            os.remove(stale)
    return False


def get_checkpoint(name: str,
                   home: Optional[str] = None,
                   progress: bool = True) -> str:
    """Path of the converted official checkpoint of a zoo model, fetched
    and converted once.

    Args:
        name (str): A name of :func:`mmprompt.apis.list_models`.
        home (str, optional): Cache folder. Defaults to :func:`get_home`.
        progress (bool): Show a progress bar. Defaults to True.

    Returns:
        str: The cached ``.safetensors`` checkpoint.

    Raises:
        UnknownModelError: For a name not in the zoo.
        DownloadError: Offline or cut short, in one line: the URL, where to
            put the file by hand, and the converter command.
        ChecksumError: If a file has another SHA-256 (nothing is cached).
    """
    from mmprompt.utils.checkpoint import save_checkpoint
    info = get_model_info(name)
    home = home or get_home()
    dst = checkpoint_path(info.name, home)
    tokenizer = tokenizer_path(info.name, home)
    if osp.isfile(dst) and cache_is_valid(dst) and (
            tokenizer is None or osp.isfile(tokenizer)):
        return dst
    what_to_do = (
        f'download it by hand to {osp.join(home, "downloads")}/ and run '
        f'again, or convert it yourself: {_convert_command(info, dst, home)}')
    os.makedirs(osp.join(home, 'downloads'), exist_ok=True)
    work = tempfile.mkdtemp(
        prefix='.fetch.', dir=osp.join(home, 'downloads'))
    try:
        weights = _fetch(info.weights, info.sha256, work, home, progress,
                         what_to_do)
        data = {
            key: _fetch(entry['URL'], entry.get('SHA256'), work, home,
                        progress, what_to_do)
            for key, entry in info.data_files.items()
        }
        converted, meta = _convert(info, weights, data)
        meta.update(
            source_file=info.weights_file,
            source_url=info.weights,
            source_sha256=info.sha256,
            zoo_name=info.name)
        save_checkpoint(converted, meta, dst, force=True)
        write_stamp(dst)
        if tokenizer is not None:
            # Checked against its SHA-256 (or put there by hand) like the
            # weights; kept, as the model reads it when built.
            with open(data['tokenizer'], 'rb') as src, atomic_write(
                    tokenizer, 'wb') as out:
                shutil.copyfileobj(src, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_log(f'Cached {info.name} at {dst}', logger='current')
    return dst
