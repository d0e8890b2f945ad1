# OpenImages tagging benchmarks of the RAM papers, in recognize-anything's
# layout: data/openimages_common_214/ holds imgs/<name>.jpg, the tag list
# openimages_common_214_ram_taglist.txt and the annotations
# openimages_common_214_ram_annots.txt ("name,tag,tag,..." per line, the name
# without .jpg). RAM's own tag list (ram_tag_list.txt) is in data/ram/; the
# dataset maps the benchmark's tags to the model's with it. Relative tag-list
# paths are taken from data_root.
dataset_type = 'TaggingDataset'
data_root = 'data/openimages_common_214'

test_pipeline = [
    # RAM's preprocessing: PIL decoding, RGB, 384x384 bilinear resize (no
    # crop, no EXIF rotation). The output is BGR like LoadImageFromFile's,
    # for the model's to_rgb=True; the model normalises.
    dict(type='RAMPreprocess', scale=384),
    dict(type='PackInputs'),
]

test_dataloader = dict(
    batch_size=16,
    num_workers=4,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='openimages_common_214_ram_annots.txt',
        data_prefix='imgs',
        img_suffix='.jpg',
        classes='openimages_common_214_ram_taglist.txt',
        model_tag_list='../ram/ram_tag_list.txt',
        pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
# mAP, class-wise (CP, CR, CF1) and overall (OP, OR, OF1) precision, recall
# and F1 of the tags the model selects with its own thresholds.
test_evaluator = dict(type='TaggingMetric')
test_cfg = dict()
