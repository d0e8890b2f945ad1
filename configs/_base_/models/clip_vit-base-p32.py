# OpenAI CLIP ViT-B/32: ViT-B/16 with 32px patches.
_base_ = './clip_vit-base-p16.py'

model = dict(vision_backbone=dict(patch_size=32))
