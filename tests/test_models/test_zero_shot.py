# Copyright (c) mmprompt contributors. All rights reserved.
import logging
import math

import pytest
import torch
import torch.nn.functional as F

from mmprompt.evaluation import MeanPerClassRecall, mean_per_class_recall
from mmprompt.models.clip import zero_shot
from mmprompt.models.clip.text_encoder import CLIPTextTransformer
from mmprompt.models.clip.tokenizer import CLIPTokenizer

CATEGORIES = ('tabby cat', 'beagle', 'kite (bird of prey)', 'red fox')
TEMPLATES = ('a photo of a {}.', 'a blurry photo of the {}.', 'itap of a {}.')


@pytest.fixture(scope='module')
def tokenizer():
    return CLIPTokenizer()


@pytest.fixture(scope='module')
def encoder():
    torch.manual_seed(0)
    model = CLIPTextTransformer(
        embed_dims=64, num_layers=2, num_heads=4, out_dims=32)
    return model.eval()


def reference_prototypes(encoder, tokenizer, categories, templates):
    """OpenAI's notebook: one class at a time, full 77-token rows."""
    protos = []
    with torch.no_grad():
        for name in categories:
            ids = tokenizer([t.format(name) for t in templates])
            feats = F.normalize(encoder(ids), dim=-1)
            protos.append(F.normalize(feats.mean(0), dim=-1))
    return torch.stack(protos)


def test_collect_prompts():
    texts, labels, is_desc = zero_shot.collect_prompts(
        ('cat', 'dog'), ('a {}.', 'the {}'), {1: ('a good boy', )}, 0.5)
    assert texts == ['a cat.', 'the cat', 'a dog.', 'the dog', 'a good boy']
    assert labels == [0, 0, 1, 1, 1]
    assert is_desc == [False, False, False, False, True]
    # description_weight=1: descriptions replace the templates.
    texts, labels, _ = zero_shot.collect_prompts(('cat', 'dog'), ('a {}.', ),
                                                 {1: ('a good boy', )}, 1.0)
    assert texts == ['a cat.', 'a good boy'] and labels == [0, 1]


@pytest.mark.parametrize('batch_size', [1, 5, 1024])
def test_text_prototypes_equal_reference(encoder, tokenizer, batch_size):
    """Length-sorted batches cut to their longest row change nothing."""
    got = zero_shot.build_text_prototypes(
        encoder, tokenizer, CATEGORIES, TEMPLATES, batch_size=batch_size)
    want = reference_prototypes(encoder, tokenizer, CATEGORIES, TEMPLATES)
    assert got.shape == (4, 32)
    assert not got.is_inference()
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    torch.testing.assert_close(
        got.norm(dim=-1), torch.ones(4), atol=1e-6, rtol=0)


def test_context_is_cut_per_batch(tokenizer):
    seen = []

    def encode(ids):
        seen.append(tuple(ids.shape))
        return ids[:, :1].float().repeat(1, 3) + 1

    ids = tokenizer(['a', 'a b c d e f', 'a b', 'a b c'])
    feats = zero_shot.encode_token_ids(encode, ids, batch_size=2)
    # Sorted by length: ('a', 'a b') then ('a b c', 'a b c d e f').
    assert seen == [(2, 4), (2, 8)]
    assert feats.shape == (4, 3)


def test_shared_prefix_lengths(tokenizer):
    """Each row shares its longest start common to ``min_rows`` rows, up to
    its end-of-text token."""
    ids = tokenizer([
        'a photo of a cat.', 'a photo of a dog.', 'a photo of the cat.',
        'itap of a cat.', 'cat', 'cat'
    ])
    got = zero_shot.shared_prefix_lengths(ids, min_rows=2)
    # <start> a photo of a | <start> a photo of | <start> | <start> cat,
    # whose end-of-text token (position 2) stays in the rest.
    assert got.tolist() == [5, 5, 4, 1, 2, 2]
    assert zero_shot.shared_prefix_lengths(ids, min_rows=3).tolist() == [
        4, 4, 4, 1, 1, 1
    ]
    assert zero_shot.shared_prefix_lengths(ids[:2]).tolist() == [0, 0]
    batches = zero_shot.plan_prefix_batches(ids, got, batch_size=1)
    assert sorted(torch.cat(batches).tolist()) == list(range(6))
    assert [b.tolist() for b in batches
            ] == [[3], [4], [5], [2], [0], [1]]  # by (prefix, rest) length


