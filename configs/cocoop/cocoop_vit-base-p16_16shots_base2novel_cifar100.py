_base_ = ['../coop/coop_vit-base-p16_16shots_base2novel_cifar100.py']
# CoCoOp base-to-novel (its paper's main protocol): the meta-net on top of
# 'a photo of a', batch 1, 10 epochs (vit_b16_c4_ep10_batch1_ctxv1); train
# on the base classes, BaseNovelAccuracy on every class.
model = dict(type='CoCoOp')
train_dataloader = dict(batch_size=1)
param_scheduler = [
    dict(type='ConstantLR', factor=0.005, by_epoch=True, begin=0, end=2),
    dict(type='CosineAnnealingLR', T_max=10, by_epoch=True, begin=0, end=10)
]
train_cfg = dict(max_epochs=10)
