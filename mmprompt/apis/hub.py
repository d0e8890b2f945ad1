# Copyright (c) mmprompt contributors. All rights reserved.
"""Official weights by model name: download, verify, convert once, cache.

OpenAI publishes each CLIP checkpoint at a URL whose path holds the file's
SHA-256 (``.../clip/models/<sha256>/<name>.pt``); the table below lists the
four ViT releases mmprompt has configs for. :func:`get_checkpoint` downloads
one to a temporary file, checks its SHA-256, converts it with
:func:`mmprompt.converters.convert_openai_clip` and renames the result into
the cache, so an interrupted or corrupt download never lands at a path that
is read later. The cache is ``$MMPROMPT_HOME`` or ``~/.cache/mmprompt``.
"""
import hashlib
import logging
import os
import os.path as osp
import shutil
import tempfile
import urllib.request
from typing import Dict, Optional

from mmengine.logging import print_log

OPENAI_URL = 'https://openaipublic.azureedge.net/clip/models/{sha}/{file}'

# name -> (file name, SHA-256, config relative to the configs folder)
_RELEASES = {
    'clip_vit-base-p32':
    ('ViT-B-32.pt',
     '40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af',
     '_base_/models/clip_vit-base-p32.py'),
    'clip_vit-base-p16':
    ('ViT-B-16.pt',
     '5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f',
     '_base_/models/clip_vit-base-p16.py'),
    'clip_vit-large-p14':
    ('ViT-L-14.pt',
     'b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836',
     '_base_/models/clip_vit-large-p14.py'),
    'clip_vit-large-p14-336px':
    ('ViT-L-14-336px.pt',
     '3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02',
     '_base_/models/clip_vit-large-p14-336px.py'),
}

#: Model name -> ``dict(url, sha256, config)``; tests patch the URLs.
PRETRAINED: Dict[str, Dict[str, str]] = {
    name:
    dict(url=OPENAI_URL.format(sha=sha, file=file), sha256=sha, config=config)
    for name, (file, sha, config) in _RELEASES.items()
}

CHUNK = 1 << 20


class ChecksumError(RuntimeError):
    """A downloaded file does not have the published SHA-256."""


def get_home() -> str:
    """mmprompt's cache folder: ``$MMPROMPT_HOME`` or ``~/.cache/mmprompt``.

    Returns:
        str: The folder (not created here).
    """
    return os.environ.get('MMPROMPT_HOME') or osp.join(
        osp.expanduser('~'), '.cache', 'mmprompt')


def get_configs_dir() -> str:
    """The ``configs`` folder: beside the package in a source checkout, or
    ``mmprompt/.mim/configs`` in an installed package.

    Returns:
        str: The folder.

    Raises:
        FileNotFoundError: If neither exists.
    """
    package = osp.dirname(osp.dirname(osp.abspath(__file__)))
    for candidate in (osp.join(package, '.mim', 'configs'),
                      osp.join(osp.dirname(package), 'configs')):
        if osp.isdir(candidate):
            return candidate
    raise FileNotFoundError(
        'mmprompt configs not found; use a source checkout (pip install -e)')


def list_models() -> list:
    """Names of the models with official weights.

    Returns:
        list[str]: Sorted names, e.g. ``'clip_vit-base-p16'``.
    """
    return sorted(PRETRAINED)


def get_model_info(name: str) -> Dict[str, str]:
    """URL, SHA-256 and config path of a named model.

    Args:
        name (str): A name from :func:`list_models`.

    Returns:
        dict: ``url``, ``sha256`` and ``config`` (an absolute path).

    Raises:
        KeyError: For an unknown name (the message lists the known ones).
    """
    if name not in PRETRAINED:
        raise KeyError(f'unknown model {name!r}; known: {list_models()}')
    info = dict(PRETRAINED[name])
    info['config'] = osp.join(get_configs_dir(), info['config'])
    return info


