# SigLIP ViT-B/16, 224px (open_clip's ViT-B-16-SigLIP, timm's
# vit_base_patch16_siglip_224): 12 x 768 image tower without class token,
# pooled by an attention head; 12 x 768 bidirectional text tower.
model = dict(
    type='SigLIPZeroShot',
    vision_backbone=dict(
        type='MAPVisionTransformer',
        arch='base',  # 768 wide, 12 layers, 12 heads, MLP 3072
        img_size=224,
        patch_size=16,
        # timm's layout: patch conv with bias, no LayerNorm before the
        # blocks, eps 1e-6, exact GELU, final norm on the patch tokens.
        norm_cfg=dict(type='LN', eps=1e-6),
        final_norm=True,
        # As timm: pixels past the last whole patch are dropped, not padded
        # (So400m/14 at 384 px: 27 x 27 patches).
        patch_cfg=dict(padding=0)),
    text_backbone=dict(
        type='CLIPTextTransformer',
        vocab_size=32000,
        context_length=64,
        embed_dims=768,
        num_layers=12,
        num_heads=12,
        norm_eps=1e-6,
        causal=False,
        pool='last',
        proj_bias=True,
        act_cfg=dict(type='GELU')),
    # The model's own tokenizer.json comes with its weights (the zoo's
    # Data Files); SigLIP's SentencePiece vocabulary pads with '</s>'.
    tokenizer=dict(
        type='SigLIPTokenizer',
        tokenizer_file='data/siglip/vit-base-p16/tokenizer.json',
        context_length=64,
        pad_token='</s>',
        vocab_size=32000),
    proj_dims=768,
    # Mean and std 0.5 of RGB in [0, 1]. to_rgb: images loaded with
    # LoadImageFromFile are BGR; datasets that give RGB arrays set it False.
    data_preprocessor=dict(
        type='ClsDataPreprocessor',
        mean=[127.5, 127.5, 127.5],
        std=[127.5, 127.5, 127.5],
        to_rgb=True),
    templates=['a photo of a {}.'])
