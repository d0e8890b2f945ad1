# Apple's DFN-2B CLIP ViT-L/14 (open_clip ViT-L-14-quickgelu, dfn2b):
# OpenAI's ViT-L/14 architecture, QuickGELU and preprocessing.
_base_ = './clip_vit-large-p14.py'
