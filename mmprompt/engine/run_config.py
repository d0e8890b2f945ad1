# Copyright (c) mmprompt contributors. All rights reserved.
"""What a config leaves to the run: settings decided by the data, and the
hooks its inputs ask for.

:meth:`~mmprompt.engine.QuietRunner.from_cfg` (the configs' ``runner_type``)
calls :func:`complete_config`, so ``RUNNERS.build(Config.fromfile(cfg))``
runs what ``tools/train.py`` and ``tools/test.py`` run; the tools only
merge their command line into the config.
"""
import copy
import os.path as osp

from mmengine.config import Config

from mmprompt.utils.errors import InvalidInputError


def fill_few_shot_list(dataset: dict, work_dir: str) -> None:
    """Write / read the few-shot draw beside the run, unless set.

    Args:
        dataset (dict): A dataset config, changed in place.
        work_dir (str): The run's work dir.
    """
    if dataset.get('type') == 'FewShotDataset' and not dataset.get(
            'list_file') and dataset.get('shots'):
        dataset['list_file'] = osp.join(
            work_dir, f"few_shot_{dataset['shots']}shots_seed"
            f"{dataset.get('seed', 1)}_{dataset.get('split', 'all')}.json")


def fill_val_exclude(cfg: Config) -> None:
    """A validation FewShotDataset with ``exclude='train'`` leaves out the
    training set's draw (its shots, seed, split and list file)."""
    val = cfg.get('val_dataloader') or {}
    dataset = val.get('dataset') or {}
    if dataset.get('exclude') != 'train':
        return
    train = cfg.train_dataloader.dataset
    if train.get('type') != 'FewShotDataset':
        raise InvalidInputError(
            "val_dataloader.dataset.exclude='train' needs a FewShotDataset "
            'training set')
    dataset['exclude'] = {
        k: train[k]
        for k in ('shots', 'seed', 'split', 'list_file')
        if train.get(k) is not None
    }


def fill_from_train_set(cfg: Config) -> None:
    """Unset model settings the training set decides: ``categories`` (its
    class names) and, for a model with a cache of the training images
    (Tip-Adapter-F), ``cache_size`` (its length). Builds it once."""
    from mmprompt.registry import DATASETS, MODELS
    model_cls = MODELS.get(cfg.model.type)
    size = getattr(model_cls, 'cache_from_train_set',
                   False) and cfg.model.get('cache_size') is None
    if cfg.model.get('categories') is not None and not size:
        return
    dataset = DATASETS.build(copy.deepcopy(cfg.train_dataloader.dataset))
    if cfg.model.get('categories') is None:
        classes = list(dataset.metainfo.get('classes') or ())
        if not classes:
            raise InvalidInputError('the training set has no class names; '
                                    'set model.categories')
        cfg.model.categories = classes
    if size:
        cfg.model.cache_size = len(dataset)


def is_learned_load(cfg: Config) -> bool:
    """Whether ``cfg.load_from`` is a learned-prompt file (and no resume)."""
    from mmprompt.models.prompt_learning.learned import is_learned_file
    load_from = cfg.get('load_from')
    return bool(load_from) and not cfg.get('resume') and osp.isfile(
        load_from) and is_learned_file(load_from)


def complete_config(cfg: Config) -> Config:
    """Fill in, in place, what a config leaves to the run.

    - A ``load_from`` that is a learned-prompt file (``tools/train.py``'s
      ``learned.pth``): the model's categories default to those it was
      trained on (:func:`~mmprompt.apis.builder.learned_config`), and each
      loop classifies among its dataset's classes (a
      :class:`~mmprompt.engine.PromptClassesHook`); the training set is
      not read.
    - Otherwise, a config with ``train_dataloader`` and ``train_cfg`` (a
      prompt learner): the few-shot draw's list file in the work dir, the
      validation split's exclusion of that draw, and the model's
      ``categories`` / ``cache_size`` from the training set.
    - A zero-shot model's ``examples`` / ``prototype_cache_dir``
      (inputs of its caller, not arguments of the model): a
      :class:`~mmprompt.engine.PrepareZeroShotHook`.
    - A top-level ``precision`` other than ``'fp32'``: a
      :class:`~mmprompt.engine.PrecisionHook`.

    Args:
        cfg (Config): The whole config, ``work_dir`` set.

    Returns:
        Config: ``cfg``.
    """
    from mmprompt.engine.hooks import pop_zero_shot_inputs
    from mmprompt.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    hooks = list(cfg.get('custom_hooks') or [])
    zero_shot = pop_zero_shot_inputs(cfg.model)
    if zero_shot:
        hooks.append(dict(type='PrepareZeroShotHook', **zero_shot))
    precision = cfg.get('precision') or 'fp32'
    if precision != 'fp32':
        hooks.append(dict(type='PrecisionHook', precision=precision))
    if is_learned_load(cfg):
        from mmprompt.apis.builder import learned_config
        learned_config(cfg, cfg.load_from)
        defaults = (cfg.get('default_hooks') or {}).values()
        if not any((h or {}).get('type') == 'PromptClassesHook'
                   for h in [*hooks, *defaults]):
            hooks.append(dict(type='PromptClassesHook'))
        cfg.custom_hooks = hooks
        return cfg
    cfg.custom_hooks = hooks
    if cfg.get('train_dataloader') and cfg.get('train_cfg'):
        fill_few_shot_list(cfg.train_dataloader.dataset, cfg.work_dir)
        fill_val_exclude(cfg)
        fill_from_train_set(cfg)
    return cfg
