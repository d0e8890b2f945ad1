# Copyright (c) mmprompt contributors. All rights reserved.
"""TagVocabulary and CategoryEncoder: what RAM scores, closed or open."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from testing_utils import REPO_ROOT

from mmprompt.models.ram import RAM, CategoryEncoder, RAMPlus, TagVocabulary
from mmprompt.registry import MODELS

CONFIGS = osp.join(REPO_ROOT, 'configs', 'ram')
TINY_SWIN = dict(
    arch=dict(embed_dims=12, depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8]),
    img_size=96,
    window_size=3)
TINY_HEAD = dict(embed_dims=64, feedforward_channels=128)


def tiny(config: str, num_classes: int = 4, **overrides):
    cfg = Config.fromfile(osp.join(CONFIGS, config)).model
    cfg.visual_encoder.update(TINY_SWIN)
    cfg.tagging_head.update(TINY_HEAD)
    cfg.num_classes = num_classes
    cfg.update(overrides)
    return MODELS.build(cfg).eval()


def unit_rows(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 512, generator=g)
    return x / x.norm(dim=-1, keepdim=True)


def test_vocabulary_selects_strictly_above_and_names():
    vocab = TagVocabulary(
        torch.zeros(6, 8),
        torch.tensor([0.5, 0.2, 0.9]),
        names=['a', 'b', 'c'],
        deleted=[1])
    assert (vocab.num_tags, vocab.num_descriptions) == (3, 2)
    scores = torch.tensor([[0.5, 0.9, 0.95], [0.51, 0.21, 0.9]])
    assert vocab.select(scores).tolist() == [[False, False, True],
                                             [True, False, False]]
    # One threshold for all; deleted tags stay off.
    assert vocab.select(scores, 0.5).tolist() == [[False, False, True],
                                                  [True, False, True]]
    assert vocab.names_of([0, 2]) == (['a', 'c'], None)
    assert TagVocabulary(torch.zeros(3, 8),
                         torch.zeros(3)).names_of([1]) == (None, None)


def test_vocabulary_checks_its_parts():
    with pytest.raises(ValueError, match=r'\(K \* D, C\) for 3 tags'):
        TagVocabulary(torch.zeros(4, 8), torch.zeros(3))
    with pytest.raises(ValueError, match='shape'):
        TagVocabulary(torch.zeros(3, 8), torch.zeros(3, 1))
    with pytest.raises(ValueError, match='2 names, the model 3'):
        TagVocabulary(torch.zeros(3, 8), torch.zeros(3), names=['a', 'b'])
    with pytest.raises(TypeError, match='strings'):
        TagVocabulary(torch.zeros(1, 8), torch.zeros(1), names_chinese=[1])
    with pytest.raises(ValueError, match=r'\[3\] outside'):
        TagVocabulary(torch.zeros(3, 8), torch.zeros(3), deleted=[3])


def test_closed_vocabulary_is_a_view_of_the_model():
    model = tiny('ram_swin-large-p4-w12_384px_normal.py', delete_tag_index=[2])
    vocab = model.vocabulary
    assert not model.is_openset
    assert vocab.label_embed is model.label_embed
    assert vocab.thresholds is model.class_threshold
    assert vocab.deleted == (2, ) and vocab.names is None
    model.set_tags(['a', 'b', 'c', 'd'], thresholds=[0.1, 0.2, 0.3, 0.4])
    assert model.vocabulary.names == ('a', 'b', 'c', 'd')
    assert model.vocabulary.thresholds.tolist() == pytest.approx(
        [0.1, 0.2, 0.3, 0.4])
    # Registered names: RAMNormal is RAM; RAMOpenset builds RAM with a
    # category encoder.
    assert MODELS.get('RAMNormal') is RAM
    assert type(model) is RAM and model.category_encoder is None


def test_set_vocabulary_follows_the_model_and_checks_rows():
    model = tiny('ram_swin-large-p4-w12_384px_normal.py')
    embed = unit_rows(3).double()
    model.set_vocabulary(
        TagVocabulary(embed, torch.tensor([0.1, 0.5, 0.9]), ['x', 'y', 'z']))
    vocab = model.vocabulary
    assert model.is_openset and vocab.names == ('x', 'y', 'z')
    assert vocab.deleted == ()
    # Copied to the model's dtype; non-persistent buffers, never saved.
    assert vocab.label_embed.dtype == torch.float32
    torch.testing.assert_close(vocab.label_embed, embed.float())
    assert not any(k.startswith('openset_') for k in model.state_dict())
    model.double()
    assert model.vocabulary.label_embed.dtype == torch.float64
    with torch.no_grad():
        logits = model.compute_logits(torch.zeros(1, 3, 96, 96).double())
    assert logits.shape == (1, 3)
    model.float()
    with pytest.raises(ValueError, match='need RAM\\+\\+'):
        model.set_vocabulary(TagVocabulary(unit_rows(4), torch.zeros(2)))
    with pytest.raises(ValueError, match='dims'):
        model.set_vocabulary(TagVocabulary(torch.zeros(2, 8), torch.zeros(2)))
    model.clear_openset()
    assert not model.is_openset and model.vocabulary.num_tags == 4
    # RAM++ mixes several rows per tag.
    plus = tiny(
        'ram-plus_swin-large-p4-w12_384px_normal.py', num_descriptions=3)
    assert isinstance(plus, RAMPlus) and plus.vocabulary.num_descriptions == 3
    plus.set_vocabulary(TagVocabulary(unit_rows(4), torch.zeros(2)))
    with torch.no_grad():
        assert plus.compute_logits(torch.zeros(2, 3, 96, 96)).shape == (2, 2)


def test_category_encoder_builds_and_caches_vocabularies():
    calls = []

    class Counting(CategoryEncoder):

        def encode_text(self, texts):
            calls.append(list(texts))
            return unit_rows(len(texts), seed=len(calls))

    encoder = Counting(
        categories=['cat', 'dog'],
        templates=['a {}.', 'the {}.'],
        threshold=0.3,
        cache_size=2)
    vocab = encoder.encode()
    assert vocab.names == ('cat', 'dog') and vocab.names_chinese is None
    assert vocab.thresholds.tolist() == pytest.approx([0.3, 0.3])
    assert vocab.label_embed.shape == (2, 512)
    assert calls == [[
        'This is a cat.', 'This is the cat.', 'This is a dog.',
        'This is the dog.'
    ]]
    assert torch.equal(
        encoder.encode(['cat', 'dog']).label_embed, vocab.label_embed)
    assert len(calls) == 1  # cached
    encoder.encode(['ant'])
    encoder.encode(['bee'], threshold=0.7)
    assert len(encoder._cache) == 2  # the oldest (cat, dog) dropped
    encoder.encode()
    assert len(calls) == 4
    # RAM++ descriptions: every description a row, category-major.
    vocab = encoder.encode([{'a': ['x', 'y']}, {'b': ['p', 'q']}])
    assert (vocab.num_tags, vocab.num_descriptions) == (2, 2)
    with pytest.raises(ValueError, match='need RAM\\+\\+'):
        encoder.encode([{'a': ['x']}], descriptions=False)
    with pytest.raises(ValueError, match=r'\[0, 1\]'):
        encoder.encode(threshold=2)
    with pytest.raises(RuntimeError, match='no text_encoder'):
        CategoryEncoder(categories=['cat']).encode()


def test_category_encoder_shares_template_starts_exactly():
    """Prompts of 10 categories share each template's start (run once per
    batch); the embeddings equal full 77-token rows, one category at a
    time, to 1e-6."""
    from mmprompt.models.clip import CLIPTokenizer
    torch.manual_seed(0)
    encoder = CategoryEncoder(
        text_encoder=dict(
            type='CLIPTextTransformer',
            embed_dims=32,
            num_layers=2,
            num_heads=4,
            out_dims=16),
        templates=['a photo of {article} {}.', 'itap of the {}.'],
        batch_size=4).eval()
    names = [f'thing number {i}' for i in range(8)] + ['apple', 'ox']
    tower = encoder.text_encoder
    prefixes = []
    run = tower.forward_embeddings

    def spy(embeds, eot, prefix=None):
        prefixes.append(0 if prefix is None else prefix.length)
        return run(embeds, eot, prefix)

    tower.forward_embeddings = spy
    got = encoder.encode(names).label_embed
    seen = set(prefixes)
    tokenizer = CLIPTokenizer()
    want = []
    with torch.no_grad():
        for name in names:
            article = 'an' if name[0] in 'aeiou' else 'a'
            texts = [f'This is a photo of {article} {name}.',
                     f'itap of the {name}.']
            feats = tower(tokenizer.tokenize(texts, truncate=True))
            mean = (feats / feats.norm(dim=-1, keepdim=True)).mean(dim=0)
            want.append(mean / mean.norm())
    torch.testing.assert_close(got, torch.stack(want), atol=1e-6, rtol=0)
    # Each prompt shares its longest start common to >= 8 prompts: 'This
    # is a photo of a thing number' (9 ids with the start token), 'itap of
    # the thing number' (7); 'apple' and 'ox' keep 'This is a photo of' (6)
    # and 'itap of the' (5).
    assert seen == {9, 7, 6, 5}


def test_openset_config_is_ram_with_a_category_encoder():
    model = tiny(
        'ram_swin-large-p4-w12_384px_openset.py',
        text_encoder=None,
        categories=['cat', 'Ale'],
        openset_threshold=0.25,
        text_batch_size=7)
    assert type(model) is RAM
    encoder = model.category_encoder
    assert isinstance(encoder, CategoryEncoder) and model.text_encoder is None
    assert (encoder.categories, encoder.threshold,
            encoder.batch_size) == (['cat', 'Ale'], 0.25, 7)
    model.set_openset(encode_text=lambda texts: unit_rows(len(texts)))
    assert model.vocabulary.names == ('cat', 'Ale')
    assert model.vocabulary.thresholds.tolist() == [0.25, 0.25]
    normal = tiny('ram_swin-large-p4-w12_384px_normal.py')
    with pytest.raises(TypeError, match='open-set model'):
        normal.set_openset(['cat'], encode_text=unit_rows)


def test_one_template_rule_for_clip_and_ram():
    from mmprompt.models.clip.prompts import check_templates
    from mmprompt.models.ram import resolve_ram_templates
    ram = ('a photo of {article} {}.', 'the {}.')
    assert check_templates(ram, fields=('article', )) == ram
    assert resolve_ram_templates(list(ram)) == ram
    with pytest.raises(ValueError, match='and "{article}" and no other'):
        resolve_ram_templates(['a {} {kind}'])
    with pytest.raises(ValueError, match='no other replacement field'):
        check_templates(ram)  # CLIP's templates take no {article}
    with pytest.raises(ValueError, match='exactly one'):
        resolve_ram_templates(['{article} photo'])


def test_ram_openset_templates_are_rams(ram_data_dir):
    """The 63 templates made from OpenAI's are RAM's file's, and embed
    the same categories (the order differs: only the rounding)."""
    import json

    from mmprompt.models.ram import (build_openset_label_embed,
                                     resolve_ram_templates)
    with open(osp.join(ram_data_dir, 'openset_templates.json')) as f:
        rams = json.load(f)['multiple_templates']
    ours = resolve_ram_templates('ram_openset')
    assert len(ours) == 63 and sorted(ours) == sorted(rams)
    assert ours[:2] == ('There is {article} {} in the scene.',
                        'There is the {} in the scene.')

    def encode_text(texts):  # a fixed vector per text
        return torch.stack([
            torch.randn(16, generator=torch.Generator().manual_seed(
                sum(map(ord, t)) * 131 + len(t))) for t in texts
        ])

    names = ['apple', 'ice_cream', 'Owl']
    torch.testing.assert_close(
        build_openset_label_embed(names, ours, encode_text),
        build_openset_label_embed(names, rams, encode_text),
        atol=1e-6,
        rtol=0)


def test_rare_openset_config_builds_from_another_folder(
        tmp_path, monkeypatch):
    """The zoo model's config names its templates through the package,
    not a path under the working directory."""
    from mmprompt.apis import get_model
    from mmprompt.models.ram import ram_openset_templates
    monkeypatch.chdir(tmp_path)
    model = get_model(
        'ram_swin-large-p4-w12_384px_openset_openimages-rare',
        pretrained=False,
        visual_encoder=dict(TINY_SWIN, arch=dict(TINY_SWIN['arch'],
                                                 _delete_=True)),
        tagging_head=TINY_HEAD,
        num_classes=4,
        text_encoder=None)
    assert model.category_encoder.templates == ram_openset_templates()
    assert model.category_encoder.categories == (
        'data/openimages_rare_200/openimages_rare_200_ram_taglist.txt')
