_base_ = [
    '../_base_/models/coop_vit-base-p16.py',
    '../_base_/datasets/few_shot_clip_224.py',
    '../_base_/schedules/coop_sgd-cos_bs32.py',
]
# CoOp on your own images, no code: data/custom/train/<class>/*.jpg and
# data/custom/test/<class>/*.jpg (CustomDataset; class names = folder names,
# '_' read as a space in the prompts). 16 shots, 200 epochs.
data_root = 'data/custom'
train_dataloader = dict(
    dataset=dict(
        dataset=dict(
            type='CustomDataset',
            data_root=data_root,
            data_prefix='train',
            pipeline={{_base_.train_pipeline}})))
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
