# OpenAI CLIP ViT-B/16: 224px, 12 x 768 image tower, 12 x 512 text tower.
model = dict(
    type='CLIPZeroShot',
    vision_backbone=dict(
        # MMPreTrain's VisionTransformer, its last block at the class token
        # only (the one token read).
        type='CLIPVisionTransformer',
        arch='base',  # 768 wide, 12 layers, 12 heads, MLP 3072
        img_size=224,
        patch_size=16,
        # OpenAI's layout: LayerNorm after the embeddings (ln_pre, which
        # also drops the patch conv bias), eps 1e-5, QuickGELU, final norm
        # (ln_post) on the class token.
        pre_norm=True,
        norm_cfg=dict(type='LN', eps=1e-5),
        layer_cfgs=dict(act_cfg=dict(type='mmpretrain.QuickGELU')),
        final_norm=True,
        out_type='cls_token'),
    text_backbone=dict(
        type='CLIPTextTransformer',
        vocab_size=49408,
        context_length=77,
        embed_dims=512,
        num_layers=12,
        num_heads=8),
    tokenizer=dict(type='CLIPTokenizer'),
    proj_dims=512,
    # OpenAI's mean and std of RGB in [0, 255]. to_rgb: images loaded with
    # LoadImageFromFile are BGR; datasets that give RGB arrays set it False.
    data_preprocessor=dict(
        type='ClsDataPreprocessor',
        mean=[0.48145466 * 255, 0.4578275 * 255, 0.40821073 * 255],
        std=[0.26862954 * 255, 0.26130258 * 255, 0.27577711 * 255],
        to_rgb=True),
    templates=['a photo of a {}.'])
