# Copyright (c) mmprompt contributors. All rights reserved.
"""The prototype builder's exact savings for a causal text tower: each
distinct template start runs once for the whole build (not once per
batch), and the last block, ``ln_final`` and the projection run on the
pooled token alone."""
import pytest
import torch
import torch.nn.functional as F

from mmprompt.models.clip import zero_shot
from mmprompt.models.clip.text_encoder import CLIPTextTransformer
from mmprompt.models.clip.tokenizer import CLIPTokenizer


@pytest.fixture(scope='module')
def tokenizer():
    return CLIPTokenizer()


def tower(**kwargs) -> CLIPTextTransformer:
    torch.manual_seed(0)
    return CLIPTextTransformer(
        context_length=32,
        embed_dims=64,
        num_layers=3,
        num_heads=4,
        out_dims=32,
        **kwargs).eval()


def reference(encoder, ids) -> torch.Tensor:
    """Every block on every token, then the pooled token (OpenAI's order)."""
    with torch.no_grad():
        x = encoder.token_embedding(ids) + encoder.positional_embedding
        for block in encoder.resblocks:
            x = block(x)
        x = encoder.ln_final(x)
        if encoder.pool == 'eot':
            pooled = ids.float().argmax(dim=-1)
        else:
            pooled = torch.full((len(ids), ), ids.size(1) - 1)
        x = x[torch.arange(len(ids)), pooled] @ encoder.text_projection
        if encoder.text_projection_bias is not None:
            x = x + encoder.text_projection_bias
    return x


@pytest.mark.parametrize('kwargs', [
    dict(),
    dict(causal=False, pool='last', proj_bias=True, norm_eps=1e-6)
])
def test_last_block_runs_on_the_pooled_token_only(tokenizer, kwargs):
    """Rows of different lengths (padded): the last MLP sees one token per
    row, and the features equal the every-token reference."""
    encoder = tower(**kwargs)
    ids = tokenizer(['a cat', 'a photo of a big red dog', 'itap of a car'],
                    context_length=32)
    seen = []
    hooks = [
        block.mlp.register_forward_hook(
            lambda m, args, out: seen.append(tuple(args[0].shape)))
        for block in encoder.resblocks
    ]
    try:
        with torch.no_grad():
            got = encoder(ids)
    finally:
        for hook in hooks:
            hook.remove()
    assert seen == [(3, 32, 64), (3, 32, 64), (3, 64)]
    torch.testing.assert_close(got, reference(encoder, ids), atol=1e-5,
                               rtol=0)


def test_each_template_start_runs_once(tokenizer):
    """12 categories x 8 templates in batches of 4 rows: one prefix pass
    per prefix length (heads of all its batches together), not one per
    batch; the prototypes equal the reference's."""
    from mmprompt.models.clip.prompts import (IMAGENET_CATEGORIES,
                                              OPENAI_IMAGENET_TEMPLATES)
    encoder = tower()
    categories = IMAGENET_CATEGORIES[:12]
    templates = OPENAI_IMAGENET_TEMPLATES[:8]
    texts, _, is_desc = zero_shot.collect_prompts(categories, templates)
    ids = zero_shot.tokenize_prompts(
        lambda t, **kw: tokenizer(t, context_length=32, **kw), texts,
        is_desc)
    lengths = zero_shot.shared_prefix_lengths(ids)
    batches = zero_shot.plan_prefix_batches(ids, lengths, batch_size=4)
    shared = sorted({int(lengths[rows[0]]) for rows in batches} - {0})
    passes = []
    run = encoder.encode_prefix

    def spy(embeds):
        passes.append(tuple(embeds.shape[:2]))
        return run(embeds)

    encoder.encode_prefix = spy
    try:
        feats = zero_shot.encode_token_ids(
            encoder, ids, batch_size=4, normalize=False)
    finally:
        del encoder.encode_prefix
    assert len(batches) == 32
    assert [p for _, p in passes] == shared == [4, 5, 6, 7, 8]
    heads = {
        p: len({tuple(row[:p].tolist()) for row in ids[lengths == p]})
        for p in shared
    }
    assert [n for n, _ in passes] == [heads[p] for p in shared]
    torch.testing.assert_close(
        F.normalize(feats, dim=-1),
        F.normalize(reference(encoder, ids), dim=-1),
        atol=1e-6,
        rtol=0)
