# Copyright (c) mmprompt contributors. All rights reserved.
"""Bulk inference over any number of images and processes.

The collection (:func:`mmprompt.datasets.image_sources.list_images`) is cut
into chunks of ``chunk_size`` consecutive images; chunk ``c`` belongs to
rank ``c % world_size``. Each finished chunk is written atomically into
``<out>.parts/`` (:class:`ChunkStore`), so a killed run loses at most the
chunks it was working on, and a restart (``--resume``), with any number of
processes, skips the chunks already there. At the end rank 0 merges the
chunks, in input order, into the output and the list of unreadable images,
and removes the parts.

The tasks (:class:`TagTask`, :class:`ClassifyTask`, :class:`EmbedTask`) map
a batch of decoded samples to one record per image: the tags, the top
classes, or a row of L2-normalised CLIP image features.
"""
import hashlib
import json
import os
import os.path as osp
import shutil
import sys
import time
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.dataset import pseudo_collate

from mmprompt.datasets.image_sources import (CLIPTransform, ImageItem,
                                             RAMTransform)
from mmprompt.datasets.transforms import image_transform_of
from mmprompt.utils.errors import InvalidInputError, OutputPathError
from mmprompt.utils.io import atomic_write

FORMAT = 1


class TagTask:
    """RAM / RAM++ tags (closed vocabulary or an open set).

    Args:
        tagger (ImageTagger): The inferencer, categories already set.
        threshold (float, optional): One threshold for every tag.
            Defaults to None (the model's).
    """
    kind = 'jsonl'

    def __init__(self, tagger: Any, threshold: Optional[float] = None):
        self.tagger = tagger
        self.threshold = threshold
        self.transform = RAMTransform(tagger.image_size)

    def __call__(self, data: List[torch.Tensor]) -> List[dict]:
        preds = self.tagger.forward(dict(inputs=torch.stack(data)))
        out = self.tagger.postprocess(preds, None, threshold=self.threshold)
        return [
            dict(
                tags=r['pred_tags'],
                tags_chinese=r['pred_tags_chinese'],
                scores=[round(s, 6) for s in r['pred_scores']],
                labels=r['pred_labels']) for r in out
        ]


class ClassifyTask:
    """The top-k categories of a classifier: a zero-shot CLIP, or a
    prompt-learning model (CoOp, CoCoOp) with its learned prompts.

    Args:
        model (BaseModel): Has ``categories``, ``test_step`` giving
            ``pred_score``, and ``image_size`` (or a CLIP as ``clip``).
        topk (int): Classes per image. Defaults to 5.
    """
    kind = 'jsonl'

    def __init__(self, model: Any, topk: int = 5) -> None:
        self.model = model
        self.topk = topk
        size = getattr(model, 'image_size', None) or int(
            model.clip.visual.img_size[0])
        self.transform = CLIPTransform(size, image_transform_of(model))

    @torch.no_grad()
    def __call__(self, data: List[dict]) -> List[dict]:
        preds = self.model.test_step(pseudo_collate(data))
        names = list(self.model.categories)
        scores = torch.stack([p.pred_score for p in preds]).float().cpu()
        top, labels = scores.topk(min(self.topk, scores.size(1)), dim=1)
        return [
            dict(
                classes=[names[i] for i in row],
                scores=[round(v, 6) for v in values],
                labels=row) for row, values in zip(labels.tolist(),
                                                   top.tolist())
        ]


class EmbedTask:
    """L2-normalised CLIP image features, float32.

    Args:
        model (CLIP): A CLIP model (any :class:`CLIP` subclass).
    """
    kind = 'npy'

    def __init__(self, model: Any) -> None:
        self.model = model
        self.transform = CLIPTransform(model.image_size,
                                       image_transform_of(model))

    @torch.no_grad()
    def __call__(self, data: List[dict]) -> np.ndarray:
        batch = self.model.data_preprocessor(pseudo_collate(data), False)
        feats = self.model.extract_image_feat(batch['inputs'])
        return F.normalize(feats.float(), dim=-1).cpu().numpy()


def listing_digest(items: Sequence[ImageItem]) -> str:
    """SHA-256 of the items' names and places (what a resume must match)."""
    h = hashlib.sha256()
    for item in items:
        h.update(f'{item.name}\0{item.offset}\0{item.size}\n'.encode())
    return h.hexdigest()


def output_paths(out: str, kind: str) -> Dict[str, str]:
    """The files of a run writing ``out``.

    Returns:
        dict: ``out``; ``index`` (embeddings only: one JSON line per row);
        ``failed`` (unreadable images); ``parts`` (the chunk folder).
    """
    stem = out[:-len('.npy')] if kind == 'npy' else (
        out[:-len('.jsonl')] if out.endswith('.jsonl') else out)
    paths = dict(
        out=out, failed=f'{stem}.failed.jsonl', parts=f'{out}.parts')
    if kind == 'npy':
        paths['index'] = f'{stem}.index.jsonl'
    return paths


