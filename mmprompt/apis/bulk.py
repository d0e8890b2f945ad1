# Copyright (c) mmprompt contributors. All rights reserved.
"""Bulk inference over any number of images and processes: chunk ``c``
belongs to rank ``c % world_size``, each finished chunk is kept in
``<out>.parts/`` (:class:`ChunkStore`), so a restart (``--resume``) skips
it, and rank 0 merges the chunks in input order."""
import contextlib
import hashlib
import json
import logging
import os
import os.path as osp
import shutil
import socket
import time
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.dataset import pseudo_collate
from mmengine.logging import print_log

from mmprompt.datasets.image_sources import ImageItem, PipelineTransform
from mmprompt.datasets.transforms import clip_pipeline
from mmprompt.utils.errors import OutputPathError
from mmprompt.utils.io import atomic_write, pid_alive
from mmprompt.utils.progress import Progress  # noqa: F401 (tools/infer.py)

FORMAT = 2

#: The manifest's ``answers``: what decides the answers, as a resume that
#: changes one is refused naming it.
ANSWER_INPUTS = dict(
    checkpoint='checkpoint',
    learned='learned prompts',
    categories='categories',
    templates='templates',
    descriptions='descriptions',
    examples='example images',
    thresholds='thresholds',
    model='model settings')
#: The other manifest fields, likewise.
RUN_INPUTS = dict(
    format='mmprompt version',
    task='task',
    num_images='inputs',
    listing='inputs',
    chunk_size='--chunk-size')


class TagTask:
    """The tags of RAM / RAM++ (closed or open set) or SigLIP (open set).

    Args:
        tagger (ImageTagger): The inferencer, categories already set.
        threshold (float, optional): For every tag. Defaults to None.
        categories (str | list, optional): The tagger's open set. Defaults
            to None (the configured one).
    """
    kind = 'jsonl'

    def __init__(self,
                 tagger: Any,
                 threshold: Optional[float] = None,
                 categories: Optional[Any] = None):
        self.tagger = tagger
        self.threshold = threshold
        self.categories = categories
        self.transform = PipelineTransform(tagger.test_pipeline)

    def answer_inputs(self) -> dict:
        """The tags, templates, descriptions and thresholds scored."""
        model = self.tagger.model
        vocabulary = self.tagger.vocabulary()
        encoder = getattr(model, 'category_encoder', None)
        templates = descriptions = None
        if self.tagger.is_openset and encoder is not None:
            from mmprompt.models.ram.label_embedding import (load_categories,
                                                             split_categories)
            templates = encoder.templates
            spec = encoder.categories if self.categories is None else \
                self.categories
            descriptions = split_categories(load_categories(spec))[1]
        return dict(
            categories=[
                vocabulary.names, vocabulary.names_chinese,
                sorted(getattr(vocabulary, 'deleted', ()))
            ],
            templates=templates,
            descriptions=descriptions,
            examples=None,
            thresholds=[vocabulary.thresholds.tolist(), self.threshold],
            model=config_of(model))

    def __call__(self, data: List[dict]) -> List[dict]:
        preds = self.tagger.forward(pseudo_collate(data))
        out = self.tagger.postprocess(preds, None, threshold=self.threshold)
        return [
            dict(
                tags=r['tags'],
                tags_chinese=r['tags_chinese'],
                scores=[round(s, 6) for s in r['tag_scores']],
                labels=r['tag_labels']) for r in out
        ]


class ClassifyTask:
    """The top-k categories of a zero-shot CLIP or a prompt learner.

    Args:
        model (BaseModel): A :class:`CLIP` or a prompt learner.
        topk (int): Classes per image. Defaults to 5.
        vocabulary (optional): What to classify into. Defaults to None (the
            model's categories).
    """
    kind = 'jsonl'

    def __init__(self,
                 model: Any,
                 topk: int = 5,
                 vocabulary: Any = None) -> None:
        self.model = model
        self.topk = topk
        self.vocabulary = vocabulary
        self.transform = PipelineTransform(
            clip_pipeline(model.preprocess_args))

    def answer_inputs(self) -> dict:
        """The categories, templates and descriptions, and top-k."""
        source = self.model if self.vocabulary is None else self.vocabulary
        names = getattr(source, 'names', None) or self.model.categories
        descriptions = getattr(source, 'descriptions', None)
        return dict(
            categories=list(names),
            templates=getattr(source, 'templates', None),
            descriptions=None if descriptions is None else dict(descriptions),
            examples=example_digests(config_of(self.model)),
            thresholds=None,
            model=dict(config=config_of(self.model), topk=self.topk))

    @torch.no_grad()
    def __call__(self, data: List[dict]) -> List[dict]:
        batch = self.model.data_preprocessor(pseudo_collate(data), False)
        preds = self.model.predict(
            batch['inputs'], vocabulary=self.vocabulary)
        names = list(self.model.categories if self.vocabulary is None else
                     self.vocabulary.names)
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
        model (CLIP): Any :class:`CLIP`.
    """
    kind = 'npy'

    def __init__(self, model: Any) -> None:
        self.model = model
        self.transform = PipelineTransform(
            clip_pipeline(model.preprocess_args))

    def answer_inputs(self) -> dict:
        """The model's config (no categories)."""
        return dict(
            categories=None,
            templates=None,
            descriptions=None,
            examples=None,
            thresholds=None,
            model=config_of(self.model))

    @torch.no_grad()
    def __call__(self, data: List[dict]) -> np.ndarray:
        batch = self.model.data_preprocessor(pseudo_collate(data), False)
        feats = self.model.extract_image_feat(batch['inputs'])
        return F.normalize(feats.float(), dim=-1).cpu().numpy()


