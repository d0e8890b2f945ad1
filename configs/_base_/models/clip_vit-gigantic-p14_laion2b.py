# open_clip ViT-bigG-14 on LAION-2B (laion2b_s39b_b160k): 224px, 48 x 1664
# image tower (16 heads of 104, MLP 8192), 32 x 1280 text tower (20 heads),
# 1280-d joint space, GELU; OpenAI's preprocessing. "gigantic" is timm's
# name for bigG (vit_gigantic_patch14_clip_224).
_base_ = './clip_vit-huge-p14_laion2b.py'

model = dict(
    vision_backbone=dict(
        arch=dict(
            _delete_=True,
            embed_dims=1664,
            num_layers=48,
            num_heads=16,
            feedforward_channels=8192)),
    text_backbone=dict(embed_dims=1280, num_layers=32, num_heads=20),
    proj_dims=1280)
