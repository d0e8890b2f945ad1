# SigLIP 2 So400m/16, 384px (open_clip's ViT-SO400M-16-SigLIP2-384, timm's
# vit_so400m_patch16_siglip_384): 27 x 1152 towers with MLP 4304 and
# tanh-approximated GELU in both, the attention head's MLP included.
_base_ = './siglip2_vit-base-p16.py'

model = dict(
    vision_backbone=dict(
        arch=dict(
            _delete_=True,
            embed_dims=1152,
            num_layers=27,
            num_heads=16,
            feedforward_channels=4304),
        img_size=384,
        patch_size=16,
        layer_cfgs=dict(act_cfg=dict(type='GELU', approximate='tanh')),
        attn_pool=dict(act_cfg=dict(type='GELU', approximate='tanh'))),
    text_backbone=dict(
        embed_dims=1152,
        num_layers=27,
        num_heads=16,
        feedforward_channels=4304),
    tokenizer=dict(
        tokenizer_file='data/siglip2/vit-so400m-p16-384px/tokenizer.json'),
    proj_dims=1152)
