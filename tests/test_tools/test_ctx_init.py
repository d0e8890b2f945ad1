# Copyright (c) mmprompt contributors. All rights reserved.
"""``ctx_init`` through the path users take: tools/train.py on the shipped
CoOp / CoCoOp base-to-novel configs.

The Runner constructs the model from its config (CLIP's weights random)
and only then calls ``init_weights()``, which loads CLIP's checkpoint. A
context started from ``'a photo of a'`` must hold the embeddings of those
words in the *loaded* CLIP. Trained at a learning rate of 0, the learned
file keeps that starting context, so it is compared bit for bit, and its
prompts are CLIP's own ``'a photo of a {name}.'``.
"""
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmcv import imwrite
from mmengine.config import Config
from testing_utils import load_module
from torch.testing import assert_close

from mmprompt.models.prompt_learning.learned import build_learned_model
from mmprompt.registry import MODELS
from mmprompt.utils import register_all_modules
from mmprompt.utils.checkpoint import read_checkpoint, save_checkpoint

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CLASSES = ('cat', 'dog', 'fox', 'owl')  # base split: cat, dog


def clip_cfg() -> dict:
    from test_models.test_prompt_learning import clip_cfg as cfg
    return cfg(tiny=True)


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    """Images, and a CLIP checkpoint unlike any freshly built CLIP."""
    root = tmp_path_factory.mktemp('ctx_init')
    rng = np.random.default_rng(0)
    for name in CLASSES:
        for i in range(2):
            imwrite(rng.integers(0, 256, (40, 36, 3), np.uint8),
                    str(root / 'data' / 'train' / name / f'{i}.png'))
    torch.manual_seed(123)
    clip = MODELS.build(clip_cfg())
    with torch.no_grad():
        clip.text_encoder.token_embedding.weight.normal_(std=0.5)
    clip_path = str(root / 'clip.pth')
    save_checkpoint(clip.state_dict(), {}, clip_path)
    return root, clip_path, clip.eval()


def write_config(folder, data, leaf: str, clip_path: str) -> str:
    """``leaf`` with a tiny CLIP loaded from ``clip_path``, the images of
    ``data``, 2 shots, one epoch at a learning rate of 0."""
    cfg = dict(clip_cfg(), init_cfg=dict(type='Pretrained',
                                         checkpoint=clip_path))
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='RandomResizedCrop', scale=32, backend='pillow'),
        dict(type='PackInputs')
    ]
    path = folder / osp.basename(leaf)
    path.write_text(f"""_base_ = [{osp.join(REPO_ROOT, 'configs', leaf)!r}]
model = dict(clip=dict(_delete_=True, **{cfg!r}))
train_dataloader = dict(batch_size=2, num_workers=0, dataset=dict(shots=2,
    dataset=dict(data_root={str(data)!r}, pipeline={pipeline!r})))
optim_wrapper = dict(optimizer=dict(lr=0.0))
param_scheduler = []
train_cfg = dict(max_epochs=1)
default_hooks = dict(checkpoint=dict(interval=1))
""")
    return str(path)


@pytest.mark.parametrize('leaf', [
    'coop/coop_vit-base-p16_16shots_base2novel_custom.py',
    'cocoop/cocoop_vit-base-p16_16shots_base2novel_custom.py',
])
def test_ctx_init_starts_from_the_loaded_clip(setup, leaf, tmp_path):
    root, clip_path, clip = setup
    config = write_config(tmp_path, root / 'data', leaf, clip_path)
    ids = clip.tokenizer.encode('a photo of a')
    loaded = clip.text_encoder.token_embedding.weight[ids]

    # The bug's path: constructed from the config, CLIP random until
    # init_weights; the context must change there to the loaded words.
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(config)
    cfg.model.categories = ['cat', 'dog']
    model = MODELS.build(cfg.model)
    before = model.prompt_learner.ctx.detach().clone()
    assert (before - loaded).abs().max() > 0.1
    model.init_weights()
    assert torch.equal(model.prompt_learner.ctx.detach(), loaded)

    train = load_module('mmprompt_train_py',
                        osp.join(REPO_ROOT, 'tools', 'train.py'))
    learned = train.main([config, '--work-dir', str(tmp_path / 'work')])
    state, meta = read_checkpoint(learned)
    assert meta['mmprompt_learned']['categories'] == ['cat', 'dog']
    assert torch.equal(state['prompt_learner.ctx'], loaded)

    if 'cocoop' in leaf:
        return
    # Untrained, the learned file is CLIP's own 'a photo of a {name}.'.
    model = build_learned_model(clip, learned)
    tok = clip.tokenizer
    rows = [[tok.sot_token_id] + tok.encode(f'a photo of a {n}.') +
            [tok.eot_token_id] for n in ('cat', 'dog')]
    ids = torch.zeros(2, max(map(len, rows)), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.tensor(r)
    with torch.no_grad():
        ref = F.normalize(clip.extract_text_feat(ids), dim=-1)
        assert_close(model.extract_text_feat(), ref, atol=1e-6, rtol=0)
