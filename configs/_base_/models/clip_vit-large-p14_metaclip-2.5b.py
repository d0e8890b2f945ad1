# Meta's MetaCLIP ViT-L/14 on 2.5B pairs (open_clip ViT-L-14-quickgelu,
# metaclip_fullcc): OpenAI's ViT-L/14 architecture, QuickGELU and
# preprocessing.
_base_ = './clip_vit-large-p14.py'
