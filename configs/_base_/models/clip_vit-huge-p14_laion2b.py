# open_clip ViT-H-14 on LAION-2B (laion2b_s32b_b79k): 224px, 32 x 1280 image
# tower (16 heads of 80), 24 x 1024 text tower, 1024-d joint space. Unlike
# OpenAI's CLIP it was trained with exact GELU (nn.GELU) in both towers.
# Preprocessing: OpenAI's (bicubic resize of the short side, centre crop,
# OpenAI's mean / std).
_base_ = './clip_vit-base-p16.py'

model = dict(
    vision_backbone=dict(
        arch='huge',  # 1280 wide, 32 layers, 16 heads, MLP 5120
        patch_size=14,
        layer_cfgs=dict(act_cfg=dict(type='GELU'))),
    text_backbone=dict(
        embed_dims=1024,
        num_layers=24,
        num_heads=16,
        act_cfg=dict(type='GELU')),
    proj_dims=1024)
