# SigLIP So400m/14, 384px (open_clip's ViT-SO400M-14-SigLIP-384, timm's
# vit_so400m_patch14_siglip_384): the shape-optimised ViT, 27 x 1152 with
# MLP 4304 in both towers; the text tower shares SigLIP B/16's vocabulary.
_base_ = './siglip_vit-base-p16.py'

model = dict(
    vision_backbone=dict(
        arch=dict(
            _delete_=True,
            embed_dims=1152,
            num_layers=27,
            num_heads=16,
            feedforward_channels=4304),
        img_size=384,
        patch_size=14),
    text_backbone=dict(
        embed_dims=1152,
        num_layers=27,
        num_heads=16,
        feedforward_channels=4304),
    tokenizer=dict(
        tokenizer_file='data/siglip/vit-so400m-p14-384px/tokenizer.json'),
    proj_dims=1152)
