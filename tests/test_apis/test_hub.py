# Copyright (c) mmprompt contributors. All rights reserved.
"""Official weights: download from a local server, verify, convert, cache."""
import importlib.util
import os
import os.path as osp
import sys

import pytest
import torch

from mmprompt.apis import hub
from testing_utils import clip as H


NAME = 'clip_vit-base-p16'


@pytest.fixture(scope='module')
def payload():
    pytest.importorskip('open_clip')
    data = H.openai_checkpoint_bytes(seed=3)
    return data, H.sha256(data)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv('MMPROMPT_HOME', str(tmp_path / 'home'))
    return tmp_path / 'home'


def patch_table(monkeypatch, url, sha):
    entry = dict(hub.PRETRAINED[NAME], url=url, sha256=sha)
    monkeypatch.setitem(hub.PRETRAINED, NAME, entry)


def all_files(root):
    return sorted(
        osp.relpath(osp.join(d, f), root) for d, _, files in os.walk(root)
        for f in files)


def test_table_holds_openai_releases():
    assert hub.list_models() == [
        'clip_vit-base-p16', 'clip_vit-base-p32', 'clip_vit-large-p14',
        'clip_vit-large-p14-336px'
    ]
    for name, info in hub.PRETRAINED.items():
        assert info['url'].startswith(
            'https://openaipublic.azureedge.net/clip/models/')
        # OpenAI's URLs embed the SHA-256 of the file.
        assert info['url'].split('/')[-2] == info['sha256']
        assert len(info['sha256']) == 64
        assert osp.isfile(hub.get_model_info(name)['config'])
    open_clip = pytest.importorskip('open_clip')
    for ours, theirs in [('clip_vit-base-p32', 'ViT-B-32'),
                         ('clip_vit-base-p16', 'ViT-B-16'),
                         ('clip_vit-large-p14', 'ViT-L-14'),
                         ('clip_vit-large-p14-336px', 'ViT-L-14-336')]:
        assert hub.PRETRAINED[ours]['url'] == open_clip.get_pretrained_url(
            theirs, 'openai')
    with pytest.raises(KeyError, match='clip_vit-base-p16'):
        hub.get_model_info('clip_vit-huge')


def test_home(monkeypatch):
    monkeypatch.setenv('MMPROMPT_HOME', '/some/where')
    assert hub.get_home() == '/some/where'
    monkeypatch.delenv('MMPROMPT_HOME')
    assert hub.get_home() == osp.join(
        osp.expanduser('~'), '.cache', 'mmprompt')


def test_download_verify_convert_cache(payload, home, monkeypatch):
    data, sha = payload
    with H.FileServer({'/m/ViT-B-16.pt': data}) as server:
        patch_table(monkeypatch, server.url('/m/ViT-B-16.pt'), sha)
        path = hub.get_checkpoint(NAME, progress=False)
        assert path == str(home / 'checkpoints' / f'{NAME}_{sha[:8]}.pth')
        # Only the converted checkpoint is kept.
        assert all_files(home) == [f'checkpoints/{NAME}_{sha[:8]}.pth']
        ckpt = torch.load(path, map_location='cpu', weights_only=True)
        assert ckpt['meta']['source_sha256'] == sha
        assert ckpt['meta']['source'] == 'openai_clip'
        assert 'visual.cls_token' in ckpt['state_dict']
        assert server.requests == ['/m/ViT-B-16.pt']
        # The second call reads the cache: no request.
        assert hub.get_checkpoint(NAME, progress=False) == path
        assert server.requests == ['/m/ViT-B-16.pt']


def test_wrong_checksum_is_an_error(payload, home, monkeypatch):
    data, sha = payload
    wrong = '0' * 64
    with H.FileServer({'/m/ViT-B-16.pt': data}) as server:
        patch_table(monkeypatch, server.url('/m/ViT-B-16.pt'), wrong)
        with pytest.raises(hub.ChecksumError, match=f'{sha}.*{wrong}'):
            hub.get_checkpoint(NAME, progress=False)
    assert all_files(home) == []


def test_interrupted_download_leaves_nothing(payload, home, monkeypatch):
    data, sha = payload
    files = {'/m/ViT-B-16.pt': data}
    with H.FileServer(
            files, truncate={'/m/ViT-B-16.pt': len(data) // 2}) as server:
        patch_table(monkeypatch, server.url('/m/ViT-B-16.pt'), sha)
        with pytest.raises(Exception):
            hub.get_checkpoint(NAME, progress=False)
        assert all_files(home) == []
        # A later, complete download works and uses nothing of the first.
        server.truncate.clear()
        path = hub.get_checkpoint(NAME, progress=False)
        assert all_files(home) == [osp.relpath(path, home)]
        assert len(server.requests) == 2


def test_download_helper(tmp_path):
    data = b'x' * 3000
    with H.FileServer({'/f': data}) as server:
        dst = str(tmp_path / 'sub' / 'f.bin')
        assert hub.download(
            server.url('/f'), dst, H.sha256(data), progress=False) == dst
        assert open(dst, 'rb').read() == data
        with pytest.raises(OSError):
            hub.download(
                server.url('/missing'),
                str(tmp_path / 'g'),
                H.sha256(data),
                progress=False)
    assert sorted(os.listdir(tmp_path / 'sub')) == ['f.bin']
    assert not osp.exists(tmp_path / 'g')
