# Meta's MetaCLIP ViT-H/14 on 2.5B pairs (open_clip ViT-H-14-quickgelu,
# metaclip_fullcc): the ViT-H-14 shape with QuickGELU; OpenAI's
# preprocessing.
_base_ = './clip_vit-huge-p14_laion2b.py'

model = dict(
    vision_backbone=dict(
        layer_cfgs=dict(act_cfg=dict(type='mmpretrain.QuickGELU'))),
    text_backbone=dict(act_cfg=dict(type='mmpretrain.QuickGELU')))
