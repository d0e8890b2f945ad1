# Meta's PE-Core B/16 (open_clip's PE-Core-B-16): 224px, 12 x 768 image
# tower with 2-D RoPE and attention pooling, 24 x 1024 text tower over 32
# tokens, a 1024-wide joint space.
model = dict(
    type='CLIPZeroShot',
    vision_backbone=dict(
        type='PEVisionTransformer',
        arch='base',  # 768 wide, 12 layers, 12 heads, MLP 3072
        img_size=224,
        patch_size=16,
        # timm's vit_pe_core_base_patch16_224: RoPE positions 1..14 on the
        # 14 x 14 grid; an 8-head attention pool with a 4x MLP.
        rope_ref_grid=(14, 14),
        attn_pool_cfg=dict(num_heads=8, mlp_ratio=4.0),
        norm_cfg=dict(type='LN', eps=1e-5),
        act_cfg=dict(type='GELU'),
        out_type='attn_pool'),
    text_backbone=dict(
        type='CLIPTextTransformer',
        vocab_size=49408,
        context_length=32,
        embed_dims=1024,
        num_layers=24,
        num_heads=16,
        act_cfg=dict(type='GELU')),
    tokenizer=dict(type='CLIPTokenizer'),
    proj_dims=1024,
    # timm's head, a Linear with a bias.
    visual_proj_bias=True,
    # open_clip's preprocess for PE-Core: a bilinear resize to the square,
    # no crop (the zero-shot leaves' pipelines say the same).
    image_preprocess=dict(resize_mode='squash', interpolation='bilinear'),
    # PE's mean and std, 0.5 for RGB in [0, 1]. to_rgb: images loaded with
    # LoadImageFromFile are BGR; datasets that give RGB arrays set it False.
    data_preprocessor=dict(
        type='ClsDataPreprocessor',
        mean=[127.5, 127.5, 127.5],
        std=[127.5, 127.5, 127.5],
        to_rgb=True),
    templates=['a photo of a {}.'])
