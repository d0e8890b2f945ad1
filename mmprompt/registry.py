# Copyright (c) mmprompt contributors. All rights reserved.
"""mmprompt's registries: one child for every MMPreTrain node.

With ``default_scope = 'mmprompt'`` our classes win on a name collision
(``CLIPZeroShot``), everything else resolves through the parent
(``VisionTransformer``, ``CIFAR100``), and MMPreTrain's class stays reachable
as ``mmpretrain.<Name>``.
"""
from typing import Optional

from mmengine.registry import Registry
from mmpretrain import registry as mmpretrain

__all__ = [
    'RUNNERS', 'RUNNER_CONSTRUCTORS', 'LOOPS', 'HOOKS', 'LOG_PROCESSORS',
    'OPTIMIZERS', 'OPTIM_WRAPPERS', 'OPTIM_WRAPPER_CONSTRUCTORS',
    'PARAM_SCHEDULERS', 'DATASETS', 'DATA_SAMPLERS', 'TRANSFORMS', 'MODELS',
    'MODEL_WRAPPERS', 'WEIGHT_INITIALIZERS', 'BATCH_AUGMENTS', 'TASK_UTILS',
    'TOKENIZER', 'METRICS', 'EVALUATORS', 'VISUALIZERS', 'VISBACKENDS'
]


def _child(kind: str,
           parent: Registry,
           package: Optional[str] = None) -> Registry:
    """A node of scope ``mmprompt`` under ``parent``, its modules in
    ``mmprompt.<package>``."""
    return Registry(
        kind,
        parent=parent,
        scope='mmprompt',
        locations=[f'mmprompt.{package}'] if package else [])


RUNNERS = _child('runner', mmpretrain.RUNNERS, 'engine')
RUNNER_CONSTRUCTORS = _child('runner constructor',
                             mmpretrain.RUNNER_CONSTRUCTORS, 'engine')
LOOPS = _child('loop', mmpretrain.LOOPS, 'engine')
HOOKS = _child('hook', mmpretrain.HOOKS, 'engine')
LOG_PROCESSORS = _child('log processor', mmpretrain.LOG_PROCESSORS, 'engine')
OPTIMIZERS = _child('optimizer', mmpretrain.OPTIMIZERS, 'engine')
OPTIM_WRAPPERS = _child('optimizer_wrapper', mmpretrain.OPTIM_WRAPPERS,
                        'engine')
OPTIM_WRAPPER_CONSTRUCTORS = _child('optimizer wrapper constructor',
                                    mmpretrain.OPTIM_WRAPPER_CONSTRUCTORS,
                                    'engine')
PARAM_SCHEDULERS = _child('parameter scheduler', mmpretrain.PARAM_SCHEDULERS,
                          'engine')

DATASETS = _child('dataset', mmpretrain.DATASETS, 'datasets')
DATA_SAMPLERS = _child('data sampler', mmpretrain.DATA_SAMPLERS, 'datasets')
TRANSFORMS = _child('transform', mmpretrain.TRANSFORMS, 'datasets')

MODELS = _child('model', mmpretrain.MODELS, 'models')
MODEL_WRAPPERS = _child('model_wrapper', mmpretrain.MODEL_WRAPPERS, 'models')
WEIGHT_INITIALIZERS = _child('weight initializer',
                             mmpretrain.WEIGHT_INITIALIZERS, 'models')
BATCH_AUGMENTS = _child('batch augment', mmpretrain.BATCH_AUGMENTS, 'models')
TASK_UTILS = _child('task util', mmpretrain.TASK_UTILS, 'models')
TOKENIZER = _child('tokenizer', mmpretrain.TOKENIZER, 'models')

METRICS = _child('metric', mmpretrain.METRICS, 'evaluation')
EVALUATORS = _child('evaluator', mmpretrain.EVALUATORS, 'evaluation')

# mmprompt draws nothing of its own: these nodes (no ``locations``) only
# keep ``default_scope='mmprompt'`` resolving MMPreTrain's visualizers.
VISUALIZERS = _child('visualizer', mmpretrain.VISUALIZERS)
VISBACKENDS = _child('vis_backend', mmpretrain.VISBACKENDS)
