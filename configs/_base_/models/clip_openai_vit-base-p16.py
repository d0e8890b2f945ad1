# OpenAI's CLIP ViT-B/16 as the frozen CLIP of a prompt learner (the `clip`
# of the CoOp / CoCoOp / Tip-Adapter-F configs): the CLIP of
# clip_vit-base-p16.py without its zero-shot settings. Set
# init_cfg.checkpoint to the converted CLIP weights
# (tools/model_converters/openai_clip_to_mmprompt.py).
_base_ = ['./clip_vit-base-p16.py']

model = dict(
    _delete_=True,
    type='CLIP',
    vision_backbone={{_base_.model.vision_backbone}},
    text_backbone={{_base_.model.text_backbone}},
    tokenizer={{_base_.model.tokenizer}},
    proj_dims={{_base_.model.proj_dims}},
    data_preprocessor={{_base_.model.data_preprocessor}},
    init_cfg=dict(
        type='Pretrained', checkpoint='checkpoints/clip_vit-base-p16.pth'))
