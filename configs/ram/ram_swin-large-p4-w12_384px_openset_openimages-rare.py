# RAM open-set on OpenImages-rare: its 200 categories, unseen in training,
# embedded by CLIP ViT-B/16's text tower with RAM's 63 templates.
_base_ = [
    './ram_swin-large-p4-w12_384px_openset.py',
    '../_base_/datasets/openimages_tagging_384px.py'
]

data_root = 'data/openimages_rare_200'
model = dict(
    categories=data_root + '/openimages_rare_200_ram_taglist.txt',
    templates='ram_openset')
test_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        ann_file='openimages_rare_200_ram_annots.txt',
        classes='openimages_rare_200_ram_taglist.txt',
        # The model scores exactly the benchmark's categories, in order.
        model_tag_list=None))
# Embeds the categories once the weights are loaded (Runner.test() does not).
custom_hooks = [dict(type='PrepareOpensetHook')]
