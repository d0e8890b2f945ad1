# Copyright (c) mmprompt contributors. All rights reserved.
"""CoOp / CoCoOp / Tip-Adapter-F: parity with references written here from
CoOp's and Tip-Adapter's code, and unit tests on a tiny CLIP.

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
from mmprompt.models.prompt_learning import CoCoOp, CoOp, TipAdapterF
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
    """The first 20 SGD steps (CoOp's recipe: lr 0.002, momentum 0.9, wd
    5e-4) from the same init on the same batches give the same context as
    the reference's loop. 4 classes keep it to a few seconds a step on one
    core (the reference runs each class at 77 tokens, with gradients)."""
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
    steps = 20
    for _ in range(steps):
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
    ctx = model.prompt_learner.ctx.detach()
    diff = (ctx - ref_learner.ctx.detach()).abs().max()
    moved = (ctx - init).abs().max()
    print(f'{steps} SGD steps: max |ctx - ref ctx| = {float(diff):.2e}, '
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


def test_learned_prompt_names_the_tokenizer_reads_alike_are_refused(
        tiny_clip):
    model = CoOp(tiny_clip, categories=NAMES, n_ctx=4)
    with pytest.raises(
            InvalidInputError,
            match=r"^duplicate category names: 'zebra' \(#0\) and "
            r"'\uff5a\uff45\uff42\uff52\uff41' \(#1\) are the same to the "
            r"tokenizer \(read as 'zebra'\); keep one of each$"):
        model.set_categories(['zebra', '\uff5a\uff45\uff42\uff52\uff41'])
    # The prompts read '_' as a space.
    with pytest.raises(
            InvalidInputError,
            match=r"^duplicate category names: 'red fox' \(#0\) and "
            r"'red_fox' \(#1\) make one prompt"):
        model.set_categories(['red fox', 'red_fox'])
    assert model.categories == NAMES


def test_bad_prompt_settings_are_refused(tiny_clip):
    with pytest.raises(InvalidInputError, match='exceed the 77-token'):
        CoOp(tiny_clip, categories=['cat', 'dog ' * 40], n_ctx=40)
    with pytest.raises(InvalidInputError, match='ctx_init'):
        CoOp(tiny_clip, categories=['cat'], ctx_init='word ' * 80)
    with pytest.raises(InvalidInputError, match='class_token_position'):
        CoOp(tiny_clip, categories=['cat'], class_token_position='left')
    with pytest.raises(InvalidInputError, match='unified context'):
        CoCoOp(clip=tiny_clip, categories=['cat'], csc=True)


# -- Tip-Adapter-F ------------------------------------------------------------
TIP_TEMPLATES = ('a photo of a {}.', 'itap of a {}.')


def ref_clip_weights(ref, classnames, templates):
    """Tip-Adapter's ``clip_classifier``: ``(D, C)``."""
    weights = []
    with torch.no_grad():
        for classname in classnames:
            classname = classname.replace('_', ' ')
            texts = ref_tokenize([t.format(classname) for t in templates])
            emb = ref.encode_text(texts)
            emb = emb / emb.norm(dim=-1, keepdim=True)
            emb = emb.mean(dim=0)
            weights.append(emb / emb.norm())
    return torch.stack(weights, dim=1)


def ref_cache_keys(view_feats):
    """Tip-Adapter's ``build_cache_model``: the per-pass features (raw)
    stacked, averaged over passes, normalised; ``(M, D)`` (not transposed)."""
    keys = torch.cat([f.unsqueeze(0) for f in view_feats]).mean(dim=0)
    return keys / keys.norm(dim=-1, keepdim=True)


def ref_tip_logits(scale, feats, clip_weights, adapter, values, alpha, beta):
    """Tip-Adapter-F's training / evaluation logits (``100.`` is OpenAI's
    ``logit_scale.exp()``; random weights have their own)."""
    affinity = adapter(feats)
    cache_logits = ((-1) * (beta - beta * affinity)).exp() @ values
    clip_logits = scale * feats @ clip_weights
    return clip_logits + cache_logits * alpha


