# CIFAR-100 test split (10,000 images) for zero-shot evaluation. The official
# python archive lives under data/cifar100; MMPreTrain's CIFAR100 downloads
# it there and checks its md5 when it is missing.
dataset_type = 'CIFAR100'
data_root = 'data/cifar100'

test_pipeline = [
    # OpenAI's preprocessing (PIL bicubic resize of the short side, center
    # crop). CIFAR gives 32x32 RGB arrays: array_order='rgb'. The output is
    # BGR like LoadImageFromFile's, for the model's to_rgb=True.
    dict(type='CLIPPreprocess', scale=224, array_order='rgb'),
    dict(type='PackInputs'),
]

test_dataloader = dict(
    batch_size=64,
    num_workers=2,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='test',
        pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
# Top-1, top-5 and mean per-class recall, as zero-shot papers report them.
test_evaluator = [
    dict(type='Accuracy', topk=(1, 5)),
    dict(type='MeanPerClassRecall'),
]
test_cfg = dict()
