# Tip-Adapter-F on a frozen OpenAI CLIP ViT-B/16
# (clip_openai_vit-base-p16.py). Set model.clip.init_cfg.checkpoint to the
# converted CLIP weights (tools/model_converters/openai_clip_to_mmprompt.py).
# The runner (QuietRunner) fills `categories` and `cache_size` from the
# training set.
_base_ = ['./clip_openai_vit-base-p16.py']

model = dict(
    _delete_=True,
    type='TipAdapterF',
    clip={{_base_.model}},
    templates='simple',
    # Tip-Adapter's init_alpha / init_beta, used in training; the search
    # after it replaces them.
    alpha=1.0,
    beta=1.0)
