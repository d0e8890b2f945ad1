# Registries of mmprompt first; MMPreTrain's and MMEngine's through parents.
default_scope = 'mmprompt'
custom_imports = dict(imports=['mmprompt.models'], allow_failed_imports=False)

# Inference only: the Runner's parameter-scheduler and checkpoint hooks are
# switched off (None removes a default hook).
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=100),
    param_scheduler=None,
    checkpoint=None,
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # Set enable=True to draw predictions. The mmpretrain. prefix imports
    # MMPreTrain's hooks, which a lookup through the parent would not.
    visualization=dict(type='mmpretrain.VisualizationHook', enable=False),
)

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # mmprompt's tools pick the backend from the device (nccl with CUDA,
    # gloo without); set dist_cfg.backend to override it.
    dist_cfg=dict(),
)

# Distributed runs wrap the model in DDP only if it has trainable
# parameters (frozen zero-shot models run as they are), and without
# device_ids on CPU.
model_wrapper_cfg = dict(type='DistributedWrapper')

# Training logs name the epoch out of all: Epoch(train) [2/10][5/50] ... eta.
log_processor = dict(type='EpochLogProcessor', by_epoch=True)

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(
    type='mmpretrain.UniversalVisualizer', vis_backends=vis_backends)

# QuietRunner logs the environment and config dump at DEBUG: the tools'
# --verbose (log_level='DEBUG') shows it.
runner_type = 'QuietRunner'
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=None, deterministic=False)
