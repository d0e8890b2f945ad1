# Copyright (c) mmprompt contributors. All rights reserved.
"""Collections of images for bulk inference: folders, file lists, tar
shards, decoded in DataLoader workers where a failure becomes a record."""
import os
import os.path as osp
import tarfile
from typing import Any, Callable, List, NamedTuple, Optional, Sequence

from torch.utils.data import Dataset

from mmprompt.utils.errors import InvalidInputError, UserError
from mmprompt.utils.image_io import decode_image

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.gif', '.ppm', '.pgm',
                    '.tif', '.tiff', '.webp')


class ImageItem(NamedTuple):
    """One image of a collection.

    Attributes:
        name (str): Its name in outputs: the path, or ``<shard>:<member>``.
        path (str): The file to read (the shard for a tar member).
        offset (int): Tar members: where the data starts; else -1.
        size (int): Tar members: the data's length; else -1.
        key (str): Tar members: the WebDataset ``__key__``; else ``''``.
    """
    name: str
    path: str
    offset: int = -1
    size: int = -1
    key: str = ''


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _walk(folder: str) -> List[ImageItem]:
    """Images below ``folder``, sorted; links are followed, but each real
    folder entered once (a link loop ``a/up -> ..`` ends)."""
    found, seen = [], set()
    for root, dirs, files in os.walk(folder, followlinks=True):
        try:
            st = os.stat(root)
            key = st.st_dev, st.st_ino
        except OSError:  # gone since it was listed
            key = None
        if key is None or key in seen:
            dirs[:] = []
            continue
        seen.add(key)
        dirs.sort()
        found.extend(osp.join(root, f) for f in sorted(files) if _is_image(f))
    return [ImageItem(p, p) for p in sorted(found)]


def _read_list(path: str) -> List[ImageItem]:
    from mmprompt.utils.io import read_lines
    base = osp.dirname(path)
    return [
        ImageItem(line, line if osp.isabs(line) else osp.join(base, line))
        for line in read_lines(path, what='image path')
    ]


def _read_shard(path: str) -> List[ImageItem]:
    """The first image member of every WebDataset sample of a shard."""
    try:
        with tarfile.open(path, 'r:') as tar:
            members = tar.getmembers()
    except tarfile.ReadError as e:
        raise InvalidInputError(
            f'{path}: not an uncompressed tar shard ({e}); WebDataset shards '
            'are read by offset and must be plain .tar') from None
    items, seen = [], set()
    for m in members:
        if not m.isfile() or not _is_image(m.name):
            continue
        folder, base = osp.split(m.name)
        key = osp.join(folder, base.split('.', 1)[0])
        if key in seen:
            continue
        seen.add(key)
        items.append(
            ImageItem(f'{path}:{m.name}', path, m.offset_data, m.size, key))
    return items


def list_images(inputs: Sequence[str]) -> List[ImageItem]:
    """Every image of the inputs, in input order: a folder's below it,
    sorted; a ``.txt`` list's, one path a line (relative to its folder); an
    uncompressed WebDataset ``.tar`` shard's first image of each key.

    Args:
        inputs (Sequence[str]): Folders, lists, shards and image files.
    """
    missing = [p for p in inputs if not osp.exists(p)]
    if missing:
        raise InvalidInputError(f'{missing[0]}: no such file or folder')
    items: List[ImageItem] = []
    for path in inputs:
        if osp.isdir(path):
            items.extend(_walk(path))
        elif path.endswith('.txt'):
            items.extend(_read_list(path))
        elif path.endswith('.tar'):
            items.extend(_read_shard(path))
        elif _is_image(path):
            items.append(ImageItem(path, path))
        else:
            raise InvalidInputError(
                f'{path}: not a folder, a .txt list, a .tar shard or an '
                f'image file ({", ".join(IMAGE_EXTENSIONS)})')
    if not items:
        raise InvalidInputError(f'no image found in {", ".join(inputs)}')
    return items


def read_item(item: ImageItem) -> bytes:
    """The bytes of an item's file (or tar member)."""
    with open(item.path, 'rb') as f:
        if item.offset < 0:
            return f.read()
        f.seek(item.offset)
        data = f.read(item.size)
    if len(data) != item.size:
        raise InvalidInputError(f'{item.name}: truncated tar member')
    return data


class ImageItemDataset(Dataset):
    """``dict(index=, data=transform(image))`` of each item, or
    ``dict(index=, error=reason)`` if it cannot be read or decoded.

    Args:
        items (Sequence[ImageItem]): The whole collection.
        indices (Sequence[int]): Which items, in order.
        transform (Callable): A picklable ``PIL.Image -> data``.
    """

    def __init__(self, items: Sequence[ImageItem], indices: Sequence[int],
                 transform: Callable) -> None:
        self.items = items
        self.indices = list(indices)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict:
        index = self.indices[i]
        item = self.items[index]
        try:
            image = decode_image(read_item(item), mode=None, name=item.name)
            return dict(index=index, data=self.transform(image))
        except (UserError, OSError) as e:
            return dict(index=index, error=str(e) or type(e).__name__)


def collate_items(batch: List[dict]) -> dict:
    """``indices`` and ``data`` of the good samples, ``failed`` as
    ``[(index, reason), ...]``."""
    good = [b for b in batch if 'error' not in b]
    return dict(
        indices=[b['index'] for b in good],
        data=[b['data'] for b in good],
        failed=[(b['index'], b['error']) for b in batch if 'error' in b])


class PipelineTransform:
    """A model's test pipeline, built where it runs (so it pickles).

    Args:
        steps (Sequence[dict]): The transforms' configs.
    """

    def __init__(self, steps: Sequence[dict]) -> None:
        self.steps = [dict(step) for step in steps]
        self._pipeline: Optional[Callable] = None

    def __getstate__(self) -> dict:
        return dict(steps=self.steps, _pipeline=None)

    def __call__(self, image: Any) -> dict:
        if self._pipeline is None:
            from .transforms import build_pipeline
            self._pipeline = build_pipeline(self.steps)
        return self._pipeline(dict(img=image))
