_base_ = ['../coop/coop_vit-base-p16_pe-core-pre_16shots_custom.py']
# CoCoOp's recipe on a frozen PE-Core B/16: 'a photo of a' + meta-net,
# batch 1, 10 epochs.
model = dict(type='CoCoOp', n_ctx=4, ctx_init='a photo of a')
train_dataloader = dict(batch_size=1)
param_scheduler = [
    dict(type='ConstantLR', factor=0.005, by_epoch=True, begin=0, end=2),
    dict(type='CosineAnnealingLR', T_max=10, by_epoch=True, begin=0, end=10)
]
train_cfg = dict(max_epochs=10)