def sha256_file(path: str) -> str:
    """SHA-256 hex digest of a file.

    Args:
        path (str): The file.

    Returns:
        str: The digest.
    """
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(CHUNK), b''):
            h.update(block)
    return h.hexdigest()


def download(url: str,
             dst: str,
             sha256: str,
             progress: bool = True,
             timeout: float = 60) -> str:
    """Download ``url`` to ``dst`` if its SHA-256 is ``sha256``.

    The bytes go to a temporary file beside ``dst``, hashed on the way; only
    a complete file with the right digest is renamed to ``dst``. On any
    failure the temporary file is removed.

    Args:
        url (str): Source URL.
        dst (str): Destination path.
        sha256 (str): Expected hex digest.
        progress (bool): Show a progress bar. Defaults to True.
        timeout (float): Socket timeout in seconds. Defaults to 60.

    Returns:
        str: ``dst``.

    Raises:
        ChecksumError: If the digest differs.
        OSError: On network or disk errors (``urllib.error.URLError``).
    """
    os.makedirs(osp.dirname(osp.abspath(dst)), exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f'.{osp.basename(dst)}.',
        suffix='.part',
        dir=osp.dirname(osp.abspath(dst)))
    try:
        h = hashlib.sha256()
        with os.fdopen(fd, 'wb') as f, urllib.request.urlopen(
                url, timeout=timeout) as response:
            total = int(response.headers.get('Content-Length') or 0)
            bar = None
            if progress and total:
                from mmengine.utils import ProgressBar
                bar = ProgressBar(total // CHUNK + 1)
            got = 0
            for block in iter(lambda: response.read(CHUNK), b''):
                f.write(block)
                h.update(block)
                got += len(block)
                if bar is not None:
                    bar.update()
            if total and got != total:
                raise OSError(f'download of {url} stopped after {got} of '
                              f'{total} bytes')
        if h.hexdigest() != sha256.lower():
            raise ChecksumError(
                f'{url}: SHA-256 {h.hexdigest()} differs from the published '
                f'{sha256}; the download was discarded')
        os.replace(tmp, dst)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise
    return dst


def get_checkpoint(name: str,
                   home: Optional[str] = None,
                   progress: bool = True) -> str:
    """Path of the converted official checkpoint of ``name``, fetched once.

    The first call downloads OpenAI's release, verifies its SHA-256,
    converts it and stores ``<home>/checkpoints/<name>_<sha[:8]>.pth``;
    later calls return that path at once.

    Args:
        name (str): A name from :func:`list_models`.
        home (str, optional): Cache folder. Defaults to :func:`get_home`.
        progress (bool): Show a progress bar. Defaults to True.

    Returns:
        str: The converted checkpoint.
    """
    from mmprompt.converters import (convert_openai_clip,
                                     load_source_checkpoint,
                                     save_checkpoint_atomic, unwrap_state_dict)
    info = get_model_info(name)
    home = home or get_home()
    dst = osp.join(home, 'checkpoints', f"{name}_{info['sha256'][:8]}.pth")
    if osp.isfile(dst):
        return dst
    download_dir = osp.join(home, 'downloads')
    os.makedirs(download_dir, exist_ok=True)
    work = tempfile.mkdtemp(prefix='.fetch.', dir=download_dir)
    try:
        raw = osp.join(work, osp.basename(info['url']))
        print_log(
            f"Downloading {info['url']}", logger='current', level=logging.INFO)
        download(info['url'], raw, info['sha256'], progress=progress)
        state_dict = unwrap_state_dict(load_source_checkpoint(raw), raw)
        converted, meta = convert_openai_clip(state_dict)
        meta['source_file'] = osp.basename(info['url'])
        meta['source_sha256'] = info['sha256']
        save_checkpoint_atomic(
            dict(state_dict=converted, meta=meta), dst, force=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_log(f'Cached {name} at {dst}', logger='current')
    return dst
