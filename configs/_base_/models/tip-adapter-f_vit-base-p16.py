# Tip-Adapter-F on a frozen OpenAI CLIP ViT-B/16 (the CLIP of
# clip_vit-base-p16.py). Set model.clip.init_cfg.checkpoint to the converted
# CLIP weights (tools/model_converters/openai_clip_to_mmprompt.py).
# The runner (QuietRunner) fills `categories` and `cache_size` from the
# training set.
_base_ = ['./clip_vit-base-p16.py']

model = dict(
    _delete_=True,
    type='TipAdapterF',
    clip=dict(
        type='CLIP',
        vision_backbone={{_base_.model.vision_backbone}},
        text_backbone={{_base_.model.text_backbone}},
        tokenizer={{_base_.model.tokenizer}},
        proj_dims={{_base_.model.proj_dims}},
        data_preprocessor={{_base_.model.data_preprocessor}},
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/clip_vit-base-p16.pth')),
    templates='simple',
    # Tip-Adapter's init_alpha / init_beta, used in training; the search
    # after it replaces them.
    alpha=1.0,
    beta=1.0)
