# SigLIP 2 ViT-B/16, 384px (open_clip's ViT-B-16-SigLIP2-384).
_base_ = './siglip2_vit-base-p16.py'

model = dict(
    vision_backbone=dict(img_size=384),
    tokenizer=dict(
        tokenizer_file='data/siglip2/vit-base-p16-384px/tokenizer.json'))
