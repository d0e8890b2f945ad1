# Few-shot training (FewShotDataset: `shots` images per class, seeded; the
# draw is written to the work dir by the runner and read back on
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
# No persistent workers: the schedule's EpochSeedHook gives each epoch's
# new workers seeds of their own (MMEngine's alone would repeat the same
# crops every epoch), a function of the seed and the epoch, so --resume
# draws what an uninterrupted run draws; persistent workers could not.
train_dataloader = dict(
    batch_size=32,
    num_workers=4,
    persistent_workers=False,
    dataset=dict(type='FewShotDataset', shots=16, seed=1),
    sampler=dict(type='DefaultSampler', shuffle=True),
)
