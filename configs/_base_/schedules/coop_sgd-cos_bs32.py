# Training runtime (default_runtime.py with the hooks training needs) and
# CoOp's recipe (KaiyangZhou/CoOp configs/trainers/CoOp/*.yaml): SGD lr 0.002,
# momentum 0.9, weight decay 5e-4, cosine over the epochs, the first epoch
# at a constant 1e-5 (factor 0.005 of 0.002), batch 32. MMEngine's
# ConstantLR restores the rate at step end - begin - 1: end=2 keeps epoch 0
# at 1e-5.
_base_ = ['../default_runtime.py']

max_epochs = 200
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.002, momentum=0.9, weight_decay=5e-4))
param_scheduler = [
    dict(type='ConstantLR', factor=0.005, by_epoch=True, begin=0, end=2),
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs,
        by_epoch=True,
        begin=0,
        end=max_epochs),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1000000)
# Training saves the learned prompts only (the frozen CLIP is not in the
# model's state dict), every few epochs, for --resume.
default_hooks = dict(
    param_scheduler=dict(_delete_=True, type='ParamSchedulerHook'),
    checkpoint=dict(
        _delete_=True, type='CheckpointHook', interval=10, max_keep_ckpts=2),
    logger=dict(type='LoggerHook', interval=10),
    # Each loop classifies among its dataset's classes; EpochSeedHook and
    # WeightsOnlyCheckpointHook make --resume continue exactly. Default
    # hooks (merged by key), so a leaf's custom_hooks keep them.
    prompt_classes=dict(type='PromptClassesHook'),
    epoch_seed=dict(type='EpochSeedHook'),
    weights_only_checkpoint=dict(type='WeightsOnlyCheckpointHook'))
randomness = dict(seed=1, deterministic=False)