@pytest.mark.parity
@pytest.mark.slow
def test_tip_adapter_f_logits_and_adamw_steps_match_reference(full):
    """Full-size ViT-B/16: Tip-Adapter-F's logits (text prototypes, cache,
    scale) and 5 AdamW steps of the keys (lr 0.001, eps 1e-4, cosine) equal
    the reference written from Tip-Adapter's main.py / utils.py."""
    ref, clip, ref_img, ours_img = full
    labels = torch.tensor([0, 3, 5, 7])
    alpha, beta = 1.17, 5.5
    # Two "augmented views" of 4 training images: the images and the next.
    model = TipAdapterF(clip, categories=NAMES, templates=TIP_TEMPLATES,
                        cache_size=4, alpha=alpha, beta=beta)
    views = (ours_img + ours_img.roll(-1, 0)) / 2
    model.set_cache(F.normalize(views, dim=-1), labels)
    ref_keys = ref_cache_keys([ref_img, ref_img.roll(-1, 0)])
    adapter = nn.Linear(ref_keys.size(1), 4, bias=False)
    adapter.weight = nn.Parameter(ref_keys.clone())
    values = F.one_hot(labels, len(NAMES)).float()
    weights = ref_clip_weights(ref, NAMES, TIP_TEMPLATES)
    scale = float(ref.logit_scale.exp())
    ours_f = F.normalize(ours_img, dim=-1)
    ref_f = ref_img / ref_img.norm(dim=-1, keepdim=True)
    with torch.no_grad():
        got = model.compute_logits(ours_f)
        want = ref_tip_logits(scale, ref_f, weights, adapter, values, alpha,
                              beta)
    logit_diff = float((got - want).abs().max())
    assert logit_diff <= 1e-5 * scale, logit_diff
    steps, kw = 5, dict(lr=0.001, eps=1e-4)
    opt = torch.optim.AdamW([model.cache_keys], **kw)
    ref_opt = torch.optim.AdamW(adapter.parameters(), **kw)
    scheds = [torch.optim.lr_scheduler.CosineAnnealingLR(o, steps)
              for o in (opt, ref_opt)]
    init = model.cache_keys.detach().clone()
    targets = torch.tensor([1, 3, 5, 0])
    model.train()
    for _ in range(steps):
        loss = F.cross_entropy(model.compute_logits(ours_f), targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        ref_loss = F.cross_entropy(
            ref_tip_logits(scale, ref_f, weights, adapter, values, alpha,
                           beta), targets)
        ref_opt.zero_grad()
        ref_loss.backward()
        ref_opt.step()
        for sched in scheds:
            sched.step()
        targets = targets.roll(1)
    with torch.no_grad():
        diff = float((model.cache_keys - adapter.weight).abs().max())
        moved = float((model.cache_keys - init).abs().max())
    print(f'Tip-Adapter-F: max |logits - ref| = {logit_diff:.2e} (scale '
          f'{scale:.1f}); {steps} AdamW steps: max |keys - ref keys| = '
          f'{diff:.2e}, moved {moved:.2e}')
    assert diff <= 1e-5, diff
    assert moved > 1e-3


class _Loader:
    """Batches of a few-shot-like dataset, shuffled anew each pass; every
    pass shows each image as another (random) "augmented" view."""

    def __init__(self, views, labels, indices, batch_size=3):
        self.views, self.labels = views, labels
        self.dataset = type('D', (), dict(indices=indices,
                                          __len__=lambda s: len(indices)))()
        self.batch_size, self.passes = batch_size, 0

    def __iter__(self):
        from mmpretrain.structures import DataSample
        views = self.views[self.passes]
        self.passes += 1
        order = torch.randperm(len(self.labels),
                               generator=torch.Generator().manual_seed(
                                   self.passes)).tolist()
        for start in range(0, len(order), self.batch_size):
            rows = order[start:start + self.batch_size]
            yield dict(
                inputs=[views[r] for r in rows],
                data_samples=[
                    DataSample(metainfo=dict(sample_idx=self.dataset.indices[
                        r])).set_gt_label(int(self.labels[r])) for r in rows
                ])


def test_tip_adapter_cache_averages_views_like_the_reference(tiny_clip):
    """The hook's cache: per image, the mean of its raw features over the
    passes, normalised (Tip-Adapter's build_cache_model), whatever order
    the shuffled loader gives them in."""
    from mmprompt.engine.prompt_hooks import collect_features
    g = torch.Generator().manual_seed(0)
    views = [torch.randint(0, 256, (7, 3, 32, 32), generator=g).byte()
             for _ in range(3)]
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3])
    model = TipAdapterF(tiny_clip, categories=NAMES[:4], cache_size=7)
    loader = _Loader(views, labels, indices=[40, 3, 17, 8, 99, 5, 61])
    feats, got_labels = collect_features(model, loader, passes=3)
    model.set_cache(F.normalize(feats, dim=-1), got_labels)
    with torch.no_grad():
        want = ref_cache_keys([
            tiny_clip.extract_image_feat(
                model.data_preprocessor(dict(inputs=list(v)))['inputs'])
            for v in views
        ])
    assert_close(model.cache_keys.detach(), want, atol=1e-6, rtol=0)
    assert torch.equal(model.cache_labels, labels)


