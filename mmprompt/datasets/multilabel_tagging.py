# Copyright (c) mmprompt contributors. All rights reserved.
"""Multi-label tagging benchmarks in the format of the RAM papers'
OpenImages sets (``recognize-anything``, Apache-2.0)."""
import os.path as osp
from typing import List, Optional, Sequence, Tuple, Union

from mmengine.fileio import get_local_path
from mmpretrain.datasets import MultiLabelDataset

from mmprompt.registry import DATASETS
from mmprompt.utils.errors import InvalidInputError, did_you_mean
from mmprompt.utils.io import read_lines


def read_tag_list(path: str) -> Tuple[str, ...]:
    """Tag names of a file, one a line, stripped; blank lines skipped, none
    or a repeated one refused.

    Args:
        path (str): The file (UTF-8).
    """
    with get_local_path(path) as local:
        names = tuple(read_lines(local, what='tag name'))
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f'{path}: repeated tags {repeated}')
    return names


@DATASETS.register_module()
class TaggingDataset(MultiLabelDataset):
    """Images annotated with tag lists, for multi-label tagging metrics.

    Every line of ``ann_file`` is ``name<sep>tag<sep>tag...`` (a name only:
    no tags); the image is ``data_prefix/name + img_suffix``.

    Args:
        ann_file (str): Annotation file.
        classes (str | Sequence[str]): The benchmark's tags: a file or list.
        model_tag_list (str | Sequence[str], optional): The model's tags, to
            give the metainfo ``model_indices`` (the model's index of each
            class). Defaults to None (the model scores ``classes``).
        img_suffix (str): Appended to image names (``'.jpg'``). Defaults to
            ``''``.
        separator (str): Field separator of ``ann_file``. Defaults to ``','``.
        data_root (str): Root of ``ann_file``, ``data_prefix`` and relative
            tag-list paths. Defaults to ``''``.
        data_prefix (str | dict): Image folder. Defaults to ``''``.
        **kwargs: Other arguments of MMPreTrain's ``BaseDataset``.
    """

    def __init__(self,
                 ann_file: str,
                 classes: Union[str, Sequence[str]],
                 model_tag_list: Optional[Union[str, Sequence[str]]] = None,
                 img_suffix: str = '',
                 separator: str = ',',
                 data_root: str = '',
                 data_prefix: Union[str, dict] = '',
                 **kwargs) -> None:
        if not separator:
            raise ValueError('separator must not be empty')
        self.img_suffix = img_suffix
        self.separator = separator
        classes = self._read_names(classes, data_root)
        metainfo = dict(kwargs.pop('metainfo', None) or {})
        if model_tag_list is not None:
            model_tags = self._read_names(model_tag_list, data_root)
            index = {name: i for i, name in enumerate(model_tags)}
            missing = [c for c in classes if c not in index]
            if missing:
                raise InvalidInputError(
                    f'{len(missing)} classes are not in the model tag list, '
                    f'e.g. {missing[:5]}'
                    f'{did_you_mean(missing[0], index, n=3)}')
            metainfo['model_indices'] = tuple(index[c] for c in classes)
        super().__init__(
            ann_file=ann_file,
            classes=classes,
            metainfo=metainfo,
            data_root=data_root,
            data_prefix=data_prefix,
            **kwargs)

    @staticmethod
    def _read_names(spec: Union[str, Sequence[str]],
                    data_root: str) -> Tuple[str, ...]:
        """Names from a list, or from a file (relative to ``data_root``)."""
        if not isinstance(spec, str):
            names = tuple(spec)
            if not names or not all(isinstance(n, str) for n in names):
                raise ValueError('a tag list must be a file or a non-empty '
                                 'list of strings')
            return names
        if data_root and not osp.isabs(spec) and '://' not in spec:
            spec = osp.join(data_root, spec)
        return read_tag_list(spec)

    def load_data_list(self) -> List[dict]:
        """``img_path`` / ``gt_label`` dicts of ``ann_file``, in order."""
        index = {name: i for i, name in enumerate(self.CLASSES)}
        data_list = []
        with get_local_path(self.ann_file) as local, open(
                local, encoding='utf-8') as f:
            for lineno, line in enumerate(f, 1):
                fields = [s.strip() for s in line.split(self.separator)]
                if not fields[0]:
                    if any(fields):
                        raise ValueError(f'{self.ann_file}:{lineno}: no '
                                         'image name')
                    continue  # a blank line
                labels = set()
                for tag in filter(None, fields[1:]):
                    if tag not in index:
                        raise InvalidInputError(
                            f'{self.ann_file}:{lineno}: tag {tag!r} is not '
                            'one of the classes'
                            f'{did_you_mean(tag, index, n=3)}')
                    labels.add(index[tag])
                data_list.append(
                    dict(
                        img_path=self._image_path(fields[0]),
                        gt_label=sorted(labels)))
        return data_list

    def _image_path(self, name: str) -> str:
        prefix = self.data_prefix.get('img_path', '')
        name = name + self.img_suffix
        return osp.join(prefix, name) if prefix else name