@pytest.mark.parametrize('batch_size', [7, 1024])
def test_prefix_sharing_is_exact(encoder, tokenizer, batch_size):
    """The text tower shares each template's start (20 categories x 8
    templates); the prototypes equal the unshared builder's and OpenAI's
    loop to 1e-6."""
    from mmprompt.models.clip.prompts import (IMAGENET_CATEGORIES,
                                              OPENAI_IMAGENET_TEMPLATES)
    categories = IMAGENET_CATEGORIES[:20]
    templates = OPENAI_IMAGENET_TEMPLATES[:8]
    prefixes = []
    run = encoder.forward_embeddings

    def spy(embeds, eot, prefix=None):
        prefixes.append(0 if prefix is None else prefix.length)
        return run(embeds, eot, prefix)

    encoder.forward_embeddings = spy
    try:
        shared = zero_shot.build_text_prototypes(
            encoder, tokenizer, categories, templates, batch_size=batch_size)
    finally:
        del encoder.forward_embeddings
    assert min(prefixes) >= 4  # '<start> a bad photo of the', ...
    unshared = zero_shot.build_text_prototypes(
        lambda ids: encoder(ids), tokenizer, categories, templates,
        batch_size=batch_size)
    want = reference_prototypes(encoder, tokenizer, categories, templates)
    torch.testing.assert_close(shared, unshared, atol=1e-6, rtol=0)
    torch.testing.assert_close(shared, want, atol=1e-6, rtol=0)


@pytest.mark.parity
@pytest.mark.slow
def test_prefix_sharing_is_exact_at_full_size(tokenizer):
    """ViT-B/16's text tower (random weights from open_clip, converted):
    20 categories x 8 templates with shared template starts equal the
    unshared builder and open_clip's ``encode_text`` (one category at a
    time, 77 tokens) to 1e-6 (measured: 6.7e-8 and 6.0e-8)."""
    open_clip = pytest.importorskip('open_clip')
    from mmprompt.converters import convert_openai_clip
    from mmprompt.models.clip.prompts import (IMAGENET_CATEGORIES,
                                              OPENAI_IMAGENET_TEMPLATES)
    torch.manual_seed(0)
    ref = open_clip.create_model('ViT-B-16-quickgelu').eval()
    converted = convert_openai_clip(ref.state_dict())[0]
    prefix = 'text_encoder.'
    tower = CLIPTextTransformer().eval()
    tower.load_state_dict({
        k[len(prefix):]: v
        for k, v in converted.items() if k.startswith(prefix)
    })
    categories = IMAGENET_CATEGORIES[:20]
    templates = OPENAI_IMAGENET_TEMPLATES[:8]
    shared = zero_shot.build_text_prototypes(tower, tokenizer, categories,
                                             templates)
    unshared = zero_shot.build_text_prototypes(
        lambda ids: tower(ids), tokenizer, categories, templates)
    # open_clip runs 77 tokens a row: the first 5 categories suffice.
    want = reference_prototypes(ref.encode_text, tokenizer, categories[:5],
                                templates)
    torch.testing.assert_close(shared, unshared, atol=1e-6, rtol=0)
    torch.testing.assert_close(shared[:5], want, atol=1e-6, rtol=0)


