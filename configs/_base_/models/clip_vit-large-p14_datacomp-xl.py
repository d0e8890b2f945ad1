# open_clip ViT-L-14 on DataComp-1B (datacomp_xl_s13b_b90k): OpenAI's
# ViT-L/14 shape (24 x 1024 image tower, 12 x 768 text tower) with exact GELU
# in both towers; OpenAI's preprocessing.
_base_ = './clip_vit-large-p14.py'

model = dict(
    vision_backbone=dict(layer_cfgs=dict(act_cfg=dict(type='GELU'))),
    text_backbone=dict(act_cfg=dict(type='GELU')))
