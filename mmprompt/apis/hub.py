# Copyright (c) mmprompt contributors. All rights reserved.
"""Official weights of the zoo's models: download (or take from
``<home>/downloads/``, or a mirror), check the published SHA-256, convert
once and cache one ``.safetensors`` file, so a cached model never goes
through pickle. Nothing half-done is ever cached."""
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
import urllib.parse
import urllib.request
from typing import Dict, List, Optional, Tuple

from mmengine.logging import print_log

from mmprompt.utils.errors import UserError
from mmprompt.utils.io import atomic_write, file_digest
from mmprompt.utils.progress import Progress
from .model_zoo import (ModelInfo, get_configs_dir, get_model_info,
                        url_file_name)

__all__ = [
    'get_home', 'get_configs_dir', 'get_checkpoint', 'checkpoint_path',
    'download', 'mirror_url', 'tokenizer_path', 'ChecksumError',
    'DownloadError'
]

CHUNK = 1 << 20
#: Socket timeout of downloads, in seconds.
TIMEOUT = 60
#: The environment variable naming a mirror of the downloads.
ENV_ENDPOINT = 'MMPROMPT_ENDPOINT'


class DownloadError(UserError, OSError):
    """A file could not be downloaded (offline, refused, cut short)."""


class ChecksumError(DownloadError):
    """A file does not have its published SHA-256."""


def get_home() -> str:
    """mmprompt's cache folder (not created here): ``$MMPROMPT_HOME`` or
    ``~/.cache/mmprompt``."""
    return os.environ.get('MMPROMPT_HOME') or osp.join(
        osp.expanduser('~'), '.cache', 'mmprompt')