def example_digests(model_cfg: Optional[dict]) -> Optional[dict]:
    """SHA-256 of each example image file of a config's ``examples``: a
    resume must match their pixels, not only their paths."""
    from mmprompt.datasets.examples import folder_examples
    from mmprompt.utils.io import file_digest
    spec = None if model_cfg is None else model_cfg.get('examples')
    if spec is None:
        return None
    if isinstance(spec, str):
        spec = folder_examples(spec)
    return {
        name: [
            file_digest(p) if isinstance(p, str) else repr(p)
            for p in ([paths] if isinstance(paths, str) else paths)
        ]
        for name, paths in spec.items()
    }


def config_of(model: Any) -> Optional[dict]:
    """The ``model`` dict of the config a model was built from."""
    cfg = getattr(model, '_config', None)
    model_cfg = None if cfg is None else cfg.get('model')
    return None if model_cfg is None else model_cfg.to_dict()


def value_digest(value: Any) -> str:
    """SHA-256 of a JSON-like value (tuples as lists, keys sorted)."""
    text = json.dumps(
        value, sort_keys=True, ensure_ascii=False, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


def listing_digest(items: Sequence[ImageItem]) -> str:
    """SHA-256 of the items' names and places (what a resume must match)."""
    h = hashlib.sha256()
    for item in items:
        h.update(f'{item.name}\0{item.offset}\0{item.size}\n'.encode())
    return h.hexdigest()


def output_paths(out: str, kind: str) -> Dict[str, str]:
    """The files of a run writing ``out``: ``out``, ``failed``, ``parts``
    and, for embeddings, ``index`` (one JSON line per row)."""
    stem = out[:-len('.npy')] if kind == 'npy' else (
        out[:-len('.jsonl')] if out.endswith('.jsonl') else out)
    paths = dict(
        out=out, failed=f'{stem}.failed.jsonl', parts=f'{out}.parts')
    if kind == 'npy':
        paths['index'] = f'{stem}.index.jsonl'
    return paths


def _line(record: dict) -> str:
    return json.dumps(record, ensure_ascii=False) + '\n'


class ChunkStore:
    """The chunk folder of a run. Chunk ``c`` is ``chunk-<c>.jsonl`` (one
    record per image, failures with an ``error``), written last; embeddings
    first write the rows of its readable images, ``chunk-<c>.npy``.

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

    def read_manifest(self) -> Optional[dict]:
        path = osp.join(self.folder, 'manifest.json')
        try:
            with open(path, encoding='utf-8') as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

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
                f.write(_line(record))

    def _records(self, c: int) -> Iterable[dict]:
        with open(self._chunk(c, 'jsonl'), encoding='utf-8') as f:
            for line in f:
                yield json.loads(line)

    def merge(self, num_chunks: int) -> Tuple[int, int]:
        """Join the chunks into the outputs, remove the folder and return
        the numbers of readable and unreadable images."""
        good = bad = 0
        with atomic_write(self.paths['failed'], 'w') as failed:
            if self.kind == 'npy':
                good, bad = self._merge_npy(num_chunks, failed)
            else:
                with atomic_write(self.paths['out'], 'w') as out:
                    for c in range(num_chunks):
                        for record in self._records(c):
                            dest = failed if 'error' in record else out
                            dest.write(_line(record))
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
                        failed.write(_line(record))
                        bad += 1
                    else:
                        record['row'] = row
                        row += 1
                        index.write(_line(record))
        return rows, bad


class RunLock:
    """``<out>.parts/lock``, created with ``O_EXCL``, holding the live
    run's pid, host and start time. A dead process's lock on this host is
    taken over with a warning; any other is refused naming its owner.

    Args:
        folder (str): The chunk folder.
    """

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.path = osp.join(folder, 'lock')

    def owner(self) -> Optional[dict]:
        """The lock's record; ``{}`` if unreadable, None if unlocked."""
        try:
            with open(self.path, encoding='utf-8') as f:
                owner = json.load(f)
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}
        return owner if isinstance(owner, dict) else {}

    @staticmethod
    def is_stale(owner: dict) -> bool:
        """Whether ``owner`` is a dead process of this host."""
        pid = owner.get('pid')
        return (owner.get('host') == socket.gethostname()
                and isinstance(pid, int) and not pid_alive(pid))

    def refusal(self, owner: dict) -> OutputPathError:
        if not owner:
            return OutputPathError(
                f'{self.folder}: another run is starting here (its lock '
                f'file {self.path} is not written yet); if no run is '
                'active, remove that file')
        return OutputPathError(
            f'{self.folder}: another run is writing here (pid '
            f'{owner.get("pid")} on {owner.get("host")}, started '
            f'{owner.get("started")}); wait for it to end or stop it')

    def check(self) -> None:
        """Refuse if a live run holds the lock."""
        owner = self.owner()
        if owner is not None and not self.is_stale(owner):
            raise self.refusal(owner)

    def acquire(self) -> None:
        """Take the lock (the folder exists), or raise
        :class:`OutputPathError` naming its live owner."""
        record = dict(
            pid=os.getpid(),
            host=socket.gethostname(),
            started=time.strftime('%Y-%m-%d %H:%M:%S %Z'))
        while True:
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                             0o644)
            except FileExistsError:
                owner = self.owner()
                if owner is None:
                    continue  # released in between
                if not self.is_stale(owner):
                    raise self.refusal(owner) from None
                print_log(
                    f'{self.folder}: taking over the lock of pid '
                    f'{owner["pid"]}, which is no longer running',
                    logger='current',
                    level=logging.WARNING)
                with contextlib.suppress(FileNotFoundError):
                    os.remove(self.path)
                continue
            with os.fdopen(fd, 'w', encoding='utf-8') as f:
                json.dump(record, f)
            return

    def release(self) -> None:
        """Remove the lock if this process holds it."""
        owner = self.owner()
        if owner and owner.get('pid') == os.getpid() and owner.get(
                'host') == socket.gethostname():
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.path)


