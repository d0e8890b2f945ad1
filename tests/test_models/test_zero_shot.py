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
