# OpenAI CLIP ViT-L/14: 224px, 24 x 1024 image tower, 12 x 768 text tower.
_base_ = './clip_vit-base-p16.py'

model = dict(
    vision_backbone=dict(arch='large', patch_size=14),  # 1024, 24, 16 heads
    text_backbone=dict(embed_dims=768, num_heads=12),
    proj_dims=768)