def check_outputs(paths: Dict[str, str], force: bool, resume: bool) -> str:
    """``'new'`` or ``'resume'``, decided before the model is built;
    nothing is written.

    Raises:
        OutputPathError: If a live run writes there, or the run would lose
            data or has nothing to resume.
    """
    parts = osp.isdir(paths['parts'])
    if parts:
        RunLock(paths['parts']).check()
    if force:
        return 'new'
    if parts:
        if not resume:
            raise OutputPathError(
                f'{paths["parts"]}: an interrupted run left its chunks '
                'here; pass --resume to continue it or --force to start '
                'over')
        return 'resume'
    if resume and osp.exists(paths['out']):
        raise OutputPathError(
            f'{paths["out"]}: is complete, there is nothing to resume; pass '
            '--force to redo it')
    return 'new'


def manifest_changes(old: Optional[dict], new: dict) -> List[str]:
    """What differs between two manifests, by the names of
    :data:`RUN_INPUTS` and :data:`ANSWER_INPUTS` (each once, in order)."""
    if not isinstance(old, dict) or old.get('format') != new['format']:
        return [RUN_INPUTS['format']]
    changed = [
        name for key, name in RUN_INPUTS.items()
        if old.get(key) != new.get(key)
    ]
    old_answers = old.get('answers') or {}
    changed += [
        name for key, name in ANSWER_INPUTS.items()
        if old_answers.get(key) != new['answers'].get(key)
    ]
    return list(dict.fromkeys(changed))


def begin_run(paths: Dict[str, str], manifest: dict, mode: str) -> RunLock:
    """Start (replacing a dead run's folder) or resume the chunk folder,
    once every input is checked, and return the lock this process holds;
    a folder it created is removed if it refuses.

    Args:
        paths (dict): From :func:`output_paths`.
        manifest (dict): This run's, with ``answers``.
        mode (str): Of :func:`check_outputs`.

    Raises:
        OutputPathError: If another run holds the lock, or the interrupted
            run used other inputs (naming which).
    """
    folder = paths['parts']
    lock = RunLock(folder)
    if mode == 'resume':
        lock.acquire()
        changed = manifest_changes(
            ChunkStore(paths, 'jsonl').read_manifest(), manifest)
        if changed:
            lock.release()
            raise OutputPathError(
                f'{folder}: the interrupted run used other '
                f'{", ".join(changed)}; restore them to resume it, or pass '
                '--force instead of --resume to start over')
        return lock
    if osp.isdir(folder):
        lock.check()
        shutil.rmtree(folder)
    try:
        os.makedirs(folder)
    except FileExistsError:  # another run came first
        raise lock.refusal(lock.owner() or {}) from None
    try:
        lock.acquire()
        with atomic_write(osp.join(folder, 'manifest.json'), 'w') as f:
            json.dump(manifest, f, indent=1)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return lock
