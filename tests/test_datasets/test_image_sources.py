# Copyright (c) mmprompt contributors. All rights reserved.
"""Folder listing: links to folders followed, each real folder once."""
import os

import pytest

from mmprompt.datasets.image_sources import list_images


def tree(root):
    """root/a.jpg, root/sub/b.png, root/notes.txt."""
    (root / 'sub').mkdir(parents=True)
    (root / 'a.jpg').write_bytes(b'a')
    (root / 'sub' / 'b.png').write_bytes(b'b')
    (root / 'notes.txt').write_text('not an image')
    return root


def names(root):
    return [os.path.relpath(i.path, root) for i in list_images([str(root)])]


def symlink(link, target):
    try:
        os.symlink(target, link, target_is_directory=True)
    except (OSError, NotImplementedError) as e:
        pytest.skip(f'no symbolic links here: {e}')


def test_one_link_loop_lists_each_image_once(tmp_path):
    root = tree(tmp_path / 'images')
    symlink(root / 'sub' / 'up', '..')  # sub/up -> images
    assert names(root) == ['a.jpg', os.path.join('sub', 'b.png')]


def test_two_link_loops_finish(tmp_path):
    # Two loops per level: 2**depth paths until ELOOP without the fix.
    root = tree(tmp_path / 'images')
    symlink(root / 'sub' / 'up1', '..')
    symlink(root / 'sub' / 'up2', '..')
    symlink(root / 'self', '.')
    assert names(root) == ['a.jpg', os.path.join('sub', 'b.png')]


def test_linked_folder_is_listed_under_its_first_path(tmp_path):
    root = tree(tmp_path / 'images')
    outside = tree(tmp_path / 'outside')
    symlink(root / 'ext', str(outside))
    symlink(root / 'zz_again', str(outside / 'sub'))
    symlink(root / 'dangling', str(tmp_path / 'missing'))
    assert names(root) == [
        'a.jpg',
        os.path.join('ext', 'a.jpg'),
        os.path.join('ext', 'sub', 'b.png'),
        os.path.join('sub', 'b.png'),
    ]
