# Your own images, no code: an image folder per split, a folder per class
# (data/custom/test/<class>/*.jpg; MMPreTrain's CustomDataset, class names =
# folder names in sorted order, '_' read as a space in the prompts).
# Leaf configs take `data_root` for their training split (data/custom/train).
dataset_type = 'CustomDataset'
data_root = 'data/custom'

test_pipeline = [
    # OpenAI's preprocessing (see imagenet_bs64_clip_224.py); BGR out.
    dict(type='CLIPPreprocess', scale=224),
    dict(type='PackInputs'),
]

test_dataloader = dict(
    batch_size=64,
    num_workers=2,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix='test',
        pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
# Top-1, top-5 and mean per-class recall, as zero-shot papers report them.
test_evaluator = [
    dict(type='Accuracy', topk=(1, 5)),
    dict(type='MeanPerClassRecall'),
]
test_cfg = dict()
