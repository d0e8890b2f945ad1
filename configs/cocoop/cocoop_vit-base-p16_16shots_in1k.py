_base_ = ['../coop/coop_vit-base-p16_16shots_in1k.py']
# CoCoOp's recipe: context from 'a photo of a' plus the meta-net, batch 1,
# 10 epochs, SGD lr 0.002 (cosine, 1 warm-up epoch at 1e-5).
model = dict(type='CoCoOp', n_ctx=4, ctx_init='a photo of a')
train_dataloader = dict(batch_size=1)
param_scheduler = [
    dict(type='ConstantLR', factor=0.005, by_epoch=True, begin=0, end=2),
    dict(type='CosineAnnealingLR', T_max=10, by_epoch=True, begin=0, end=10)
]
train_cfg = dict(max_epochs=10)
