# Copyright (c) mmprompt contributors. All rights reserved.
"""Hooks of prompt learning: each loop's classes, Tip-Adapter-F's cache."""
from typing import Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.dist import all_reduce, broadcast, get_dist_info
from mmengine.hooks import Hook
from mmengine.logging import print_log

from mmprompt.registry import HOOKS
from mmprompt.utils.errors import InvalidInputError
from .hooks import runner_model


def _classes(dataloader):
    return list(dataloader.dataset.metainfo['classes'])


def fit_topk(evaluator, num_classes: int) -> None:
    """Clip the top-k of ``evaluator``'s metrics to ``num_classes``, with a
    note in the log: top-5 among 3 classes is top-3, not an error.

    Args:
        evaluator: A built MMEngine ``Evaluator`` (its ``metrics``).
        num_classes (int): The number of classes the model chooses among.
    """
    for metric in getattr(evaluator, 'metrics', ()):
        topk = getattr(metric, 'topk', None)
        if not topk or max(topk) <= num_classes:
            continue
        fitted = tuple(dict.fromkeys(min(k, num_classes) for k in topk))
        metric.topk = fitted
        print_log(
            f'top-k accuracy {tuple(topk)} among {num_classes} classes: '
            f'reported as top-k {fitted}', logger='current')


@HOOKS.register_module()
class PromptClassesHook(Hook):
    """Set the model's category names from each loop's dataset (a
    base-to-novel split's novel classes; a folder's classes for zero-shot
    CLIP), the evaluators' top-k fitted to them (:func:`fit_topk`).

    Args:
        underscore_as_space (bool): Read ``'_'`` in class names (folders
            such as ``tabby_cat``) as a space. Defaults to False.
    """
    priority = 'HIGH'

    def __init__(self, underscore_as_space: bool = False) -> None:
        self.underscore_as_space = underscore_as_space

    def _set(self, runner, dataloader, evaluator=None) -> None:
        model = runner_model(runner)
        if not hasattr(model, 'set_categories'):
            return
        classes = _classes(dataloader)
        if self.underscore_as_space:
            classes = [name.replace('_', ' ') for name in classes]
        if model.categories is None or list(model.categories) != classes:
            model.set_categories(classes)
        if evaluator is not None:
            fit_topk(evaluator, len(classes))

    def before_train(self, runner) -> None:
        self._set(runner, runner.train_dataloader)

    before_train_epoch = before_train

    def before_val_epoch(self, runner) -> None:
        self._set(runner, runner.val_dataloader, runner.val_loop.evaluator)

    def before_test(self, runner) -> None:
        # Before CheckLabelsHook: a base-to-novel test set has more classes
        # than the prompts were trained on.
        self._set(runner, runner.test_dataloader, runner.test_loop.evaluator)

    def before_test_epoch(self, runner) -> None:
        self._set(runner, runner.test_dataloader)


def _positions(dataset):
    """Map a sample's ``sample_idx`` (a few-shot subset's is the full
    dataset's) to its row in ``dataset``."""
    indices = getattr(dataset, 'indices', None)
    if indices is None:
        return lambda idx: idx
    where = {int(i): row for row, i in enumerate(indices)}
    return where.__getitem__


