# Apple's DFN-5B CLIP ViT-H/14 (open_clip ViT-H-14-quickgelu, dfn5b): the
# ViT-H-14 shape with QuickGELU. Its preprocessing differs from OpenAI's: the
# whole image is squashed to 224 x 224 (bicubic, no crop); OpenAI's mean /
# std.
_base_ = './clip_vit-huge-p14_laion2b.py'

model = dict(
    vision_backbone=dict(
        layer_cfgs=dict(act_cfg=dict(type='mmpretrain.QuickGELU'))),
    text_backbone=dict(act_cfg=dict(type='mmpretrain.QuickGELU')),
    image_preprocess=dict(resize_mode='squash', interpolation='bicubic'))
