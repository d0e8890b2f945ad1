# Copyright (c) mmprompt contributors. All rights reserved.
import pytest
import torch
from testing_utils import siglip

from mmprompt.models.siglip.tokenizer import SigLIPTokenizer, canonicalize

HARD = [
    'A photo of a Cat.',
    'golden_retriever!!!  (puppy)',
    '  Tabs\tand\nnewlines   everywhere  ',
    'Café naïve — “quoted” ½ İstanbul',
    '東京の猫と犬',
    '&amp;lt;b&amp;gt; HTML &quot;entities&quot;',
    "it's the dog's toy, isn't it?",
    '',
    '...!!!',
    'üBER-long ' * 40,
]


def test_canonicalize_matches_open_clip():
    """big_vision's canonicalisation as open_clip applies it."""
    oc_tokenizer = pytest.importorskip('open_clip.tokenizer')
    for text in HARD:
        assert canonicalize(text) == oc_tokenizer._clean_canonicalize(text)
    assert canonicalize('golden_retriever!!!  (puppy)') == \
        'golden retriever puppy'


@pytest.mark.parametrize('pad_token', ['</s>', '<pad>'])
def test_siglip_tokenizer_ids_match_open_clip(tmp_path, pad_token):
    """Ids equal open_clip's HFTokenizer(clean='canonicalize') on the same
    file, padded to the full 64 with the pad token, over-long rows cut
    keeping </s>."""
    pytest.importorskip('transformers')
    oc_tokenizer = pytest.importorskip('open_clip.tokenizer')
    path = siglip.train_tokenizer(str(tmp_path), pad_token)
    ref = oc_tokenizer.HFTokenizer(
        str(tmp_path), context_length=64, clean='canonicalize')
    ours = SigLIPTokenizer(path, pad_token=pad_token)
    assert ours.vocab_size == 52
    expected = ref(HARD)
    got = ours(HARD, truncate=True)
    assert got.shape == (len(HARD), 64)
    assert torch.equal(got, expected)
    pad_id = {'<pad>': 0, '</s>': 1}[pad_token]
    # '' is </s> then padding; the over-long row ends with </s>.
    assert got[7].tolist() == [1] + [pad_id] * 63
    assert got[-1, -1].item() == 1 and (got[-1, :-1] != pad_id).all()


def test_siglip_tokenizer_refuses(tmp_path):
    path = siglip.train_tokenizer(str(tmp_path), '</s>')
    ours = SigLIPTokenizer(path)
    with pytest.raises(ValueError, match='Text 1 is .* tokens long, over '
                       'the context length 64'):
        ours(['a cat', 'üBER-long ' * 40])
    with pytest.raises(ValueError, match='has 52 tokens, the text tower '
                       '32000: it is the tokenizer of another model'):
        SigLIPTokenizer(path, vocab_size=32000)('a cat')
    with pytest.raises(ValueError, match="has no pad token '<nope>'"):
        SigLIPTokenizer(path, pad_token='<nope>')('a cat')
    bad = tmp_path / 'bad.json'
    bad.write_text('{"not": "a tokenizer"}')
    with pytest.raises(ValueError, match='not a tokenizer.json file'):
        SigLIPTokenizer(str(bad))('a cat')
    with pytest.raises(FileNotFoundError, match='missing.json not found'):
        SigLIPTokenizer(str(tmp_path / 'missing.json'))('a cat')
