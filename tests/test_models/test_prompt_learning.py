# Copyright (c) mmprompt contributors. All rights reserved.
"""CoOp / CoCoOp: parity with a reference written here from CoOp's code, and
unit tests on a tiny CLIP.

The reference (``RefTextEncoder``, ``RefPromptLearner``, ``ref_logits``)
follows KaiyangZhou/CoOp's ``TextEncoder`` / ``PromptLearner`` /
``CustomCLIP`` line by line over OpenAI's CLIP layout (open_clip's
``ViT-B-16-quickgelu`` with random weights stands in for it): full
77-token rows for every class, no shared prefix, no cut.
"""
import copy
import os.path as osp

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.config import Config
from torch.testing import assert_close

from mmprompt.models.clip import CLIPTokenizer
from mmprompt.models.prompt_learning import CoCoOp, CoOp
from mmprompt.registry import MODELS
from mmprompt.utils.errors import InvalidInputError

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = osp.join(REPO_ROOT, 'configs', '_base_', 'models')
NAMES = [
    'golden_retriever', 'cat', 'sea lion', 'fire truck', 'airliner',
    'tiger shark', 'espresso machine', 'hot-air balloon'
]


def clip_cfg(tiny: bool = False) -> dict:
    cfg = copy.deepcopy(
        Config.fromfile(osp.join(CONFIGS, 'clip_vit-base-p16.py')).model)
    cfg.type = 'CLIP'
    cfg.pop('templates')
    if tiny:
        cfg.vision_backbone.update(
            arch=dict(
                embed_dims=64,
                num_layers=2,
                num_heads=2,
                feedforward_channels=256),
            img_size=32)
        cfg.text_backbone.update(embed_dims=64, num_layers=2, num_heads=2)
        cfg.proj_dims = 32
    return cfg


# -- the reference: CoOp's code over OpenAI's layout -------------------------
def ref_tokenize(texts):
    import open_clip
    return open_clip.tokenize(texts)


class RefTextEncoder(nn.Module):

    def __init__(self, clip_model):
        super().__init__()
        self.transformer = clip_model.transformer
        self.positional_embedding = clip_model.positional_embedding
        self.ln_final = clip_model.ln_final
        self.text_projection = clip_model.text_projection
        self.attn_mask = clip_model.attn_mask

    def forward(self, prompts, tokenized_prompts):
        x = prompts + self.positional_embedding
        if not getattr(self.transformer, 'batch_first', True):
            x = x.permute(1, 0, 2)  # NLD -> LND
            x = self.transformer(x, attn_mask=self.attn_mask)
            x = x.permute(1, 0, 2)  # LND -> NLD
        else:
            x = self.transformer(x, attn_mask=self.attn_mask)
        x = self.ln_final(x)
        x = x[torch.arange(x.shape[0]),
              tokenized_prompts.argmax(dim=-1)] @ self.text_projection
        return x


class RefPromptLearner(nn.Module):
    """CoOp's PromptLearner; ``ctx_vectors`` given (the same init)."""

    def __init__(self, classnames, clip_model, ctx_vectors, n_ctx, ctx_init,
                 position):
        super().__init__()
        tok = CLIPTokenizer()
        self.n_cls = len(classnames)
        self.n_ctx = n_ctx
        prompt_prefix = ctx_init if ctx_init else ' '.join(['X'] * n_ctx)
        self.ctx = nn.Parameter(ctx_vectors.clone())
        classnames = [name.replace('_', ' ') for name in classnames]
        self.name_lens = [len(tok.encode(name)) for name in classnames]
        prompts = [prompt_prefix + ' ' + name + '.' for name in classnames]
        tokenized = torch.cat([ref_tokenize(p) for p in prompts])
        with torch.no_grad():
            embedding = clip_model.token_embedding(tokenized)
        self.register_buffer('token_prefix', embedding[:, :1, :])
        self.register_buffer('token_suffix', embedding[:, 1 + n_ctx:, :])
        self.tokenized_prompts = tokenized
        self.class_token_position = position

    def forward(self, ctx=None):
        ctx = self.ctx if ctx is None else ctx
        if ctx.dim() == 2:
            ctx = ctx.unsqueeze(0).expand(self.n_cls, -1, -1)
        prefix, suffix = self.token_prefix, self.token_suffix
        if self.class_token_position == 'end':
            return torch.cat([prefix, ctx, suffix], dim=1)
        half = self.n_ctx // 2
        prompts = []
        for i in range(self.n_cls):
            name_len = self.name_lens[i]
            prefix_i = prefix[i:i + 1]
            class_i = suffix[i:i + 1, :name_len]
            suffix_i = suffix[i:i + 1, name_len:]
            ctx_i = ctx[i:i + 1]
            if self.class_token_position == 'middle':
                parts = [
                    prefix_i, ctx_i[:, :half], class_i, ctx_i[:, half:],
                    suffix_i
                ]
            else:
                parts = [prefix_i, class_i, ctx_i, suffix_i]
            prompts.append(torch.cat(parts, dim=1))
        return torch.cat(prompts, dim=0)


