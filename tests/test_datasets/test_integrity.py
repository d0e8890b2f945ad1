# Copyright (c) mmprompt contributors. All rights reserved.
"""CIFAR files on disk that differ are named, not silently re-downloaded."""
import hashlib

import pytest

from mmprompt.datasets.integrity import DatasetFilesError, check_cifar_files
from mmprompt.utils import UserError

FILES = {'train': b'train data', 'test': b'test data', 'meta': b'meta data'}


@pytest.fixture
def cifar100(monkeypatch):
    """MMPreTrain's CIFAR100 expecting the small FILES above."""
    from mmpretrain.datasets import CIFAR100
    md5 = {k: hashlib.md5(v).hexdigest() for k, v in FILES.items()}
    monkeypatch.setattr(CIFAR100, 'train_list', [['train', md5['train']]])
    monkeypatch.setattr(CIFAR100, 'test_list', [['test', md5['test']]])
    monkeypatch.setattr(CIFAR100, 'meta', dict(CIFAR100.meta, md5=md5['meta']))
    return md5


def _write(root, files):
    folder = root / 'cifar-100-python'
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)


def test_cifar_files_checked(tmp_path, cifar100):
    cfg = dict(type='CIFAR100', data_root=str(tmp_path))
    check_cifar_files(cfg)  # nothing there yet: MMPreTrain downloads
    _write(tmp_path, FILES)
    check_cifar_files(cfg)
    check_cifar_files(dict(cfg, type='mmpretrain.CIFAR100'))
    _write(tmp_path, {'test': b'another test split'})
    bad = hashlib.md5(b'another test split').hexdigest()
    with pytest.raises(DatasetFilesError) as e:
        check_cifar_files(cfg)
    message = str(e.value)
    assert isinstance(e.value, UserError) and '\n' not in message
    assert 'cifar-100-python do not match' in message
    assert f'test has md5 {bad}, expected {cifar100["test"]}' in message
    assert 'train' not in message.split('match the published ones:')[1]
    (tmp_path / 'cifar-100-python' / 'meta').unlink()
    with pytest.raises(DatasetFilesError, match='meta is missing'):
        check_cifar_files(cfg)


def test_other_datasets_not_checked(tmp_path):
    check_cifar_files(dict(type='ImageNet', data_root=str(tmp_path)))
    check_cifar_files(dict(type='CIFAR100', data_root='s3://bucket/cifar'))
    check_cifar_files(dict(type='CIFAR100'))
