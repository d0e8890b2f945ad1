# CoOp on a frozen OpenAI CLIP ViT-B/16 (the CLIP of clip_vit-base-p16.py).
# Set model.clip.init_cfg.checkpoint to the converted CLIP weights
# (tools/model_converters/openai_clip_to_mmprompt.py).
_base_ = ['./clip_vit-base-p16.py']

model = dict(
    _delete_=True,
    type='CoOp',
    clip=dict(
        type='CLIP',
        vision_backbone={{_base_.model.vision_backbone}},
        text_backbone={{_base_.model.text_backbone}},
        tokenizer={{_base_.model.tokenizer}},
        proj_dims={{_base_.model.proj_dims}},
        data_preprocessor={{_base_.model.data_preprocessor}},
        init_cfg=dict(
            type='Pretrained', checkpoint='checkpoints/clip_vit-base-p16.pth')),
    # CoOp's defaults: 16 unified context vectors, random init, at the end.
    n_ctx=16,
    ctx_init=None,
    csc=False,
    class_token_position='end')