def test_descriptions(encoder, tokenizer):
    descriptions = {
        0: ('a facial photo of a tabby cat', ),
        2: ('a bird of prey in flight', 'a hawk-like bird')
    }
    only = zero_shot.build_text_prototypes(encoder, tokenizer, CATEGORIES,
                                           TEMPLATES, descriptions, 1.0)
    plain = reference_prototypes(encoder, tokenizer, CATEGORIES, TEMPLATES)
    with torch.no_grad():
        d0 = F.normalize(encoder(tokenizer(list(descriptions[0]))), dim=-1)
        d2 = F.normalize(encoder(tokenizer(list(descriptions[2]))), dim=-1)
    d0 = F.normalize(d0.mean(0), dim=-1)
    d2 = F.normalize(d2.mean(0), dim=-1)
    torch.testing.assert_close(only[0], d0, atol=1e-5, rtol=0)
    torch.testing.assert_close(only[2], d2, atol=1e-5, rtol=0)
    # Categories without descriptions keep their template prototype.
    torch.testing.assert_close(only[[1, 3]], plain[[1, 3]], atol=1e-5, rtol=0)

    mixed = zero_shot.build_text_prototypes(encoder, tokenizer, CATEGORIES,
                                            TEMPLATES, descriptions, 0.25)
    want = F.normalize(0.75 * plain[2] + 0.25 * d2, dim=-1)
    torch.testing.assert_close(mixed[2], want, atol=1e-5, rtol=0)
    torch.testing.assert_close(mixed[1], plain[1], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match=r'in \[0, 1\]'):
        zero_shot.build_text_prototypes(encoder, tokenizer, CATEGORIES,
                                        TEMPLATES, descriptions, 1.5)


def test_long_description_is_truncated_with_warning(encoder, tokenizer,
                                                    monkeypatch):
    logged = []
    monkeypatch.setattr(zero_shot, 'print_log',
                        lambda msg, **kw: logged.append((msg, kw)))
    long_text = 'a very ' * 60 + 'long description of a fox'
    protos = zero_shot.build_text_prototypes(encoder, tokenizer, CATEGORIES,
                                             TEMPLATES, {3:
                                                         (long_text, )}, 1.0)
    with torch.no_grad():
        want = F.normalize(
            encoder(tokenizer([long_text], truncate=True)), dim=-1)[0]
    torch.testing.assert_close(protos[3], want, atol=1e-5, rtol=0)
    assert len(logged) == 1
    msg, kwargs = logged[0]
    assert kwargs['level'] == logging.WARNING
    assert '1 description(s)' in msg and 'a very a very' in msg


def test_long_template_is_an_error(encoder, tokenizer):
    long_name = 'very ' * 80 + 'fox'
    with pytest.raises(ValueError, match='over the context length'):
        zero_shot.build_text_prototypes(encoder, tokenizer, ('cat', long_name),
                                        TEMPLATES)


def test_cache_logits_numbers():
    image = F.normalize(torch.tensor([[1.0, 0.0], [0.6, 0.8]]), dim=-1)
    keys = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    key_labels = torch.tensor([0, 2, 2])
    got = zero_shot.cache_logits(image, keys, key_labels, 3, beta=2.0)
    # image 0: cos = (1, 0, 0.6); image 1: cos = (0.6, 0.8, 1).
    want = torch.tensor([[1.0, 0.0, math.exp(-2.0) + math.exp(-0.8)],
                         [math.exp(-0.8), 0.0,
                          math.exp(-0.4) + 1.0]])
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)


def test_mean_per_class_recall():
    gt = torch.tensor([0, 0, 0, 0, 1, 2, 2])
    pred = torch.tensor([0, 0, 0, 1, 1, 0, 2])
    # Recalls 3/4, 1/1, 1/2; class 3 never occurs and is not counted.
    assert mean_per_class_recall(pred, gt) == pytest.approx(
        100 * (0.75 + 1 + 0.5) / 3)
    metric = MeanPerClassRecall()
    metric.process(None, [
        dict(pred_label=torch.tensor([p]), gt_label=torch.tensor([g]))
        for p, g in zip(pred.tolist(), gt.tolist())
    ])
    got = metric.compute_metrics(metric.results)
    assert got == {'mean_per_class_recall': pytest.approx(100 * 2.25 / 3)}
