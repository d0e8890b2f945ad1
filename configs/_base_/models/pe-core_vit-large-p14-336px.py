# Meta's PE-Core L/14 at 336px (open_clip's PE-Core-L-14-336): 24 x 1024
# image tower with 2-D RoPE and attention pooling, 24 x 1024 text tower over
# 32 tokens, a 1024-wide joint space.
_base_ = ['./pe-core_vit-base-p16.py']

model = dict(
    vision_backbone=dict(
        arch='large',  # 1024 wide, 24 layers, 16 heads, MLP 4096
        img_size=336,
        patch_size=14,
        # timm's vit_pe_core_large_patch14_336: the 24 x 24 grid.
        rope_ref_grid=(24, 24)))
