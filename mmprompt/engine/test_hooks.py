# Copyright (c) mmprompt contributors. All rights reserved.
"""The hooks ``tools/test.py`` adds to a test run: a progress bar, the
speed of the loop, and a check of the labels against the categories."""
import time
from typing import Optional

import numpy as np
import torch
from mmengine.dist import all_reduce, get_dist_info, is_main_process
from mmengine.hooks import Hook

from mmprompt.utils.errors import UserError
from mmprompt.utils.progress import Progress
from .hooks import runner_model
from .prompt_hooks import fit_topk


class TestProgressHook(Hook):
    """A progress bar over the test set on rank 0, which counts its batches
    times the world size (every rank has an equal share)."""
    priority = 'VERY_LOW'

    def __init__(self) -> None:
        self.bar = None

    def before_test_epoch(self, runner) -> None:
        if is_main_process():
            self.bar = Progress(len(runner.test_dataloader.dataset))

    def after_test_iter(self,
                        runner,
                        batch_idx,
                        data_batch=None,
                        outputs=None) -> None:
        if self.bar is not None:
            self.bar.update(len(outputs or ()) * get_dist_info()[1])

    def after_test_epoch(self, runner, metrics=None) -> None:
        if self.bar is not None:
            self.bar.close()
        self.bar = None


class TestSpeedHook(Hook):
    """Images per second of the whole test loop, also without its first
    batch (warm-up, compilation)."""
    priority = 'VERY_LOW'

    def __init__(self) -> None:
        self.images = self.first_images = 0
        self.start = self.first_end = self.end = None

    def before_test_epoch(self, runner) -> None:
        self.start = time.perf_counter()

    def after_test_iter(self,
                        runner,
                        batch_idx,
                        data_batch=None,
                        outputs=None) -> None:
        self.images += len(outputs or ())
        if self.first_end is None:
            self.first_end, self.first_images = time.perf_counter(), \
                self.images

    def after_test_epoch(self, runner, metrics=None) -> None:
        self.end = time.perf_counter()
        if get_dist_info()[1] > 1:
            # All ranks' samples, less the sampler's padding.
            count = torch.tensor([self.images, self.first_images])
            all_reduce(count)
            size = len(runner.test_dataloader.dataset)
            self.images = min(int(count[0]), size)
            self.first_images = min(int(count[1]), size)

    def summary(self) -> dict:
        """``images``, ``seconds``, ``images_per_s`` and the same after the
        first batch (None with a single batch)."""
        seconds = self.end - self.start
        rest = self.images - self.first_images
        rest_s = self.end - self.first_end
        return dict(
            images=self.images,
            seconds=seconds,
            images_per_s=self.images / seconds if seconds > 0 else None,
            images_per_s_after_first_batch=rest /
            rest_s if rest and rest_s > 0 else None)


class CheckLabelsHook(Hook):
    """Before testing, once the categories are set, refuse a label beyond
    the model's categories and fit the evaluator's top-k to them."""
    priority = 'LOW'

    def before_test(self, runner) -> None:
        num = num_categories(runner_model(runner))
        if num is None:
            return
        dataset = runner.test_dataloader.dataset
        top = max_label(dataset)
        if top is not None and top >= num:
            raise UserError(
                f'the dataset has labels up to {top}, the model only {num} '
                'categories (0 to {}); check model.categories'.format(num - 1))
        fit_topk(runner.test_loop.evaluator, num)


def num_categories(model) -> Optional[int]:
    """How many classes the model predicts, if it says."""
    for attr in ('categories', 'openset_categories'):
        names = getattr(model, attr, None)
        if names:
            return len(names)
    num = getattr(model, 'num_classes', None)
    return int(num) if num else None


def max_label(dataset) -> Optional[int]:
    """The largest ground-truth label of ``dataset``, or None."""
    tops = []
    for i in range(len(dataset)):
        label = dataset.get_data_info(i).get('gt_label')
        values = np.asarray([] if label is None else label)
        if values.size:
            tops.append(int(values.max()))
    return max(tops) if tops else None
