# Copyright (c) mmprompt contributors. All rights reserved.
"""Tokenizer: ids identical to open_clip's on thousands of strings."""
import hashlib
import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mmprompt.models.clip.tokenizer import DEFAULT_BPE_PATH, CLIPTokenizer
from mmprompt.registry import TOKENIZER

SOT, EOT = 49406, 49407

CLASS_NAMES = [
    'aquarium fish', 'tabby cat', 'sea lion', 'maple tree', 'pickup truck',
    'sweet pepper', 'lawn mower', "jack-o'-lantern", 'Granny Smith',
    'T-shirt', 'CD player', 'black-and-white colobus', 'yellow lady\'s '
    'slipper', 'crème brûlée', 'piña colada', 'Pokémon', 'naïve café',
    'St. Bernard', 'three-toed sloth', 'ice lolly', 'Ölkanne', 'Ñandú',
    'électricité', 'Straße', 'ǅemal', 'ﬁsh ﬂakes', 'Ⅻ o\'clock', '½ pint',
    '2nd place', 'R2-D2', '100% cotton', 'A/B test', 'x_y_z', 'C++',
    'e-mail', 'U.S.A.', 'rock & roll', 'rock &amp; roll', '&lt;tag&gt;',
    '&amp;amp;', '&#39;quoted&#39;', 'don\'t', 'we\'ll', 'you\'re',
    'they\'ve', 'I\'m', 'she\'d', 'it\'s', 'IT\'S', 'O\'Neil\'s',
    '猫', '日本語のテキスト', '中文标签', '한국어', 'Привет мир',
    'Ελληνικά', 'עברית', 'العربية', 'हिन्दी', 'ไทย', '🐱', '🐶🐕‍🦺',
    '👩‍👩‍👧‍👦 family', '🇫🇷 flag', '❤️ love', 'Ã©tÃ©', 'â€œquotesâ€\x9d',
    'cafÃ©', 'Ã\xa0 la carte', '\u200bzero width', 'tab\tseparated',
    'new\nline', '  leading', 'trailing  ', 'multi   space   run',
    '\u3000ideographic space', 'nbsp\xa0here', '', ' ', '\n\t',
    'MiXeD CaSe', 'ALL CAPS', 'digits 0123456789', '3.14159',
    '1,000,000', '...', '!!!???', '<|startoftext|>', '<|endoftext|>',
    'a <|endoftext|> b', '<|startoftext|>x', 'supercalifragilistic'
    'expialidocious', 'pneumonoultramicroscopicsilicovolcanoconiosis',
]

TEMPLATES = [
    'a photo of a {}.', 'a bad photo of a {}.', 'a photo of many {}.',
    'a sculpture of a {}.', 'a rendering of a {}.', 'graffiti of a {}.',
    'a cropped photo of the {}.', 'a tattoo of a {}.', 'itap of a {}.',
    'a photo of the large {}.', 'art of the {}.', 'a drawing of a {}.',
    'a photo of the small {}.', 'a pixelated photo of the {}.',
    '{}', 'This is a {}, a type of pet.', 'a   {}   ', '{}!!! {}?',
    'a facial photo of a {}, with fur and whiskers.',
    'a centered satellite photo of {}.', 'a black and white photo of a {}.',
    'a plastic {}.', 'the origami {}.', 'a low resolution photo of a {}.',
    'a blurry photo of the {}.', 'a jpeg corrupted photo of a {}.',
    '{} ' * 30, 'a photo of a {} ' + 'and a very long description ' * 12,
    'a photo of a {}. ' * 20, 'an {} in the wild', 'the {} &amp; friends',
    'a photo of {} 🐾', '一张{}的照片', 'une photo d\'un {}.',
    'a photo of a {} ({}).', '{}{}{}', 'a\u00a0photo\u00a0of\u00a0a {}',
    'a photo of a {}\n\nwith\ttabs', 'ＡＢＣ {} ｆｕｌｌｗｉｄｔｈ',
    'a pic of a {}', 'a close-up photo of a {}.', 'a bright photo of a {}.',
    'a photo of a clean {}.', 'a photo of a dirty {}.',
    'a dark photo of the {}.', 'a photo of my {}.', 'a photo of the cool {}.',
    'a toy {}.', 'a {} in a video game.', 'a cartoon {}.',
    'a photo of one {}.', 'a doodle of a {}.', 'a close-up photo of the {}.',
    'a painting of the {}.', 'a good photo of the {}.', 'a sketch of a {}.',
]


