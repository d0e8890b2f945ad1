# Copyright (c) mmprompt contributors. All rights reserved.
"""Say what is wrong with dataset files on disk before MMPreTrain acts (its
CIFAR datasets silently download again over files whose md5 differs)."""
import os.path as osp
from typing import Any, List, Mapping

from mmprompt.utils.errors import UserError
from mmprompt.utils.io import file_digest


class DatasetFilesError(UserError, ValueError):
    """Dataset files on disk are not the ones the dataset expects."""


def _local_cifar(dataset_cfg: Mapping):
    """The CIFAR class and local root of ``dataset_cfg``, or Nones."""
    from mmpretrain.datasets import CIFAR10, CIFAR100
    kind = dataset_cfg.get('type')
    if isinstance(kind, type):
        cls = kind if issubclass(kind, CIFAR10) else None
    else:
        name = str(kind).rsplit('.', 1)[-1]
        cls = {'CIFAR10': CIFAR10, 'CIFAR100': CIFAR100}.get(name)
    root = dataset_cfg.get('data_root')
    if cls is None or not isinstance(root, str) or '://' in root:
        return None, None
    return cls, root


def cifar_offline_hint(dataset_cfg: Mapping) -> str:
    """Where to put a local CIFAR dataset's archive by hand, or ``''``.

    Args:
        dataset_cfg (Mapping): A dataset config (``type``, ``data_root``).
    """
    cls, root = _local_cifar(dataset_cfg)
    if cls is None:
        return ''
    return (f'. Without a network, download {cls.url} (md5 {cls.tgz_md5}) '
            f'elsewhere and put it at {osp.join(root, cls.filename)}: it is '
            'extracted on the next run')


def _check_archive(cls: Any, root: str) -> None:
    """Refuse an archive put there by hand that is not the published one."""
    archive = osp.join(root, cls.filename)
    if osp.isfile(archive):
        got = file_digest(archive, 'md5')
        if got != cls.tgz_md5:
            raise DatasetFilesError(
                f'{archive} has md5 {got}, expected {cls.tgz_md5}: it is not '
                f'the published archive ({cls.url}); download it again or '
                'remove it')


def check_cifar_files(dataset_cfg: Mapping) -> None:
    """Refuse local CIFAR files, or an archive put there by hand, that are
    not the published ones (an empty folder is left to MMPreTrain).

    Args:
        dataset_cfg (Mapping): A dataset config (``type``, ``data_root``).
    """
    cls, root = _local_cifar(dataset_cfg)
    if cls is None:
        return
    folder = osp.join(root, cls.base_folder)
    expected = [tuple(entry[:2]) for entry in cls.train_list + cls.test_list]
    expected.append((cls.meta['filename'], cls.meta.get('md5')))
    present = [(n, m) for n, m in expected if osp.isfile(osp.join(folder, n))]
    if not present:
        _check_archive(cls, root)
        return
    problems: List[str] = []
    for name, md5 in expected:
        path = osp.join(folder, name)
        if not osp.isfile(path):
            problems.append(f'{name} is missing')
        elif md5 is not None:
            got = file_digest(path, 'md5')
            if got != md5:
                problems.append(f'{name} has md5 {got}, expected {md5}')
    if problems:
        raise DatasetFilesError(
            f'the {cls.__name__} files in {folder} do not match the '
            f'published ones: {"; ".join(problems)}. Remove the folder to '
            f'download them again ({cls.url}), or put the original files '
            'there.')


#: The layout of a folder of your own images (``CustomDataset``).
IMAGE_FOLDER_LAYOUT = 'data/custom/{train,val,test}/<class>/*.jpg'


def check_image_folder(dataset_cfg: Mapping, key: str) -> None:
    """Refuse a missing image folder of a ``CustomDataset`` without an
    annotation file (also wrapped), showing the layout it expects.

    Args:
        dataset_cfg (Mapping): A dataset config.
        key (str): Its key in the config (``test_dataloader.dataset``).
    """
    while isinstance(dataset_cfg.get('dataset'), Mapping):
        dataset_cfg, key = dataset_cfg['dataset'], key + '.dataset'
    name = str(dataset_cfg.get('type')).rsplit('.', 1)[-1]
    if name != 'CustomDataset' or dataset_cfg.get('ann_file'):
        return
    root = dataset_cfg.get('data_root') or ''
    prefix = dataset_cfg.get('data_prefix') or ''
    if isinstance(prefix, Mapping):
        prefix = prefix.get('img_path', '')
    folder = osp.join(root, prefix)
    if '://' in folder or osp.isdir(folder):
        return
    raise DatasetFilesError(
        f'no image folder at {folder}: your own images go in '
        f'{IMAGE_FOLDER_LAYOUT}, a folder per class (another root: '
        f'--cfg-options {key}.data_root=DIR)')
