# SigLIP 2 ViT-B/16, 224px (open_clip's ViT-B-16-SigLIP2): SigLIP's image
# tower; the text tower has Gemma's 256k vocabulary and tanh-approximated
# GELU.
_base_ = './siglip_vit-base-p16.py'

model = dict(
    text_backbone=dict(
        vocab_size=256000, act_cfg=dict(type='GELU', approximate='tanh')),
    # Gemma's vocabulary pads with '<pad>'.
    tokenizer=dict(
        tokenizer_file='data/siglip2/vit-base-p16/tokenizer.json',
        pad_token='<pad>',
        vocab_size=256000))