class ChunkStore:
    """The chunk folder of a run: manifest, finished chunks, merge.

    Chunk ``c`` is ``chunk-<c>.jsonl`` (one record per image, failures with
    an ``error`` field), written last and atomically; for embeddings the
    rows of its readable images are ``chunk-<c>.npy``, written first.

    Args:
        paths (dict): From :func:`output_paths`.
        kind (str): ``'jsonl'`` or ``'npy'``.
    """

    def __init__(self, paths: Dict[str, str], kind: str) -> None:
        self.paths = paths
        self.kind = kind
        self.folder = paths['parts']

    def _chunk(self, c: int, ext: str) -> str:
        return osp.join(self.folder, f'chunk-{c:07d}.{ext}')

    @property
    def manifest_path(self) -> str:
        return osp.join(self.folder, 'manifest.json')

    def read_manifest(self) -> Optional[dict]:
        try:
            with open(self.manifest_path, encoding='utf-8') as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def start(self, manifest: dict) -> None:
        """Create the folder and write the manifest."""
        os.makedirs(self.folder, exist_ok=True)
        with atomic_write(self.manifest_path, 'w') as f:
            json.dump(manifest, f, indent=1)

    def done(self, num_chunks: int) -> List[bool]:
        """Which chunks are finished."""
        try:
            names = set(os.listdir(self.folder))
        except FileNotFoundError:
            names = set()
        return [
            osp.basename(self._chunk(c, 'jsonl')) in names
            for c in range(num_chunks)
        ]

    def write(self, c: int, records: List[dict],
              rows: Optional[np.ndarray] = None) -> None:
        """Write chunk ``c`` (records in input order; rows for ``npy``)."""
        if self.kind == 'npy':
            with atomic_write(self._chunk(c, 'npy')) as f:
                np.save(f, rows.astype('<f4', copy=False))
        with atomic_write(self._chunk(c, 'jsonl'), 'w') as f:
            for record in records:
                f.write(json.dumps(record, ensure_ascii=False) + '\n')

    def _records(self, c: int) -> Iterable[dict]:
        with open(self._chunk(c, 'jsonl'), encoding='utf-8') as f:
            for line in f:
                yield json.loads(line)

    def merge(self, num_chunks: int) -> Tuple[int, int]:
        """Join the chunks into the outputs; remove the folder.

        Returns:
            tuple[int, int]: Readable and unreadable images.
        """
        good = bad = 0
        with atomic_write(self.paths['failed'], 'w') as failed:
            if self.kind == 'npy':
                good, bad = self._merge_npy(num_chunks, failed)
            else:
                with atomic_write(self.paths['out'], 'w') as out:
                    for c in range(num_chunks):
                        for record in self._records(c):
                            dest = failed if 'error' in record else out
                            dest.write(
                                json.dumps(record, ensure_ascii=False) +
                                '\n')
                            good += 'error' not in record
                            bad += 'error' in record
        shutil.rmtree(self.folder)
        return good, bad

    def _merge_npy(self, num_chunks: int, failed) -> Tuple[int, int]:
        shapes = [
            np.load(self._chunk(c, 'npy'), mmap_mode='r').shape
            for c in range(num_chunks)
        ]
        rows = sum(s[0] for s in shapes)
        dim = max((s[1] for s in shapes if s[0]), default=0)
        bad = 0
        with atomic_write(self.paths['out']) as out, \
                atomic_write(self.paths['index'], 'w') as index:
            np.lib.format.write_array_header_2_0(
                out,
                dict(descr='<f4', fortran_order=False, shape=(rows, dim)))
            row = 0
            for c in range(num_chunks):
                arr = np.load(self._chunk(c, 'npy'))
                if arr.shape[0]:
                    out.write(np.ascontiguousarray(arr).tobytes())
                for record in self._records(c):
                    if 'error' in record:
                        failed.write(
                            json.dumps(record, ensure_ascii=False) + '\n')
                        bad += 1
                    else:
                        record['row'] = row
                        row += 1
                        index.write(
                            json.dumps(record, ensure_ascii=False) + '\n')
        return rows, bad


def prepare_outputs(paths: Dict[str, str], manifest: dict, force: bool,
                    resume: bool) -> str:
    """Decide, before any work, what to do with existing outputs.

    Returns:
        str: ``'new'`` or ``'resume'``.

    Raises:
        OutputPathError: If the run would lose data or cannot resume.
    """
    store_manifest = ChunkStore(paths, 'jsonl').read_manifest()
    parts = osp.isdir(paths['parts'])
    if force:
        if parts:
            shutil.rmtree(paths['parts'])
        return 'new'
    if parts:
        if not resume:
            raise OutputPathError(
                f'{paths["parts"]}: an interrupted run left its chunks '
                'here; pass --resume to continue it or --force to start '
                'over')
        if store_manifest != manifest:
            raise OutputPathError(
                f'{paths["parts"]}: was made for other inputs, model or '
                'options; pass --force to start over')
        return 'resume'
    if resume and osp.exists(paths['out']):
        raise OutputPathError(
            f'{paths["out"]}: is complete, there is nothing to resume; pass '
            '--force to redo it')
    return 'new'


class Progress:
    """A one-line progress display on stderr: images, img/s, time left.

    Args:
        total (int): Images to process in this run (all ranks).
        enabled (bool): Print at all (rank 0 only).
    """

    def __init__(self, total: int, enabled: bool = True) -> None:
        self.total = total
        self.enabled = enabled and total > 0
        self.count = 0
        self.start = time.perf_counter()
        self.last = 0.0

    def update(self, n: int) -> None:
        self.count = min(self.total, self.count + n)
        now = time.perf_counter()
        if not self.enabled or (now - self.last < 0.5
                                and self.count < self.total):
            return
        self.last = now
        rate = self.count / max(now - self.start, 1e-9)
        left = (self.total - self.count) / rate if rate > 0 else 0
        sys.stderr.write(f'\r[{self.count:>{len(str(self.total))}}/'
                         f'{self.total}] {rate:7.1f} img/s, '
                         f'{time.strftime("%H:%M:%S", time.gmtime(left))} '
                         'left')
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write('\n')


def check_chunk_size(chunk_size: int) -> None:
    if chunk_size < 1:
        raise InvalidInputError(
            f'--chunk-size must be at least 1, got {chunk_size}')
