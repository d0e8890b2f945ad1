# Copyright (c) mmprompt contributors. All rights reserved.
"""Few-shot subsets of any dataset, reproducible from a file: CoOp's
``generate_fewshot_dataset`` and CoCoOp's ``subsample_classes`` rules."""
import json
import math
import os
import os.path as osp
import random
from typing import List, Optional, Union

import numpy as np
from mmcv.transforms import BaseTransform
from mmengine.dataset import BaseDataset

from mmprompt.registry import DATASETS, TRANSFORMS
from mmprompt.utils.errors import InvalidInputError
from mmprompt.utils.io import atomic_write, read_json

SPLITS = ('all', 'base', 'novel')
#: Most validation images per class (CoOp's few-shot validation size).
VAL_SHOTS = 4


def split_labels(num_classes: int, split: str) -> List[int]:
    """Labels kept by a split: base is the first half, rounded up."""
    if split not in SPLITS:
        raise InvalidInputError(f'split must be one of {SPLITS}, got '
                                f'{split!r}')
    m = math.ceil(num_classes / 2)
    return dict(
        all=list(range(num_classes)),
        base=list(range(m)),
        novel=list(range(m, num_classes)))[split]


@DATASETS.register_module()
class FewShotDataset:
    """``shots`` samples per class (a seeded draw without replacement),
    optionally of a class split renumbered from 0.

    Args:
        dataset (dict | BaseDataset): The full dataset, e.g. ``CustomDataset``.
        shots (int | str, optional): Samples per class; None keeps all;
            ``'val'``: ``min(excluded shots, VAL_SHOTS)``. Defaults to None.
        seed (int): Seed of the draw. Defaults to 1.
        split (str): One of :data:`SPLITS`. Defaults to ``'all'``.
        list_file (str, optional): JSON file of the chosen samples, read
            back (and checked) if it exists, else written. Defaults to None.
        exclude (dict | str, optional): Another draw's arguments, whose
            samples are left out (``'train'``: filled in by
            ``tools/train.py``). Defaults to None.
    """

    def __init__(self,
                 dataset: Union[dict, BaseDataset],
                 shots: Optional[Union[int, str]] = None,
                 seed: int = 1,
                 split: str = 'all',
                 list_file: Optional[str] = None,
                 exclude: Optional[Union[dict, str]] = None) -> None:
        if isinstance(dataset, dict):
            dataset = DATASETS.build(dataset)
        self.dataset = dataset
        classes = list(dataset.metainfo.get('classes') or ())
        if not classes:
            raise InvalidInputError('the dataset has no class names '
                                    "(metainfo['classes'])")
        self.excluded_shots = exclude.get('shots') if isinstance(
            exclude, dict) else None
        if shots == 'val':
            if self.excluded_shots is None:
                raise InvalidInputError(
                    "shots='val' needs exclude=dict(shots=...) (or 'train', "
                    'filled in by tools/train.py)')
            shots = min(int(self.excluded_shots), VAL_SHOTS)
        if shots is not None and (not isinstance(shots, int) or shots < 1):
            raise InvalidInputError(
                f"shots must be an int >= 1 or 'val', got {shots!r}")
        self.shots, self.seed, self.split = shots, seed, split
        keep = split_labels(len(classes), split)
        self.label_map = {old: new for new, old in enumerate(keep)}
        self._metainfo = dict(
            dataset.metainfo, classes=tuple(classes[i] for i in keep))
        self.excluded = self._excluded(exclude)
        if list_file and osp.isfile(list_file):
            self.indices = self._read(list_file)
            overlap = self.excluded.intersection(self.indices)
            if overlap:
                raise InvalidInputError(
                    f'{list_file}: {len(overlap)} sample(s) of the excluded '
                    'draw are listed; remove it or use another work dir')
        else:
            self.indices = self._draw(classes)
            if list_file:
                self._write(list_file)

    def _excluded(self, exclude: Optional[Union[dict, str]]) -> set:
        if exclude is None:
            return set()
        if not isinstance(exclude, dict):
            raise InvalidInputError(
                f"exclude={exclude!r}: give the excluded draw as dict(shots="
                "..., seed=..., split=..., list_file=...) ('train' is "
                'filled in by tools/train.py)')
        other = dict(exclude)
        if other.get('list_file') and not osp.isfile(other['list_file']):
            other.pop('list_file')  # drawn again, not written
        return set(FewShotDataset(self.dataset, **other).indices)

    @property
    def metainfo(self) -> dict:
        return self._metainfo

    def _labels(self) -> List[int]:
        if hasattr(self.dataset, 'get_gt_labels'):
            return [int(v) for v in self.dataset.get_gt_labels()]
        return [
            int(self.dataset.get_data_info(i)['gt_label'])
            for i in range(len(self.dataset))
        ]

    def _draw(self, classes: List[str]) -> List[int]:
        per_class = {label: [] for label in self.label_map}
        for i, label in enumerate(self._labels()):
            if label in per_class and i not in self.excluded:
                per_class[label].append(i)
        if self.shots is None:
            return sorted(i for v in per_class.values() for i in v)
        short = [
            f'{classes[k]} ({len(v)})' for k, v in per_class.items()
            if len(v) < self.shots
        ]
        if short:
            left = (f' once the {len(self.excluded)} excluded ones are left '
                    'out' if self.excluded else '')
            if self.excluded_shots:
                left += (f' (each class needs at least '
                         f'{self.excluded_shots + self.shots} images: '
                         f'{self.excluded_shots} shots and {self.shots} for '
                         'validation)')
            empty = [classes[k] for k, v in per_class.items() if not v]
            hint = (f'; no images at all for {", ".join(empty[:10])} (an '
                    'empty class folder is still a class: fill or remove '
                    'it)' if empty else '')
            raise InvalidInputError(
                f'{len(short)} class(es) have fewer than {self.shots} '
                f'images{left}: {", ".join(short[:10])}{hint}')
        rng = random.Random(self.seed)
        chosen = []
        for label in sorted(per_class):
            chosen.extend(sorted(rng.sample(per_class[label], self.shots)))
        return chosen

    def _identity(self, index: int) -> dict:
        info = self.dataset.get_data_info(index)
        entry = dict(index=index, gt_label=int(info['gt_label']))
        if 'img_path' in info:
            entry['img_path'] = osp.relpath(
                info['img_path'], self.dataset.data_prefix.get('img_path', ''))
        return entry

    def _write(self, path: str) -> None:
        os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
        payload = dict(
            shots=self.shots,
            seed=self.seed,
            split=self.split,
            samples=[self._identity(i) for i in self.indices])
        with atomic_write(path, 'w') as f:
            json.dump(payload, f, indent=1)

    def _read(self, path: str) -> List[int]:
        payload = read_json(path, 'few-shot list')
        if not isinstance(payload, dict):
            raise InvalidInputError(
                f'{path}: a few-shot list is a JSON object with shots, seed, '
                f'split and samples, not a {type(payload).__name__}')
        if (payload.get('shots'), payload.get('split')) != (self.shots,
                                                            self.split):
            raise InvalidInputError(
                f"{path}: lists {payload.get('shots')} shots of split "
                f"{payload.get('split')!r}, the config asks {self.shots} of "
                f'{self.split!r}; remove it or use another work dir')
        indices = []
        for entry in payload['samples']:
            i = int(entry['index'])
            if i >= len(self.dataset) or self._identity(i) != entry:
                raise InvalidInputError(
                    f'{path}: sample {entry} is not in this dataset')
            indices.append(i)
        return indices

    def __len__(self) -> int:
        return len(self.indices)

    def get_data_info(self, idx: int) -> dict:
        info = dict(self.dataset.get_data_info(self.indices[idx]))
        info['gt_label'] = self.label_map[int(info['gt_label'])]
        return info

    def __getitem__(self, idx: int) -> dict:
        data = self.dataset.prepare_data(self.indices[idx]) if hasattr(
            self.dataset, 'prepare_data') else self.dataset[self.indices[idx]]
        # Renumber the packed label for base / novel splits.
        sample = data['data_samples']
        sample.set_gt_label(self.label_map[int(sample.gt_label[0])])
        return data


@TRANSFORMS.register_module()
class RGBToBGR(BaseTransform):
    """Reverse the channels of ``results['img']`` (CIFAR's RGB -> BGR)."""

    def transform(self, results: dict) -> dict:
        results['img'] = np.ascontiguousarray(results['img'][..., ::-1])
        return results