def mirror_url(url: str, endpoint: Optional[str] = None) -> str:
    """The URL to download ``url`` from: the mirror ``endpoint`` replaces
    its scheme and host (a ``{host}`` in it stands for the original host).

    Args:
        url (str): The official URL.
        endpoint (str, optional): The mirror; ``''`` for none. Defaults to
            ``$MMPROMPT_ENDPOINT``, else none.

    Raises:
        UserError: If the endpoint is not an http(s) or file URL.
    """
    if endpoint is None:
        endpoint = os.environ.get(ENV_ENDPOINT, '')
    endpoint = endpoint.strip()
    if not endpoint:
        return url
    parts = urllib.parse.urlsplit(url)
    base = endpoint.replace('{host}', parts.netloc)
    scheme = urllib.parse.urlsplit(base)
    if not (scheme.scheme in ('http', 'https') and scheme.netloc
            or scheme.scheme == 'file' and scheme.path):
        raise UserError(
            f'mirror endpoint {endpoint!r} ({ENV_ENDPOINT}) is not an http(s) '
            'or file URL; use e.g. https://mirror.example.com/mmprompt')
    query = f'?{parts.query}' if parts.query else ''
    return base.rstrip('/') + parts.path + query


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
    """Download ``url`` to ``dst`` (atomically, returning it) if its
    SHA-256 is ``sha256``.

    Args:
        url (str): Source URL.
        dst (str): Destination path.
        sha256 (str): Expected hex digest.
        progress (bool): Show a progress bar. Defaults to True.
        timeout (float): Socket timeout in seconds. Defaults to 60.
        what_to_do (str): Appended to the message of a failed download.
            Defaults to ``''``.

    Raises:
        DownloadError: If the server is unreachable, refuses or stops.
        ChecksumError: If the digest differs.
    """
    tail = f'; {what_to_do}' if what_to_do else ''
    h = hashlib.sha256()
    try:
        response = urllib.request.urlopen(url, timeout=timeout)
    except (urllib.error.URLError, socket.timeout, OSError) as e:
        raise DownloadError(
            f'cannot download {url} ({_reason(e)}){tail}') from None
    with response, atomic_write(dst) as f:
        total = int(response.headers.get('Content-Length') or 0)
        bar = Progress(  # one tick per CHUNK, a MiB
            total // CHUNK + 1, enabled=progress and total > CHUNK, unit='MiB')
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
            bar.update()
        bar.close()
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
    """Where the converted checkpoint of ``name`` is cached, one file for
    all the names sharing the weights."""
    info = get_model_info(name)
    stem = osp.splitext(info.weights_file)[0]
    tag = (info.sha256 or 'unverified')[:8]
    return osp.join(home or get_home(), 'checkpoints',
                    f'{stem}_{tag}.safetensors')


#: Data files kept beside the converted checkpoint, not converted.
SIDE_FILES = ('tokenizer', )


def tokenizer_path(name: str, home: Optional[str] = None) -> Optional[str]:
    """Where the tokenizer file of ``name`` is cached, beside its
    checkpoint; None if its row lists no ``tokenizer`` data file."""
    if 'tokenizer' not in get_model_info(name).data_files:
        return None
    return osp.splitext(checkpoint_path(name, home))[0] + '.tokenizer.json'


def manual_path(file_name: str, home: Optional[str] = None) -> str:
    """Where a file downloaded by hand is looked for."""
    return osp.join(home or get_home(), 'downloads', file_name)


def manual_files(info: ModelInfo, home: str) -> List[Tuple[str, str]]:
    """``(URL, where to put it by hand)`` of every file a conversion
    needs."""
    urls = [info.require_weights()] + [
        entry['URL'] for entry in info.data_files.values()
    ]
    return [(url, manual_path(url_file_name(url), home)) for url in urls]


def convert_command(info: ModelInfo, dst: str, home: str) -> str:
    """The converter command line for files downloaded by hand."""
    from mmprompt.converters import converter_command
    downloads = osp.join(home, 'downloads')
    args = ['python', *converter_command(info.converter),
            osp.join(downloads, info.weights_file), dst]
    copies = []
    for key, entry in info.data_files.items():
        path = osp.join(downloads, url_file_name(entry['URL']))
        if key in SIDE_FILES:
            copies.append(f' && cp {shlex.quote(path)} '
                          f'{shlex.quote(tokenizer_path(info.name, home))}')
            continue
        args += ['--' + key.replace('_', '-'), path]
    return ' '.join(shlex.quote(a) for a in args) + ''.join(copies)


def _fetch(url: str,
           sha256: Optional[str],
           work: str,
           home: str,
           progress: bool,
           what_to_do: str,
           file_name: Optional[str] = None,
           endpoint: Optional[str] = None) -> str:
    """A verified local copy of ``url``: the one put by hand, else a
    download into ``work``."""
    file_name = file_name or url_file_name(url)
    manual = manual_path(file_name, home)
    if osp.isfile(manual):
        got = sha256 and file_digest(manual)
        if got and got != sha256.lower():
            raise ChecksumError(
                f'{manual}: SHA-256 {got} differs from the published '
                f'{sha256} of {url}; remove it or download it again')
        return manual
    if not sha256:
        raise DownloadError(
            f'{url} has no published SHA-256 in the zoo, so mmprompt does '
            f'not download it; {what_to_do}')
    source = mirror_url(url, endpoint)
    mirror = f' (mirror of {url})' if source != url else ''
    print_log(
        f'Downloading {source}{mirror}', logger='current', level=logging.INFO)
    return download(
        source,
        osp.join(work, file_name),
        sha256,
        progress=progress,
        what_to_do=what_to_do)


def _convert(info: ModelInfo, weights: str, data: Dict[str, str]):
    """Convert the downloaded files with the converter the zoo names."""
    from mmprompt.converters import (CONVERTERS, DATA_FILE_READERS,
                                     ConverterError, load_source_checkpoint,
                                     parse_converter, unwrap_state_dict)
    try:
        key, options = parse_converter(info.converter)
    except ConverterError as e:
        raise UserError(f'{info.metafile}: {info.name}: {e}') from None
    unknown = sorted(set(data) - set(DATA_FILE_READERS) - set(SIDE_FILES))
    if unknown:
        raise UserError(f'{info.metafile}: {info.name} has data files '
                        f'{unknown} no converter reads; known: '
                        f"{', '.join(DATA_FILE_READERS)}")
    inputs = {
        k: DATA_FILE_READERS[k](path)
        for k, path in data.items() if k not in SIDE_FILES
    }
    state_dict = unwrap_state_dict(load_source_checkpoint(weights), weights)
    return CONVERTERS[key](state_dict, **inputs, **options)


def _stamp_path(path: str) -> str:
    return path + '.stamp.json'


def write_stamp(path: str) -> None:
    """Record the size and SHA-256 of a cached file beside it."""
    stamp = dict(size=os.path.getsize(path), sha256=file_digest(path))
    with atomic_write(_stamp_path(path), 'w') as f:
        json.dump(stamp, f)


def cache_is_valid(path: str) -> bool:
    """Whether a cached checkpoint matches its stamp (size, then SHA-256);
    one without a stamp gets one if it loads. A damaged one is removed, with
    a message."""
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
                   progress: bool = True,
                   endpoint: Optional[str] = None) -> str:
    """The cached ``.safetensors`` checkpoint of a zoo model, fetched and
    converted once.

    Args:
        name (str): A name of :func:`mmprompt.apis.list_models`.
        home (str, optional): Cache folder. Defaults to :func:`get_home`.
        progress (bool): Show a progress bar. Defaults to True.
        endpoint (str, optional): A mirror, see :func:`mirror_url`.
            Defaults to ``$MMPROMPT_ENDPOINT``, else none.

    Raises:
        UnknownModelError: For a name not in the zoo.
        DownloadError: Offline or cut short (saying what to do instead).
        ChecksumError: If a file has another SHA-256.
    """
    from mmprompt.utils.checkpoint import save_checkpoint
    info = get_model_info(name)
    home = home or get_home()
    dst = checkpoint_path(info.name, home)
    tokenizer = tokenizer_path(info.name, home)
    if osp.isfile(dst) and cache_is_valid(dst) and (
            tokenizer is None or osp.isfile(tokenizer)):
        return dst
    downloads = osp.join(home, 'downloads')
    files = f'it by hand to {downloads}/'
    if info.data_files:
        sources = manual_files(info, home)
        files = f'all {len(sources)} files by hand: ' + ', '.join(
            f'{url} to {path}' for url, path in sources) + ','
    what_to_do = (f'download {files} and run again, or convert it yourself: '
                  f'{convert_command(info, dst, home)}')
    os.makedirs(downloads, exist_ok=True)
    work = tempfile.mkdtemp(prefix='.fetch.', dir=downloads)
    try:
        weights = _fetch(info.weights, info.sha256, work, home, progress,
                         what_to_do, info.weights_file, endpoint)
        data = {
            key: _fetch(entry['URL'], entry.get('SHA256'), work, home,
                        progress, what_to_do, endpoint=endpoint)
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
            # Kept: the model reads it when built.
            with open(data['tokenizer'], 'rb') as src, atomic_write(
                    tokenizer, 'wb') as out:
                shutil.copyfileobj(src, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_log(f'Cached {info.name} at {dst}', logger='current')
    return dst