def test_tip_adapter_search_finds_the_planted_alpha_beta(tiny_clip):
    """Validation labels planted by the model's own logits at one pair of
    the grid: the search returns that pair (the unique best, checked here
    by brute force) and stores it."""
    from mmprompt.models.prompt_learning.tip_adapter import search_grid
    g = torch.Generator().manual_seed(0)
    # 5 classes around random centres, 8 keys each; the validation images
    # scattered further, so that text and cache terms compete.
    model = TipAdapterF(tiny_clip, categories=NAMES[:5], cache_size=40)
    centres = F.normalize(torch.randn(5, 32, generator=g), dim=-1)
    keys = F.normalize(
        centres.repeat_interleave(8, 0) +
        0.7 * torch.randn(40, 32, generator=g) / 32**0.5, dim=-1)
    model.set_cache(keys, torch.arange(5).repeat_interleave(8))
    feats = F.normalize(
        centres.repeat(80, 1) + 1.05 * torch.randn(400, 32, generator=g) /
        32**0.5, dim=-1)
    scale, step = (7, 3), (8, 6)
    betas, alphas = search_grid(7, 8), search_grid(3, 6)
    planted = (alphas[3], betas[5])
    with torch.no_grad():
        labels = model.compute_logits(feats, *planted).argmax(-1)
        acc = {(a, b): int((model.compute_logits(feats, a, b).argmax(-1) ==
                            labels).sum())
               for b in betas for a in alphas}
    others = max(v for k, v in acc.items() if k != planted)
    assert acc[planted] == 400 > others  # the construction is valid
    found = model.search_alpha_beta(feats, labels, scale, step)
    assert (found['alpha'], found['beta']) == planted
    assert found['accuracy'] == 100.0
    assert float(model.alpha) == pytest.approx(planted[0])
    assert float(model.beta) == pytest.approx(planted[1])


