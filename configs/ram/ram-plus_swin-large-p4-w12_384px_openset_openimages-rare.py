# RAM++ open-set on OpenImages-rare: its 200 categories, unseen in training,
# each with 51 LLM descriptions embedded by CLIP ViT-B/16's text tower.
_base_ = [
    './ram-plus_swin-large-p4-w12_384px_openset.py',
    '../_base_/datasets/openimages_tagging_384px.py'
]

data_root = 'data/openimages_rare_200'
# A JSON list of {category: [51 descriptions]}, the order of the tag list.
model = dict(
    categories=f'{data_root}/openimages_rare_200_llm_tag_descriptions.json')
test_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        ann_file='openimages_rare_200_ram_annots.txt',
        classes='openimages_rare_200_ram_taglist.txt',
        # The model scores exactly the benchmark's categories, in order.
        model_tag_list=None))
# Embeds the categories once the weights are loaded (Runner.test() does not).
custom_hooks = [dict(type='PrepareOpensetHook')]
