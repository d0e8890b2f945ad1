# Few-shot training for Tip-Adapter-F (FewShotDataset: `shots` images per
# class, seeded, the draw written to the work dir) with Tip-Adapter's
# augmentation: RandomResizedCrop of 50-100% of the area (bicubic) + flip at
# 224 px, batch 256. Persistent workers: MMEngine reseeds new workers alike
# each epoch, which would repeat the same crops in every augmented pass.
#
# Validation split (alpha / beta are chosen on it, never on the test set):
# min(shots, 4) images per class (shots='val', CoOp's few-shot validation
# size, following an override of the training shots) drawn with the same seed
# from the training images NOT chosen as shots (exclude='train';
# the runner fills in the training draw), with the test preprocessing:
# each class needs shots + min(shots, 4) images. Leaf configs set both
# wrapped `dataset`s.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='RandomResizedCrop',
        scale=224,
        crop_ratio_range=(0.5, 1.0),
        backend='pillow',
        interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=256,
    num_workers=4,
    persistent_workers=True,
    dataset=dict(type='FewShotDataset', shots=16, seed=1),
    sampler=dict(type='DefaultSampler', shuffle=True),
)
val_dataloader = dict(
    batch_size=64,
    num_workers=4,
    dataset=dict(
        type='FewShotDataset', shots='val', seed=1, exclude='train'),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
