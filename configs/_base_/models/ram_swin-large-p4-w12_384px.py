# RAM (Recognize Anything), Swin-L at 384px: 4585 tags in English and
# Chinese. Weights, tag names and thresholds come from a checkpoint converted
# by tools/model_converters/ram_to_mmprompt.py.
model = dict(
    type='RAMNormal',
    visual_encoder=dict(
        type='SwinTransformer',
        arch='large',  # 192 wide, depths (2, 2, 18, 2), heads (6, 12, 24, 48)
        img_size=384,
        window_size=12,
        drop_path_rate=0.0,  # inference only
        out_indices=(3, ),  # last stage after its LayerNorm (norm3)
    ),
    # Two post-norm cross-attention layers, 768 wide, 4 heads, keys and
    # values from the 512-d image_proj tokens.
    tagging_head=dict(
        type='RAMTaggingHead',
        embed_dims=768,
        memory_dims=512,
        num_layers=2,
        num_heads=4,
        feedforward_channels=3072,
        norm_eps=1e-12),
    num_classes=4585,
    embed_dims=512,
    # RAM's preprocessing (see mmprompt.models.ram.ram_preprocess): RGB
    # resized to 384x384 with PIL bilinear, no crop, ImageNet mean and std.
    # to_rgb: images loaded with LoadImageFromFile are BGR.
    data_preprocessor=dict(
        type='ClsDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True),
)
