_base_ = [
    '../_base_/models/tip-adapter-f_vit-base-p16.py',
    '../_base_/datasets/few_shot_tip-adapter_224.py',
    '../_base_/schedules/tip-adapter-f_adamw-cos_bs256.py',
]
# Tip-Adapter-F on your own images, no code: data/custom/train/<class>/*.jpg
# (at least 20 per class: 16 shots + 4 for validation, drawn from the rest)
# and data/custom/test/<class>/*.jpg, as for CoOp. With a folder of
# validation images of your own, point val_dataloader.dataset at it instead
# (a CustomDataset over data/custom/val).
data_root = 'data/custom'
train_dataloader = dict(
    dataset=dict(
        dataset=dict(
            type='CustomDataset',
            data_root=data_root,
            data_prefix='train',
            pipeline={{_base_.train_pipeline}})))
val_dataloader = dict(
    dataset=dict(
        dataset=dict(
            type='CustomDataset',
            data_root=data_root,
            data_prefix='train',
            pipeline=[
                dict(type='CLIPPreprocess', scale=224),
                dict(type='PackInputs')
            ])))
test_dataloader = dict(
    batch_size=64,
    num_workers=2,
    dataset=dict(
        type='CustomDataset',
        data_root=data_root,
        data_prefix='test',
        pipeline=[
            dict(type='CLIPPreprocess', scale=224),
            dict(type='PackInputs')
        ]),
    sampler=dict(type='DefaultSampler', shuffle=False))
test_evaluator = [
    dict(type='Accuracy', topk=(1, 5)),
    dict(type='MeanPerClassRecall'),
]
test_cfg = dict()
