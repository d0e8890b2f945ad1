# CoOp on a frozen OpenAI CLIP ViT-B/16 (clip_openai_vit-base-p16.py).
# Set model.clip.init_cfg.checkpoint to the converted CLIP weights
# (tools/model_converters/openai_clip_to_mmprompt.py).
_base_ = ['./clip_openai_vit-base-p16.py']

model = dict(
    _delete_=True,
    type='CoOp',
    clip={{_base_.model}},
    # CoOp's defaults: 16 unified context vectors, random init, at the end.
    n_ctx=16,
    ctx_init=None,
    csc=False,
    class_token_position='end')
