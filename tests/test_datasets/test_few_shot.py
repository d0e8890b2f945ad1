# Copyright (c) mmprompt contributors. All rights reserved.
import json

import numpy as np
import pytest
from mmcv import imwrite

from mmprompt.datasets import FewShotDataset
from mmprompt.utils import register_all_modules
from mmprompt.utils.errors import InvalidInputError

register_all_modules()


def make_folder(root, counts):
    for name, n in counts.items():
        (root / name).mkdir(parents=True)
        for i in range(n):
            imwrite(np.full((4, 4, 3), i, np.uint8), str(root / name / f'{i}.png'))
    return dict(type='CustomDataset', data_root=str(root), pipeline=[])


def test_draw_is_seeded_written_and_read_back(tmp_path):
    cfg = make_folder(tmp_path / 'train', dict(a=5, b=6, c_d=4, e=7))
    listing = str(tmp_path / 'work' / 'list.json')
    ds = FewShotDataset(cfg, shots=3, seed=1, list_file=listing)
    assert len(ds) == 12
    again = FewShotDataset(cfg, shots=3, seed=1)
    assert ds.indices == again.indices
    assert FewShotDataset(cfg, shots=3, seed=2).indices != ds.indices
    saved = json.load(open(listing))
    assert [s['index'] for s in saved['samples']] == ds.indices
    assert FewShotDataset(cfg, shots=3, seed=9, list_file=listing).indices \
        == ds.indices
    with pytest.raises(InvalidInputError, match='lists 3 shots'):
        FewShotDataset(cfg, shots=2, list_file=listing)


def test_base_novel_split_renumbers(tmp_path):
    cfg = make_folder(tmp_path / 'train', dict(a=2, b=2, c=2))
    base = FewShotDataset(cfg, split='base')
    novel = FewShotDataset(cfg, split='novel')
    assert base.metainfo['classes'] == ('a', 'b')
    assert novel.metainfo['classes'] == ('c', )
    assert {novel.get_data_info(i)['gt_label'] for i in range(len(novel))} \
        == {0}


def test_too_few_images_names_the_classes(tmp_path):
    cfg = make_folder(tmp_path / 'train', dict(a=5, b=2, c=1))
    with pytest.raises(InvalidInputError, match=r'b \(2\), c \(1\)'):
        FewShotDataset(cfg, shots=4)


def test_validation_draw_excludes_the_training_shots(tmp_path):
    """The Tip-Adapter-F validation rule: min(shots, 4) per class from the
    images not chosen as shots (read from the training list when it
    exists), disjoint and deterministic."""
    cfg = make_folder(tmp_path / 'train', dict(a=6, b=7))
    listing = str(tmp_path / 'list.json')
    train = FewShotDataset(cfg, shots=4, seed=1, list_file=listing)
    exclude = dict(shots=4, seed=1, list_file=listing)
    val = FewShotDataset(cfg, shots=2, seed=1, exclude=exclude)
    assert len(val) == 4 and not set(val.indices) & set(train.indices)
    assert val.indices == FewShotDataset(
        cfg, shots=2, seed=1, exclude=dict(shots=4, seed=1)).indices
    with pytest.raises(InvalidInputError, match=r'once the 8 excluded'):
        FewShotDataset(cfg, shots=3, exclude=exclude)
    with pytest.raises(InvalidInputError, match='tools/train.py'):
        FewShotDataset(cfg, shots=2, exclude='train')


def test_validation_shots_follow_the_training_shots(tmp_path):
    """shots='val' is min(training shots, 4), whatever the training shots
    are; too few images name the minimum per class."""
    cfg = make_folder(tmp_path / 'train', dict(a=9, b=10))
    for train_shots, val_shots in ((2, 2), (3, 3), (5, 4)):
        val = FewShotDataset(
            cfg, shots='val', exclude=dict(shots=train_shots, seed=1))
        assert (val.shots, len(val)) == (val_shots, 2 * val_shots)
    message = ('1 class(es) have fewer than 4 images once the 12 excluded '
               'ones are left out (each class needs at least 10 images: 6 '
               'shots and 4 for validation): a (3)')
    with pytest.raises(InvalidInputError) as e:
        FewShotDataset(cfg, shots='val', exclude=dict(shots=6, seed=1))
    assert str(e.value) == message
    with pytest.raises(InvalidInputError, match="shots='val' needs exclude"):
        FewShotDataset(cfg, shots='val')
