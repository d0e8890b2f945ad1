# ImageNet-1k validation (50,000 images) for zero-shot evaluation, in the
# usual layout: data/imagenet/val/*.JPEG and data/imagenet/meta/val.txt
# ("ILSVRC2012_val_00000001.JPEG 65" per line, labels in synset order).
dataset_type = 'ImageNet'
data_root = 'data/imagenet'

test_pipeline = [
    # OpenAI's preprocessing: PIL decoding and bicubic resize of the short
    # side, center crop, RGB. The output is BGR like LoadImageFromFile's,
    # for the model's to_rgb=True.
    dict(type='CLIPPreprocess', scale=224),
    dict(type='PackInputs'),
]

test_dataloader = dict(
    batch_size=64,
    num_workers=4,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='val',
        pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
# Top-1, top-5 and mean per-class recall, as zero-shot papers report them.
test_evaluator = [
    dict(type='Accuracy', topk=(1, 5)),
    dict(type='MeanPerClassRecall'),
]
test_cfg = dict()
