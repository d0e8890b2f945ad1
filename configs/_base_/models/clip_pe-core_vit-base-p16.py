# PE-Core B/16 as the frozen CLIP of a prompt learner (the `clip` of the
# CoOp / CoCoOp / Tip-Adapter-F leaves over PE-Core): the CLIP of
# pe-core_vit-base-p16.py without its zero-shot settings. Set
# init_cfg.checkpoint to the converted PE-Core weights
# (tools/model_converters/pe_core_to_mmprompt.py).
_base_ = ['./pe-core_vit-base-p16.py']

model = dict(
    _delete_=True,
    type='CLIP',
    vision_backbone={{_base_.model.vision_backbone}},
    text_backbone={{_base_.model.text_backbone}},
    tokenizer={{_base_.model.tokenizer}},
    proj_dims={{_base_.model.proj_dims}},
    visual_proj_bias={{_base_.model.visual_proj_bias}},
    image_preprocess={{_base_.model.image_preprocess}},
    data_preprocessor={{_base_.model.data_preprocessor}},
    init_cfg=dict(
        type='Pretrained', checkpoint='checkpoints/pe-core_vit-base-p16.pth'))
