# Copyright (c) mmprompt contributors. All rights reserved.
"""Hooks of prompt learning: each loop classifies among its own classes."""
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmprompt.registry import HOOKS


def _model(runner):
    model = runner.model
    return model.module if is_model_wrapper(model) else model


def _classes(dataloader):
    return list(dataloader.dataset.metainfo['classes'])


@HOOKS.register_module()
class PromptClassesHook(Hook):
    """Set the model's category names from each loop's dataset.

    Training uses the training set's classes; validation and testing those
    of their own sets (the novel classes of a base-to-novel split, with a
    unified context). Models without ``set_categories`` are left alone.
    """
    priority = 'HIGH'

    def _set(self, runner, dataloader) -> None:
        model = _model(runner)
        if hasattr(model, 'set_categories'):
            classes = _classes(dataloader)
            if list(model.categories) != classes:
                model.set_categories(classes)

    def before_train(self, runner) -> None:
        self._set(runner, runner.train_dataloader)

    def before_train_epoch(self, runner) -> None:
        self._set(runner, runner.train_dataloader)

    def before_val_epoch(self, runner) -> None:
        self._set(runner, runner.val_dataloader)

    def before_test(self, runner) -> None:
        # Before the checks of the loop's start (tools/test.py's labels
        # against the categories): a base-to-novel test set has more
        # classes than the prompts were trained on.
        self._set(runner, runner.test_dataloader)

    def before_test_epoch(self, runner) -> None:
        self._set(runner, runner.test_dataloader)
