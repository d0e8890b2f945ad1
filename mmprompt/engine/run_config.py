# Copyright (c) mmprompt contributors. All rights reserved.
"""What a config leaves to the run (settings decided by the data, hooks its
inputs ask for), so that a config alone describes what the tools run."""
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
    """Fill in ``cfg`` in place and return it: the hooks its
    zero-shot inputs and ``precision`` ask for; for a learned-prompt
    ``load_from``, its categories and a ``PromptClassesHook``; else, for a
    prompt learner, the few-shot files and what the training set decides.

    Args:
        cfg (Config): The whole config, ``work_dir`` set.

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
    elif cfg.get('train_dataloader') and cfg.get('train_cfg'):
        fill_few_shot_list(cfg.train_dataloader.dataset, cfg.work_dir)
        fill_val_exclude(cfg)
        fill_from_train_set(cfg)
    cfg.custom_hooks = hooks
    return cfg
