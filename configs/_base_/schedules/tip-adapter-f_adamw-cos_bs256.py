# Training runtime and Tip-Adapter-F's recipe (gaopengcuhk/Tip-Adapter
# main.py, configs/*.yaml): AdamW lr 0.001, eps 1e-4 (torch's default weight
# decay 0.01), cosine to 0 over every iteration of 20 epochs, batch 256; the
# cache keys are the mean of 10 augmented views; alpha / beta searched after
# training over 200 x 20 values (beta up to 7, alpha up to 3) on the
# validation split (TipAdapterHook; the config needs val_dataloader).
_base_ = ['../default_runtime.py']

max_epochs = 20
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=0.001, eps=1e-4, weight_decay=0.01))
param_scheduler = [
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs,
        eta_min=0,
        by_epoch=True,
        begin=0,
        end=max_epochs,
        convert_to_iter_based=True),
]
# Validation (alpha / beta as trained) once, after the last epoch.
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict()
val_evaluator = dict(type='Accuracy', topk=(1, ))
custom_hooks = [
    dict(
        type='TipAdapterHook',
        augment_epochs=10,
        search_scale=(7, 3),
        search_step=(200, 20))
]
# Training saves what was learned only (the frozen CLIP is not in the
# model's state dict), every few epochs, for --resume.
default_hooks = dict(
    param_scheduler=dict(_delete_=True, type='ParamSchedulerHook'),
    checkpoint=dict(
        _delete_=True, type='CheckpointHook', interval=5, max_keep_ckpts=2),
    logger=dict(type='LoggerHook', interval=10),
    # Each loop classifies among its dataset's classes; EpochSeedHook and
    # WeightsOnlyCheckpointHook make --resume continue exactly. Default
    # hooks (merged by key), so a leaf's custom_hooks keep them.
    prompt_classes=dict(type='PromptClassesHook'),
    epoch_seed=dict(type='EpochSeedHook'),
    weights_only_checkpoint=dict(type='WeightsOnlyCheckpointHook'))
randomness = dict(seed=1, deterministic=False)
