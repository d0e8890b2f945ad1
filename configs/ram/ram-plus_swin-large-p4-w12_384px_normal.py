# RAM++ tagging with the 4585-tag vocabulary (English and Chinese names).
_base_ = [
    '../_base_/models/ram-plus_swin-large-p4-w12_384px.py',
    '../_base_/default_runtime.py'
]