def test_tip_adapter_trains_only_its_keys_and_round_trips(tiny_clip, tmp_path):
    from mmprompt.models.prompt_learning import load_learned, save_learned
    from mmpretrain.structures import DataSample
    torch.manual_seed(0)
    before = {k: v.clone() for k, v in tiny_clip.state_dict().items()}
    model = TipAdapterF(tiny_clip, categories=NAMES[:4], cache_size=8)
    model.set_cache(F.normalize(torch.randn(8, 32), dim=-1),
                    torch.arange(4).repeat(2))
    model.train()
    assert not any(m.training for m in model.clip.modules())
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable == ['cache_keys']
    opt = torch.optim.AdamW([model.cache_keys], lr=0.01, eps=1e-4)
    samples = [DataSample().set_gt_label(i) for i in (0, 1, 3)]
    for _ in range(2):
        loss = model(torch.randn(3, 3, 32, 32), samples, mode='loss')['loss']
        opt.zero_grad()
        loss.backward()
        opt.step()
    for k, v in tiny_clip.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert all(p.grad is None for p in tiny_clip.parameters())
    assert set(model.state_dict()) == {'cache_keys', 'cache_labels', 'alpha',
                                       'beta'}
    path = str(tmp_path / 'tip.pth')
    save_learned(model.eval(), path)
    fresh = TipAdapterF(tiny_clip, categories=NAMES[:4])  # no cache_size
    load_learned(fresh, path)
    from mmprompt.models.prompt_learning.learned import build_learned_model
    built = build_learned_model(tiny_clip, path)  # from the meta alone
    feats = F.normalize(torch.randn(5, 32), dim=-1)
    with torch.no_grad():
        assert torch.equal(fresh.compute_logits(feats),
                           model.compute_logits(feats))
        assert torch.equal(built.compute_logits(feats),
                           model.compute_logits(feats))
        # Other names: each trained one keeps its cache; a new one has none.
        fresh.set_categories([NAMES[2], 'zebra', NAMES[0]])
        got = fresh.compute_logits(feats)
        cache = got - tiny_clip.logit_scale.exp() * feats @ \
            fresh.get_prototypes().t()
    assert_close(got[:, [0, 2]], model.compute_logits(feats)[:, [2, 0]])
    assert float(cache[:, 1].abs().max()) < 1e-5
    other = TipAdapterF(tiny_clip, categories=NAMES[:4], templates='a {}.')
    with pytest.raises(Exception, match='templates'):
        load_learned(other, path)


def test_tip_adapter_hook_reads_validation_never_test(tiny_clip):
    """The hook's search reads the runner's validation loader only (the
    test loader raises if touched); a resumed cache is kept; no validation
    split is an error before any training."""
    from types import SimpleNamespace

    from mmprompt.engine import TipAdapterHook
    g = torch.Generator().manual_seed(0)
    views = [torch.randint(0, 256, (6, 3, 32, 32), generator=g).byte()]
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    model = TipAdapterF(tiny_clip, categories=NAMES[:3], cache_size=3)
    model.set_cache(F.normalize(torch.randn(3, 32, generator=g), dim=-1),
                    torch.arange(3))
    keys = model.cache_keys.detach().clone()
    val = _Loader(views, labels, indices=list(range(6)))
    val.dataset.metainfo = dict(classes=tuple(NAMES[:3]))

    class Runner:
        train_dataloader = None  # a kept cache reads no training image
        val_loop = SimpleNamespace(dataloader=val)
        val_dataloader = val

        def __init__(self):
            self.model = model

        @property
        def test_dataloader(self):
            raise AssertionError('the test set was read')

        test_loop = test_dataloader

    hook = TipAdapterHook(search_scale=(7, 3), search_step=(10, 5))
    hook.before_train(Runner())
    assert torch.equal(model.cache_keys, keys)
    hook.after_train(Runner())
    feats = model.extract_image_feat(
        model.data_preprocessor(dict(inputs=list(views[0])))['inputs'])
    want = TipAdapterF(tiny_clip, categories=NAMES[:3], cache_size=3)
    want.set_cache(keys, torch.arange(3))
    found = want.search_alpha_beta(feats, labels, (7, 3), (10, 5))
    assert (float(model.alpha), float(model.beta)) == pytest.approx(
        (found['alpha'], found['beta']))
    no_val = Runner()
    no_val.val_loop = None
    with pytest.raises(InvalidInputError, match='validation split'):
        hook.before_train(no_val)
