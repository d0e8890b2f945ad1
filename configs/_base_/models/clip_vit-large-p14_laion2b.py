# open_clip ViT-L-14 on LAION-2B (laion2b_s32b_b82k): OpenAI's ViT-L/14 shape
# with exact GELU in both towers. Its preprocessing keeps OpenAI's resize and
# centre crop but normalises with mean 0.5 and std 0.5 (open_clip's
# INCEPTION_MEAN / INCEPTION_STD for these weights).
_base_ = './clip_vit-large-p14_datacomp-xl.py'

model = dict(
    data_preprocessor=dict(mean=[127.5, 127.5, 127.5],
                           std=[127.5, 127.5, 127.5]))
