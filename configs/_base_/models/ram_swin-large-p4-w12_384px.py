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
    # RAM's normalisation, in RAM's order (x / 255, then ImageNet's mean and
    # std): bit for bit RAM's input tensors. BGR images (RAMPreprocess's,
    # LoadImageFromFile's) are flipped to RGB.
    data_preprocessor=dict(
        type='RAMDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True),
)
