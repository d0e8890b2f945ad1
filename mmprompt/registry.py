# Copyright (c) mmprompt contributors. All rights reserved.
"""mmprompt's registries: one child for every MMPreTrain node.

Every node mirrors the MMPreTrain node of the same name, so that with
``default_scope = 'mmprompt'`` our own classes win on a name collision (our
``CLIPZeroShot``), everything else resolves through the parent
(``VisionTransformer``, ``CIFAR100``, ``Accuracy``), and MMPreTrain's class
stays reachable as ``mmpretrain.<Name>``.
"""
from mmengine.registry import Registry
from mmpretrain.registry import BATCH_AUGMENTS as MMPRETRAIN_BATCH_AUGMENTS
from mmpretrain.registry import DATA_SAMPLERS as MMPRETRAIN_DATA_SAMPLERS
from mmpretrain.registry import DATASETS as MMPRETRAIN_DATASETS
from mmpretrain.registry import EVALUATORS as MMPRETRAIN_EVALUATORS
from mmpretrain.registry import HOOKS as MMPRETRAIN_HOOKS
from mmpretrain.registry import LOG_PROCESSORS as MMPRETRAIN_LOG_PROCESSORS
from mmpretrain.registry import LOOPS as MMPRETRAIN_LOOPS
from mmpretrain.registry import METRICS as MMPRETRAIN_METRICS
from mmpretrain.registry import MODEL_WRAPPERS as MMPRETRAIN_MODEL_WRAPPERS
from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS
from mmpretrain.registry import \
    OPTIM_WRAPPER_CONSTRUCTORS as MMPRETRAIN_OPTIM_WRAPPER_CONSTRUCTORS
from mmpretrain.registry import OPTIM_WRAPPERS as MMPRETRAIN_OPTIM_WRAPPERS
from mmpretrain.registry import OPTIMIZERS as MMPRETRAIN_OPTIMIZERS
from mmpretrain.registry import PARAM_SCHEDULERS as MMPRETRAIN_PARAM_SCHEDULERS
from mmpretrain.registry import \
    RUNNER_CONSTRUCTORS as MMPRETRAIN_RUNNER_CONSTRUCTORS
from mmpretrain.registry import RUNNERS as MMPRETRAIN_RUNNERS
from mmpretrain.registry import TASK_UTILS as MMPRETRAIN_TASK_UTILS
from mmpretrain.registry import TOKENIZER as MMPRETRAIN_TOKENIZER
from mmpretrain.registry import TRANSFORMS as MMPRETRAIN_TRANSFORMS
from mmpretrain.registry import VISBACKENDS as MMPRETRAIN_VISBACKENDS
from mmpretrain.registry import VISUALIZERS as MMPRETRAIN_VISUALIZERS
from mmpretrain.registry import \
    WEIGHT_INITIALIZERS as MMPRETRAIN_WEIGHT_INITIALIZERS

__all__ = [
    'RUNNERS', 'RUNNER_CONSTRUCTORS', 'LOOPS', 'HOOKS', 'LOG_PROCESSORS',
    'OPTIMIZERS', 'OPTIM_WRAPPERS', 'OPTIM_WRAPPER_CONSTRUCTORS',
    'PARAM_SCHEDULERS', 'DATASETS', 'DATA_SAMPLERS', 'TRANSFORMS', 'MODELS',
    'MODEL_WRAPPERS', 'WEIGHT_INITIALIZERS', 'BATCH_AUGMENTS', 'TASK_UTILS',
    'TOKENIZER', 'METRICS', 'EVALUATORS', 'VISUALIZERS', 'VISBACKENDS'
]

#######################################################################
#                           mmprompt.engine                           #
#######################################################################

RUNNERS = Registry(
    'runner',
    parent=MMPRETRAIN_RUNNERS,
    scope='mmprompt',
    locations=['mmprompt.engine'])
RUNNER_CONSTRUCTORS = Registry(
    'runner constructor',
    parent=MMPRETRAIN_RUNNER_CONSTRUCTORS,
    scope='mmprompt',
    locations=['mmprompt.engine'])