def ref_logits(ref, text_encoder, learner, image_features):
    """CustomCLIP.forward from image features (already computed)."""
    prompts = learner()
    text_features = text_encoder(prompts, learner.tokenized_prompts)
    image_features = image_features / image_features.norm(
        dim=-1, keepdim=True)
    text_features = text_features / text_features.norm(dim=-1, keepdim=True)
    return ref.logit_scale.exp() * image_features @ text_features.t()


# -- full-size parity --------------------------------------------------------
@pytest.fixture(scope='module')
def full():
    """open_clip's ViT-B/16 (random) and our CLIP with its converted weights,
    plus image features of 4 random images from both."""
    open_clip = pytest.importorskip('open_clip')
    from test_models.test_clip import randomize_

    from mmprompt.converters import convert_openai_clip
    torch.manual_seed(0)
    ref = randomize_(open_clip.create_model('ViT-B-16-quickgelu'), seed=0)
    ref.eval().requires_grad_(False)
    clip = MODELS.build(clip_cfg())
    converted, _ = convert_openai_clip(ref.state_dict())
    clip.load_state_dict(converted, strict=True)
    clip.eval()
    images = torch.randn(
        4, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref_img = ref.encode_image(images)
        ours_img = clip.extract_image_feat(images)
    return ref, clip, ref_img, ours_img


CASES = [
    pytest.param(pos, csc, init, id=f"{pos}-{'csc' if csc else 'uni'}-"
                 f"{'word' if init else 'rand'}")
    for pos in ('end', 'middle', 'front') for csc in (False, True)
    for init in (None, 'a photo of a')
]


@pytest.mark.parity
@pytest.mark.slow
@pytest.mark.parametrize('position,csc,ctx_init', CASES)
def test_coop_text_features_and_logits_match_reference(
        full, position, csc, ctx_init):
    ref, clip, ref_img, ours_img = full
    assert_close(ours_img, ref_img, atol=1e-5, rtol=0)
    torch.manual_seed(3)
    model = CoOp(
        clip,
        categories=NAMES,
        n_ctx=8,
        ctx_init=ctx_init,
        csc=csc,
        class_token_position=position).eval()
    learner = model.prompt_learner
    if ctx_init:
        ids = ref_tokenize(ctx_init)
        word = ref.token_embedding(ids)[0, 1:1 + 4]
        rows = learner.ctx if not csc else learner.ctx[0]
        assert learner.n_ctx == 4
        assert torch.equal(rows, word)
    else:
        assert abs(float(learner.ctx.std()) - 0.02) < 2e-3
    ref_learner = RefPromptLearner(NAMES, ref, learner.ctx.detach(),
                                   learner.n_ctx, ctx_init, position)
    ref_text = RefTextEncoder(ref)
    with torch.no_grad():
        want_text = ref_text(ref_learner(), ref_learner.tokenized_prompts)
        want = ref_logits(ref, ref_text, ref_learner, ref_img)
        got_text = model.extract_text_feat()
        got = model.compute_logits(F.normalize(ours_img, dim=-1))
    assert_close(got_text, F.normalize(want_text, dim=-1), atol=1e-5, rtol=0)
    assert_close(got, want, atol=1e-5 * float(ref.logit_scale.exp()), rtol=0)
    assert torch.equal(got.argmax(-1), want.argmax(-1))


@pytest.mark.parity
@pytest.mark.slow
def test_cocoop_logits_match_reference(full):
    ref, clip, ref_img, ours_img = full
    torch.manual_seed(4)
    model = CoCoOp(clip=clip, categories=NAMES).eval()
    with torch.no_grad():
        for p in model.meta_net.parameters():
            p.normal_(std=0.05)
    learner = model.prompt_learner
    ref_learner = RefPromptLearner(NAMES, ref, learner.ctx.detach(), 4,
                                   'a photo of a', 'end')
    ref_text = RefTextEncoder(ref)
    with torch.no_grad():
        # CoCoOp's CustomCLIP.forward: one image at a time.
        feats = F.normalize(ref_img, dim=-1)
        bias = model.meta_net(feats)
        want = []
        for f, b in zip(feats, bias):
            prompts = ref_learner(ref_learner.ctx + b)
            text = ref_text(prompts, ref_learner.tokenized_prompts)
            text = text / text.norm(dim=-1, keepdim=True)
            want.append(ref.logit_scale.exp() * f @ text.t())
        want = torch.stack(want)
        got = model.compute_logits(F.normalize(ours_img, dim=-1))
        model.share_prefix = False
        got_plain = model.compute_logits(F.normalize(ours_img, dim=-1))
    scale = float(ref.logit_scale.exp())
    assert_close(got, want, atol=1e-5 * scale, rtol=0)
    assert_close(got_plain, want, atol=1e-5 * scale, rtol=0)


@pytest.mark.parity
@pytest.mark.slow
def test_coop_sgd_steps_match_reference_loop(full):
    """6 SGD steps (CoOp's recipe: lr 0.002, momentum 0.9, wd 5e-4) from
    the same init on the same batches give the same context: enough for the
    momentum buffer and weight decay to act (each full-size step is about
    8 s on one core; 20 steps on 8 classes took 5 minutes)."""
    ref, clip, ref_img, ours_img = full
    torch.manual_seed(5)
    model = CoOp(clip, categories=NAMES[:4], n_ctx=16).train()
    ref_learner = RefPromptLearner(NAMES[:4], ref,
                                   model.prompt_learner.ctx.detach(), 16,
                                   None, 'end')
    ref_text = RefTextEncoder(ref)
    init = model.prompt_learner.ctx.detach().clone()
    labels = torch.tensor([0, 3, 1, 2])
    kw = dict(lr=0.002, momentum=0.9, weight_decay=5e-4)
    opt = torch.optim.SGD(model.prompt_learner.parameters(), **kw)
    ref_opt = torch.optim.SGD(ref_learner.parameters(), **kw)
    for step in range(6):
        feats = F.normalize(ours_img, dim=-1)
        loss = F.cross_entropy(model.compute_logits(feats), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        ref_loss = F.cross_entropy(
            ref_logits(ref, ref_text, ref_learner, ref_img), labels)
        ref_opt.zero_grad()
        ref_loss.backward()
        ref_opt.step()
        labels = labels.roll(1)
    diff = (model.prompt_learner.ctx - ref_learner.ctx).abs().max()
    moved = (model.prompt_learner.ctx - init).abs().max()
    print(f'6 SGD steps: max |ctx - ref ctx| = {float(diff):.2e}, '
          f'moved {float(moved):.2e}')
    assert float(diff) <= 1e-5, float(diff)
    assert float(moved) > 1e-4


# -- unit tests on a tiny CLIP -----------------------------------------------
@pytest.fixture(scope='module')
def tiny_clip():
    from test_models.test_clip import randomize_
    return randomize_(MODELS.build(clip_cfg(tiny=True)), seed=0).eval()


def test_share_prefix_and_cut_are_exact(tiny_clip):
    torch.manual_seed(0)
    model = CoOp(tiny_clip, categories=NAMES, n_ctx=4)
    feats = F.normalize(torch.randn(3, 32), dim=-1)
    fast = model.compute_logits(feats)
    model.share_prefix = False
    plain = model.compute_logits(feats)
    assert_close(fast, plain, atol=1e-5, rtol=0)
    assert model.prompt_learner.token_ids.shape[1] < 77


def test_only_prompt_params_train_and_clip_stays_frozen(tiny_clip):
    torch.manual_seed(0)
    model = CoCoOp(clip=tiny_clip, categories=NAMES)
    before = {k: v.clone() for k, v in tiny_clip.state_dict().items()}
    model.train()
    assert model.training and model.meta_net.training
    assert not any(m.training for m in model.clip.modules())
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {
        'prompt_learner.ctx', 'meta_net.0.weight', 'meta_net.0.bias',
        'meta_net.2.weight', 'meta_net.2.bias'
    }
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad],
                          lr=0.1)
    images = torch.randn(2, 3, 32, 32)
    from mmpretrain.structures import DataSample
    samples = [DataSample().set_gt_label(i) for i in (0, 1)]
    loss = model(images, samples, mode='loss')['loss']
    loss.backward()
    opt.step()
    for k, v in tiny_clip.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert all(p.grad is None for p in tiny_clip.parameters())
    assert not any(k.startswith('clip.') for k in model.state_dict())


def test_unified_context_takes_new_names_csc_refuses_them(tiny_clip):
    model = CoOp(tiny_clip, categories=NAMES, n_ctx=4)
    model.set_categories(['zebra', 'pangolin'])
    assert model.compute_logits(torch.randn(1, 32)).shape == (1, 2)
    csc = CoOp(tiny_clip, categories=NAMES, n_ctx=4, csc=True)
    csc.set_categories(['cat', 'airliner'])
    with pytest.raises(InvalidInputError, match="'zebra'"):
        csc.set_categories(['cat', 'zebra'])


def test_bad_prompt_settings_are_refused(tiny_clip):
    with pytest.raises(InvalidInputError, match='exceed the 77-token'):
        CoOp(tiny_clip, categories=['cat', 'dog ' * 40], n_ctx=40)
    with pytest.raises(InvalidInputError, match='ctx_init'):
        CoOp(tiny_clip, categories=['cat'], ctx_init='word ' * 80)
    with pytest.raises(InvalidInputError, match='class_token_position'):
        CoOp(tiny_clip, categories=['cat'], class_token_position='left')
    with pytest.raises(InvalidInputError, match='unified context'):
        CoCoOp(clip=tiny_clip, categories=['cat'], csc=True)