def collect_features(model, dataloader, passes: int = 1
                     ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per sample of ``dataloader.dataset``: the mean of its unnormalised
    CLIP image features over ``passes`` augmented passes (Tip-Adapter's
    ``augment_epoch``), matched by ``sample_idx``, and its label. Under
    ``torch.distributed`` every rank gets the same all-reduced tensors.

    Args:
        model: A prompt-learning model (``data_preprocessor``, ``clip``).
        dataloader: Batches of ``inputs`` and ``data_samples``.
        passes (int): Passes over the loader. Defaults to 1.

    Returns:
        tuple: ``(N, D)`` mean features (float32) and ``(N, )`` labels.
    """
    dataset = dataloader.dataset
    row_of = _positions(dataset)
    device = model.clip.logit_scale.device
    sums = torch.zeros(len(dataset), model.clip.proj_dims,
                       dtype=torch.float64, device=device)
    counts = torch.zeros(len(dataset), dtype=torch.float64, device=device)
    labels = torch.full((len(dataset), ), -1, dtype=torch.long,
                        device=device)
    with torch.no_grad():
        for _ in range(passes):
            for batch in dataloader:
                data = model.data_preprocessor(batch, False)
                samples = data['data_samples']
                if any('sample_idx' not in s for s in samples):
                    raise InvalidInputError(
                        "the pipeline's PackInputs must keep 'sample_idx' "
                        'in its meta_keys (the views of each image are '
                        'matched by it)')
                rows = torch.tensor([row_of(int(s.sample_idx))
                                     for s in samples], device=device)
                feats = model.clip.extract_image_feat(data['inputs'])
                sums.index_add_(0, rows, feats.double())
                counts.index_add_(0, rows, torch.ones_like(rows,
                                                           dtype=sums.dtype))
                labels[rows] = torch.cat([s.gt_label for s in samples]).to(
                    device)
    if get_dist_info()[1] > 1:
        all_reduce(sums)
        all_reduce(counts)
        all_reduce(labels, op='max')
    missing = int((counts == 0).sum())
    if missing:
        raise InvalidInputError(
            f'{missing} of {len(dataset)} samples never came out of the '
            'dataloader (a sampler that drops samples?)')
    return (sums / counts[:, None]).float(), labels


@HOOKS.register_module()
class TipAdapterHook(Hook):
    """Tip-Adapter-F's cache before training (unless resumed with it),
    alpha / beta after it on the **validation** split (never the test set),
    rank 0's values broadcast.

    Args:
        augment_epochs (int): Augmented views averaged per key
            (Tip-Adapter's ``augment_epoch``). Defaults to 10.
        search_scale (Sequence[float]): Largest beta and alpha searched.
            Defaults to (7, 3) (Tip-Adapter's ImageNet values).
        search_step (Sequence[int]): Numbers of betas and alphas.
            Defaults to (200, 20).
    """
    # After PromptClassesHook (HIGH) set the training classes.
    priority = 'NORMAL'

    def __init__(self,
                 augment_epochs: int = 10,
                 search_scale: Sequence[float] = (7, 3),
                 search_step: Sequence[int] = (200, 20)) -> None:
        if augment_epochs < 1:
            raise InvalidInputError(
                f'augment_epochs must be >= 1, got {augment_epochs}')
        self.augment_epochs = augment_epochs
        self.search_scale = tuple(search_scale)
        self.search_step = tuple(search_step)

    def before_train(self, runner) -> None:
        if runner.val_loop is None:
            raise InvalidInputError(
                'TipAdapterHook chooses alpha and beta on a validation '
                'split: the config needs val_dataloader, val_cfg and '
                'val_evaluator (see configs/tip_adapter/)')
        model = runner_model(runner)
        if model.cache_ready:
            print_log('Tip-Adapter cache: kept from the checkpoint',
                      logger='current')
            return
        feats, labels = collect_features(model, runner.train_dataloader,
                                         self.augment_epochs)
        model.set_cache(F.normalize(feats, dim=-1), labels)
        print_log(
            f'Tip-Adapter cache: {feats.size(0)} keys, each the mean of '
            f'{self.augment_epochs} augmented views', logger='current')

    def after_train(self, runner) -> None:
        model = runner_model(runner)
        loader = runner.val_dataloader
        if _classes(loader) != list(model.trained_categories):
            raise InvalidInputError(
                'the validation split must have the classes of the training '
                'set, in the same order')
        if list(model.categories) != list(model.trained_categories):
            model.set_categories(model.trained_categories)
        feats, labels = collect_features(model, loader)
        found = model.search_alpha_beta(
            F.normalize(feats, dim=-1), labels, self.search_scale,
            self.search_step)
        if get_dist_info()[1] > 1:
            broadcast(model.alpha, src=0)
            broadcast(model.beta, src=0)
        print_log(
            f"Tip-Adapter-F on {feats.size(0)} validation images: alpha "
            f"{found['alpha']:.4g}, beta {found['beta']:.4g}, top-1 "
            f"{found['accuracy']:.2f} (before the search "
            f"{found['initial']:.2f}, zero-shot {found['zero_shot']:.2f})",
            logger='current')
