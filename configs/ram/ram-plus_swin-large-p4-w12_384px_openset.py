# RAM++ tagging categories of your own, each with LLM descriptions, embedded
# by CLIP ViT-B/16's text tower.
_base_ = [
    '../_base_/models/ram-plus_swin-large-p4-w12_384px.py',
    '../_base_/default_runtime.py'
]

model = dict(
    type='RAMPlusOpenset',
    # CLIP ViT-B/16's text tower; its weights are not in the RAM++ checkpoint
    # but in one converted by tools/model_converters/openai_clip_to_mmprompt.py
    text_encoder=dict(
        type='CLIPTextTransformer',
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/clip_vit-base-p16.pth',
            prefix='text_encoder.')),
    tokenizer=dict(type='CLIPTokenizer'),
    # A JSON list of {category: [descriptions]} (all with as many
    # descriptions), e.g. RAM++'s
    # openimages_rare_200_llm_tag_descriptions.json; plain names get the
    # prompt-ensemble embedding of `templates`.
    categories=None,
    templates='openai_imagenet',
    openset_threshold=0.5,
)
