# RAM tagging categories of your own, embedded by CLIP ViT-B/16's text tower.
_base_ = [
    '../_base_/models/ram_swin-large-p4-w12_384px.py',
    '../_base_/default_runtime.py'
]

model = dict(
    type='RAMOpenset',
    # CLIP ViT-B/16's text tower; its weights are not in the RAM checkpoint
    # but in one converted by tools/model_converters/openai_clip_to_mmprompt.py
    text_encoder=dict(
        type='CLIPTextTransformer',
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/clip_vit-base-p16.pth',
            prefix='text_encoder.')),
    tokenizer=dict(type='CLIPTokenizer'),
    # A list of names, or a file: one name a line (.txt) or a JSON list.
    # RAM's default is its openimages_rare_200_ram_taglist.txt.
    categories=None,
    # OpenAI's 80 ImageNet templates. RAM's own 63 reproduce it exactly:
    # templates='ram_openset'.
    templates='openai_imagenet',
    openset_threshold=0.5,
)
