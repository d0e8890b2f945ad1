# Copyright (c) mmprompt contributors. All rights reserved.
"""The I/O halves of ``tools/calibrate_thresholds.py``: a tagger's scores
on a labelled set, and calibrated checkpoints."""
from typing import Dict, Optional

import torch
from mmengine.registry import DefaultScope
from mmengine.runner import Runner

from mmprompt.models.ram.vocabulary import TagVocabulary
from mmprompt.utils.errors import (CheckpointError, InvalidInputError,
                                   did_you_mean)


def calibrated_thresholds(checkpoint: str) -> Dict[str, float]:
    """The ``{category: threshold}`` a calibrated checkpoint carries
    (``meta['openset_thresholds']``, see :func:`write_thresholds`), or
    ``{}``."""
    from mmprompt.utils.checkpoint import read_checkpoint
    meta = read_checkpoint(checkpoint)[1]
    return {
        str(k): float(v)
        for k, v in (meta.get('openset_thresholds') or {}).items()
    }


def tag_vocabulary_of(model: torch.nn.Module,
                      checkpoint: Optional[str] = None) -> TagVocabulary:
    """What a tagger built from a config scores: RAM's vocabulary, or
    SigLIP's configured categories (names and thresholds only)."""
    if hasattr(model, 'select_tags'):
        return model.vocabulary
    if getattr(model, 'score_activation', None) != 'sigmoid':
        raise InvalidInputError(
            f'{type(model).__name__} is not a tagger: thresholds are '
            'calibrated for RAM, RAM++ and SigLIP')
    names = tuple(model.categories)
    calibrated = calibrated_thresholds(checkpoint) if checkpoint else {}
    thresholds = torch.tensor([calibrated.get(n, 0.5) for n in names])
    return TagVocabulary(torch.zeros(len(names), 1), thresholds, names=names)


def _is_open_set(model: torch.nn.Module) -> bool:
    return bool(getattr(model, 'is_openset', False)) or \
        not hasattr(model, 'select_tags')


def _columns(model: torch.nn.Module, vocabulary: TagVocabulary,
             classes) -> list:
    """The model's index of every calibration tag, by name."""
    names = vocabulary.names
    if names is None:
        raise InvalidInputError(
            'the model has no tag names (a checkpoint converted with '
            '--tag-list, or open-set categories, is needed)')
    index = {name: i for i, name in enumerate(names)}
    missing = [c for c in classes if c not in index]
    if missing:
        where = 'open-set categories' if _is_open_set(model) else 'tags'
        raise InvalidInputError(
            f"{len(missing)} calibration tags are not the model's {where}: "
            f'{", ".join(map(repr, missing[:8]))}'
            f'{" ..." if len(missing) > 8 else ""}'
            f'{did_you_mean(missing[0], index, n=3)}')
    return [index[c] for c in classes]


@torch.no_grad()
def collect_scores(config: str,
                   checkpoint: str,
                   cfg_options: Optional[dict] = None) -> dict:
    """Run a tagger over its config's ``test_dataloader``.

    Args:
        config (str): A config (file, zoo or ``mmprompt::`` name) whose
            test set is a :class:`~mmprompt.datasets.TaggingDataset`.
        checkpoint (str): Converted RAM / RAM++ weights.
        cfg_options (dict, optional): Config overrides. Defaults to None.

    Returns:
        dict: ``scores`` and boolean ``target``, ``(N, K)`` for the set's
        ``K`` classes; ``names``, ``columns`` (the model's index of each),
        ``thresholds`` and ``never`` (deleted tags), ``(K, )``; and
        ``open_set``.
    """
    from .builder import get_model
    from .model_zoo import load_config
    cfg, _ = load_config(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if not hasattr(cfg, 'test_dataloader'):
        raise InvalidInputError(f'{config}: no test_dataloader to calibrate '
                                'on')
    model = get_model(cfg, pretrained=checkpoint)
    vocabulary = tag_vocabulary_of(model, checkpoint)
    with DefaultScope.overwrite_default_scope('mmprompt'):
        loader = Runner.build_dataloader(cfg.test_dataloader)
    classes = list(loader.dataset.metainfo['classes'])
    columns = _columns(model, vocabulary, classes)
    cols = torch.as_tensor(columns)
    scores, target = [], []
    for batch in loader:
        for sample in model.test_step(batch):
            scores.append(sample.pred_score.float().cpu()[cols])
            row = torch.zeros(len(classes), dtype=torch.bool)
            row[sample.gt_label.cpu().long()] = True
            target.append(row)
    if not scores:
        raise InvalidInputError(f'{config}: the test set has no images')
    deleted = set(vocabulary.deleted)
    return dict(
        scores=torch.stack(scores),
        target=torch.stack(target),
        names=classes,
        columns=columns,
        thresholds=vocabulary.thresholds.detach().float().cpu()[cols],
        never=torch.tensor([c in deleted for c in columns]),
        open_set=_is_open_set(model))


def write_thresholds(src: str,
                     dst: str,
                     data: dict,
                     thresholds: torch.Tensor,
                     force: bool = False) -> None:
    """Write a copy of ``src`` with new thresholds (atomic): its
    ``class_threshold`` or, for an open set, ``meta['openset_thresholds']``.

    Args:
        src (str): The input checkpoint (not modified).
        dst (str): The output (``.pth`` or ``.safetensors``).
        data (dict): From :func:`collect_scores`.
        thresholds (torch.Tensor): ``(K, )``, one per calibration tag.
        force (bool): Replace an existing ``dst``. Defaults to False.
    """
    from mmprompt.utils.checkpoint import read_checkpoint, save_checkpoint
    state_dict, meta = read_checkpoint(src)
    meta = dict(meta or {})
    values = thresholds.float()
    if data['open_set']:
        calibrated = dict(meta.get('openset_thresholds') or {})
        calibrated.update(
            {name: float(v)
             for name, v in zip(data['names'], values)})
        meta['openset_thresholds'] = calibrated
    else:
        if 'class_threshold' not in state_dict:
            raise CheckpointError(f'{src}: no class_threshold to update')
        thr = state_dict['class_threshold'].clone()
        thr[torch.as_tensor(data['columns'])] = values.to(thr.dtype)
        state_dict = dict(state_dict, class_threshold=thr)
    save_checkpoint(state_dict, meta, dst, force=force)
