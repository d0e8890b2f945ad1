# RAM++, Swin-L at 384px: RAM's network with 51 CLIP text embeddings per
# tag (LLM descriptions), mixed per image.
_base_ = ['./ram_swin-large-p4-w12_384px.py']

model = dict(type='RAMPlus', num_descriptions=51)
