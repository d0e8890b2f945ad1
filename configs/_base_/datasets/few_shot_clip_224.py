# Few-shot training (FewShotDataset: `shots` images per class, seeded; the
# draw is written to the work dir by tools/train.py and read back on
# --resume) with CoOp's augmentation: RandomResizedCrop (bicubic) + flip at
# 224 px. Leaf configs set the wrapped `dataset` and `shots`.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='RandomResizedCrop',
        scale=224,
        backend='pillow',
        interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
# Persistent workers: MMEngine seeds new workers alike each epoch, so
# without them every epoch would repeat the same crops and flips.
train_dataloader = dict(
    batch_size=32,
    num_workers=4,
    persistent_workers=True,
    dataset=dict(type='FewShotDataset', shots=16, seed=1),
    sampler=dict(type='DefaultSampler', shuffle=True),
)
