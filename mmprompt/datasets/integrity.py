# Copyright (c) mmprompt contributors. All rights reserved.
"""Say what is wrong with dataset files on disk before MMPreTrain acts.

MMPreTrain's ``CIFAR10`` / ``CIFAR100`` check every file's md5 and, when
one differs, download the archive again over the folder without saying
why. :func:`check_cifar_files` names the files that do not match instead.
"""
import os.path as osp
from typing import Any, List, Mapping

from mmprompt.utils.errors import UserError
from mmprompt.utils.io import file_digest


class DatasetFilesError(UserError, ValueError):
    """Dataset files on disk are not the ones the dataset expects."""


def _cifar_class(dataset_type: Any) -> Any:
    from mmpretrain.datasets import CIFAR10, CIFAR100
    name = str(dataset_type).rsplit('.', 1)[-1]
    if isinstance(dataset_type, type):
        return dataset_type if issubclass(dataset_type, CIFAR10) else None
    return {'CIFAR10': CIFAR10, 'CIFAR100': CIFAR100}.get(name)


def check_cifar_files(dataset_cfg: Mapping) -> None:
    """Refuse CIFAR files on disk whose md5 differs from the published one.

    Nothing is checked for other datasets, remote roots, or a folder with
    none of the files (MMPreTrain downloads them: the normal first run).

    Args:
        dataset_cfg (Mapping): A dataset config (``type``, ``data_root``).

    Raises:
        DatasetFilesError: If some files are there and one differs or is
            missing; the message names them and what to do.
    """
    cls = _cifar_class(dataset_cfg.get('type'))
    root = dataset_cfg.get('data_root')
    if cls is None or not isinstance(root, str) or '://' in root:
        return
    folder = osp.join(root, cls.base_folder)
    expected = [tuple(entry[:2]) for entry in cls.train_list + cls.test_list]
    expected.append((cls.meta['filename'], cls.meta.get('md5')))
    present = [(n, m) for n, m in expected if osp.isfile(osp.join(folder, n))]
    if not present:
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
