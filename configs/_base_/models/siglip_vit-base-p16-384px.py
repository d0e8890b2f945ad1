# SigLIP ViT-B/16, 384px (open_clip's ViT-B-16-SigLIP-384).
_base_ = './siglip_vit-base-p16.py'

model = dict(vision_backbone=dict(img_size=384))