def _corpus():
    texts = [t.replace('{}', c) for c, t in
             itertools.product(CLASS_NAMES, TEMPLATES)]
    texts += CLASS_NAMES + TEMPLATES
    return texts


@pytest.fixture(scope='module')
def tokenizers():
    open_clip = pytest.importorskip('open_clip')
    return CLIPTokenizer(), open_clip.get_tokenizer('ViT-B-16')


def test_vocab_file_is_openai_original():
    with open(DEFAULT_BPE_PATH, 'rb') as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    assert digest == ('924691ac288e54409236115652ad4aa250f48203de50a9e4722a'
                      '6ecd48d6804a')


def test_known_ids():
    tok = CLIPTokenizer()
    ids = tok.tokenize('a photo of a cat.')
    assert ids.dtype == torch.long and ids.shape == (1, 77)
    assert ids[0, :8].tolist() == [SOT, 320, 1125, 539, 320, 2368, 269, EOT]
    assert ids[0, 8:].abs().sum() == 0
    assert tok.vocab_size == 49408
    assert (tok.sot_token_id, tok.eot_token_id) == (SOT, EOT)
    assert tok.tokenize('').tolist()[0][:3] == [SOT, EOT, 0]
    # Special tokens typed by a user are plain text, as in open_clip.
    assert EOT not in tok.encode('a <|endoftext|> b')
    assert SOT not in tok.encode('<|startoftext|>')


def test_identical_to_open_clip(tokenizers):
    ours, ref = tokenizers
    texts = _corpus()
    assert len(texts) >= 5000
    a = ours.tokenize(texts, truncate=True)
    b = ref(texts)
    mismatched = [texts[i] for i in torch.nonzero(
        (a != b).any(1)).flatten().tolist()]
    assert not mismatched, mismatched[:5]
    # The corpus does exercise truncation.
    assert (a[:, -1] == EOT).sum() > 10


def test_over_long_text_is_named():
    tok = CLIPTokenizer()
    text = 'dog ' * 100
    with pytest.raises(ValueError, match='over the context length 77.*dog'):
        tok.tokenize(['ok', text])
    ids = tok.tokenize(text, truncate=True)
    assert ids[0, -1] == EOT and ids[0, 0] == SOT
    assert (ids == EOT).sum() == 1


def test_context_length_and_decode():
    tok = CLIPTokenizer(context_length=16)
    ids = tok('a photo of a tabby cat.')
    assert ids.shape == (1, 16)
    assert tok.decode(ids[0]) == 'a photo of a tabby cat .'
    assert tok.decode(tok.encode('Crème Brûlée &amp; 猫')) == (
        'crème brûlée & 猫')
    assert tok.tokenize(['x'], context_length=5).shape == (1, 5)


def test_registered():
    tok = TOKENIZER.build(dict(type='CLIPTokenizer'))
    assert isinstance(tok, CLIPTokenizer)


_TOKENIZER = CLIPTokenizer()


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_arbitrary_text_never_raises_with_truncation(text):
    ids = _TOKENIZER.tokenize(text, truncate=True)
    assert ids.shape == (1, 77)
    assert ids[0, 0] == SOT
    assert (ids == EOT).sum() == 1
    eot = int((ids[0] == EOT).nonzero())
    assert ids[0, eot + 1:].abs().sum() == 0
