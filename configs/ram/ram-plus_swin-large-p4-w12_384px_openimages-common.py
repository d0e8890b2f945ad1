# RAM++'s 4585-tag vocabulary on OpenImages-common (214 tags, mapped by name).
_base_ = [
    '../_base_/models/ram-plus_swin-large-p4-w12_384px.py',
    '../_base_/datasets/openimages_tagging_384px.py',
    '../_base_/default_runtime.py'
]
