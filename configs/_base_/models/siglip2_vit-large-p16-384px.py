# SigLIP 2 ViT-L/16, 384px (open_clip's ViT-L-16-SigLIP2-384, timm's
# vit_large_patch16_siglip_384): 24 x 1024 towers, exact GELU in the image
# tower.
_base_ = './siglip2_vit-base-p16.py'

model = dict(
    vision_backbone=dict(arch='large', img_size=384),
    text_backbone=dict(embed_dims=1024, num_layers=24, num_heads=16),
    tokenizer=dict(
        tokenizer_file='data/siglip2/vit-large-p16-384px/tokenizer.json'),
    proj_dims=1024)
