# Apple's DFN-5B CLIP ViT-H/14 at 378px (open_clip ViT-H-14-378-quickgelu,
# dfn5b): 27 x 27 patches, otherwise as clip_vit-huge-p14_dfn5b.py (squash).
_base_ = './clip_vit-huge-p14_dfn5b.py'

model = dict(vision_backbone=dict(img_size=378))