LOOPS = Registry(
    'loop',
    parent=MMPRETRAIN_LOOPS,
    scope='mmprompt',
    locations=['mmprompt.engine'])
HOOKS = Registry(
    'hook',
    parent=MMPRETRAIN_HOOKS,
    scope='mmprompt',
    locations=['mmprompt.engine'])
LOG_PROCESSORS = Registry(
    'log processor',
    parent=MMPRETRAIN_LOG_PROCESSORS,
    scope='mmprompt',
    locations=['mmprompt.engine'])
OPTIMIZERS = Registry(
    'optimizer',
    parent=MMPRETRAIN_OPTIMIZERS,
    scope='mmprompt',
    locations=['mmprompt.engine'])
OPTIM_WRAPPERS = Registry(
    'optimizer_wrapper',
    parent=MMPRETRAIN_OPTIM_WRAPPERS,
    scope='mmprompt',
    locations=['mmprompt.engine'])
OPTIM_WRAPPER_CONSTRUCTORS = Registry(
    'optimizer wrapper constructor',
    parent=MMPRETRAIN_OPTIM_WRAPPER_CONSTRUCTORS,
    scope='mmprompt',
    locations=['mmprompt.engine'])
PARAM_SCHEDULERS = Registry(
    'parameter scheduler',
    parent=MMPRETRAIN_PARAM_SCHEDULERS,
    scope='mmprompt',
    locations=['mmprompt.engine'])

#######################################################################
#                          mmprompt.datasets                          #
#######################################################################

DATASETS = Registry(
    'dataset',
    parent=MMPRETRAIN_DATASETS,
    scope='mmprompt',
    locations=['mmprompt.datasets'])
DATA_SAMPLERS = Registry(
    'data sampler',
    parent=MMPRETRAIN_DATA_SAMPLERS,
    scope='mmprompt',
    locations=['mmprompt.datasets'])
TRANSFORMS = Registry(
    'transform',
    parent=MMPRETRAIN_TRANSFORMS,
    scope='mmprompt',
    locations=['mmprompt.datasets'])

#######################################################################
#                           mmprompt.models                           #
#######################################################################

MODELS = Registry(
    'model',
    parent=MMPRETRAIN_MODELS,
    scope='mmprompt',
    locations=['mmprompt.models'])
MODEL_WRAPPERS = Registry(
    'model_wrapper',
    parent=MMPRETRAIN_MODEL_WRAPPERS,
    scope='mmprompt',
    locations=['mmprompt.models'])
WEIGHT_INITIALIZERS = Registry(
    'weight initializer',
    parent=MMPRETRAIN_WEIGHT_INITIALIZERS,
    scope='mmprompt',
    locations=['mmprompt.models'])
BATCH_AUGMENTS = Registry(
    'batch augment',
    parent=MMPRETRAIN_BATCH_AUGMENTS,
    scope='mmprompt',
    locations=['mmprompt.models'])
TASK_UTILS = Registry(
    'task util',
    parent=MMPRETRAIN_TASK_UTILS,
    scope='mmprompt',
    locations=['mmprompt.models'])
TOKENIZER = Registry(
    'tokenizer',
    parent=MMPRETRAIN_TOKENIZER,
    scope='mmprompt',
    locations=['mmprompt.models'])

#######################################################################
#                         mmprompt.evaluation                         #
#######################################################################

METRICS = Registry(
    'metric',
    parent=MMPRETRAIN_METRICS,
    scope='mmprompt',
    locations=['mmprompt.evaluation'])
EVALUATORS = Registry(
    'evaluator',
    parent=MMPRETRAIN_EVALUATORS,
    scope='mmprompt',
    locations=['mmprompt.evaluation'])

#######################################################################
#                            visualization                            #
#######################################################################
# mmprompt draws nothing of its own: these nodes (no ``locations``) only
# keep ``default_scope='mmprompt'`` resolving MMPreTrain's visualizers.

VISUALIZERS = Registry(
    'visualizer',
    parent=MMPRETRAIN_VISUALIZERS,
    scope='mmprompt')
VISBACKENDS = Registry(
    'vis_backend',
    parent=MMPRETRAIN_VISBACKENDS,
    scope='mmprompt')
