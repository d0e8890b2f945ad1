# Copyright (c) mmprompt contributors. All rights reserved.
"""The functions behind the Gradio demo, with a fake model backend."""
import importlib.util
import os.path as osp
import struct
import threading
import time
import zlib

import numpy as np
import pytest
from PIL import Image

import demo_backend as db  # demo/, on sys.path through __init__.py
from demo_backend import (DemoInputError, LazyModel, MemoryBudget,
                          MMPromptBackend, TagRow, load_image,
                          parse_categories, parse_descriptions, parse_examples,
                          run_classify, run_tagging)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _png(path, width, height, bit_depth, color_type, pixels=None):
    """Write a PNG by hand (PIL cannot write 16-bit RGB, or lie about size).

    ``pixels`` is a uint8/uint16 array of the image; None writes a header
    and an empty image stream, which is enough for ``Image.open``.
    """

    def chunk(tag, data):
        body = tag + data
        return (struct.pack('>I', len(data)) + body +
                struct.pack('>I',
                            zlib.crc32(body) & 0xffffffff))

    ihdr = struct.pack('>IIBBBBB', width, height, bit_depth, color_type, 0, 0,
                       0)
    raw = b''
    if pixels is not None:
        dtype = '>u2' if bit_depth == 16 else 'u1'
        rows = np.ascontiguousarray(pixels.astype(dtype)).reshape(height, -1)
        raw = b''.join(b'\x00' + row.tobytes() for row in rows)
    with open(path, 'wb') as f:
        f.write(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr) +
                chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b''))
    return str(path)


class FakeBackend(MMPromptBackend):
    """Every model available; records its calls; scores categories by
    their position."""

    def __init__(self):
        super().__init__('x')
        self.calls = []

    def clip_unavailable(self):
        return None

    ram_unavailable = open_set_unavailable = clip_unavailable

    def template_sets(self):
        return ['simple', 'openai_imagenet']

    def tag(self, image, threshold, categories):
        self.calls.append(('tag', image.size, threshold, categories))
        names = categories or ['dog', 'grass', 'frisbee']
        zh = {'dog': '狗', 'grass': '草 '}
        return [
            TagRow(n, zh.get(n, ''), 0.5 + 0.1 * i)
            for i, n in enumerate(names)
        ]

    def classify(self, image, categories, descriptions, examples, templates,
                 topk):
        self.calls.append(('classify', image.size, list(categories),
                           descriptions, examples, templates, topk))
        n = len(categories)
        total = n * (n + 1) / 2
        return {c: (i + 1) / total for i, c in enumerate(categories)}


# ----------------------------------------------------------------- images


def test_load_image_rgb_and_modes(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (30, 40, 3), np.uint8)
    path = str(tmp_path / 'rgb.png')
    Image.fromarray(rgb).save(path)
    img = load_image(path)
    assert img.mode == 'RGB' and img.size == (40, 30)
    np.testing.assert_array_equal(np.asarray(img), rgb)
    # The library decoder's modes: the inferencers resize these as the
    # references do, so the page answers as the API does.
    for mode, kept in (('CMYK', 'RGB'), ('P', 'P'), ('1', '1'), ('LA', 'LA'),
                       ('I', 'L'), ('F', 'L'), ('RGBA', 'RGBA')):
        img = load_image(Image.new(mode, (5, 4)))
        assert img.mode == kept and img.size == (5, 4), mode


def test_load_image_is_the_library_decoder(tmp_path):
    """Same pixels as the API's decoder: 16-bit scaled, no downscale."""
    from mmprompt.utils.image_io import decode_image
    gray16 = np.array([[0, 257, 32896, 65535]], np.uint16)
    path = _png(tmp_path / 'g16.png', 4, 1, 16, 0, gray16)
    out = np.asarray(load_image(path))
    assert out[0].tolist() == [0, 1, 128, 255]
    np.testing.assert_array_equal(out, np.asarray(decode_image(path, None)))
    big = str(tmp_path / 'big.png')
    Image.new('L', (3000, 100)).save(big)
    assert load_image(big).size == (3000, 100)


def test_load_image_refuses_bombs(tmp_path):
    # The header claims 100000 x 100000 px; nothing is decoded.
    bomb = _png(tmp_path / 'bomb.png', 100000, 100000, 8, 2)
    with pytest.raises(DemoInputError, match='too large to decode'):
        load_image(bomb)
    # Over PIL's warning limit, under its error limit.
    bomb = _png(tmp_path / 'bomb2.png', 10000, 10000, 8, 2)
    with pytest.raises(
            DemoInputError, match='100.0 megapixels, over the limit of 89.5'):
        load_image(bomb)
    small = tmp_path / 'small.png'
    Image.new('RGB', (200, 200)).save(small)
    with pytest.raises(DemoInputError, match='limit of 0.0'):
        load_image(str(small), max_pixels=10_000)
    with pytest.raises(DemoInputError, match='over the limit'):
        load_image(np.zeros((200, 200), np.uint8), max_pixels=10_000)


def test_load_image_bad_input(tmp_path):
    for empty in (None, '', '  '):
        with pytest.raises(DemoInputError, match='no image'):
            load_image(empty)
    text = tmp_path / 'notes.png'
    text.write_text('not an image')
    with pytest.raises(DemoInputError, match='not an image file'):
        load_image(str(text))
    good = tmp_path / 'good.png'
    Image.fromarray(
        np.random.default_rng(0).integers(0, 256, (64, 64, 3),
                                          np.uint8)).save(good)
    cut = tmp_path / 'cut.png'
    cut.write_bytes(good.read_bytes()[:400])
    with pytest.raises(DemoInputError, match='damaged or incomplete') as e:
        load_image(str(cut))
    assert str(tmp_path) not in str(e.value)  # no server paths on the page
    with pytest.raises(DemoInputError, match='no such file'):
        load_image(str(tmp_path / 'missing.png'))
    with pytest.raises(DemoInputError, match='got int'):
        load_image(42)


def test_load_image_exif_orientation(tmp_path):
    img = Image.new('RGB', (40, 20))
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view
    path = str(tmp_path / 'rot.jpg')
    img.save(path, exif=exif)
    assert load_image(path).size == (20, 40)


# ------------------------------------------------------------- text boxes


def test_parse_categories():
    text = ' tabby  cat, dog\nred fox，car;\n\n, bus ,'
    assert parse_categories(text) == [
        'tabby cat', 'dog', 'red fox', 'car', 'bus'
    ]
    for empty in (None, '', ' , \n ,'):
        with pytest.raises(DemoInputError, match='no categories'):
            parse_categories(empty)
    with pytest.raises(DemoInputError) as e:
        parse_categories('Cat, dog, cat , bird, DOG, dog')
    # The library's check and message (check_categories).
    msg = str(e.value)
    assert "'Cat' (#0) and 'cat' (#2) are the same" in msg
    assert "'dog' (#1), 'DOG' (#4) and 'dog' (#5) are the same" in msg
    assert 'bird' not in msg
    with pytest.raises(DemoInputError, match='too many categories: 4'):
        parse_categories('a,b,c,d', max_categories=3)
    with pytest.raises(DemoInputError, match='limited to 120 characters'):
        parse_categories('x' * 121)


def test_demo_names_are_compared_as_the_tokenizer_reads_them():
    """Full-width letters and Unicode normal forms are no new category."""
    with pytest.raises(DemoInputError) as e:
        parse_categories('cat, \uff23\uff41\uff54, caf\u00e9, cafe\u0301')
    msg = str(e.value)
    assert ("'cat' (#0) and '\uff23\uff41\uff54' (#1)" in msg
            and "'caf\u00e9' (#2) and 'cafe\\u0301' (#3)" in msg)
    assert db.match_category('\uff43\uff41\uff54', ['dog', 'Cat'],
                             'x') == 'Cat'


def test_parse_descriptions():
    cats = ['tabby cat', 'red fox']
    text = ('Tabby Cat: a cat with stripes\n\n'
            'red fox: a small wild dog: with a bushy tail\n'
            'tabby  cat:an orange tabby\n')
    assert parse_descriptions(text, cats) == {
        'tabby cat': ['a cat with stripes', 'an orange tabby'],
        'red fox': ['a small wild dog: with a bushy tail'],
    }
    assert parse_descriptions('', cats) == {}
    assert parse_descriptions(None, cats) == {}
    with pytest.raises(DemoInputError, match='line 2 has no ":"'):
        parse_descriptions('red fox: ok\njust text', cats)
    with pytest.raises(DemoInputError, match='line 1 .*no text after'):
        parse_descriptions('red fox:  ', cats)
    with pytest.raises(
            DemoInputError, match='"wolf" is not one of the categories'):
        parse_descriptions('wolf: grey', cats)


def test_parse_examples(tmp_path):
    cats = ['cat', 'dog']
    paths = []
    for i in range(3):
        p = str(tmp_path / f'ex{i}.png')
        Image.new('RGB', (2000, 1000), (i, i, i)).save(p)
        paths.append(p)
    out = parse_examples([('Cat', paths[:2]), (None, None), ('dog', []),
                          ('dog', paths[2])], cats)
    assert list(out) == ['cat', 'dog']
    assert [im.size for im in out['cat']] == [(2000, 1000)] * 2
    assert len(out['dog']) == 1
    assert parse_examples([], cats) == {}
    with pytest.raises(DemoInputError, match='set 2 has images but no'):
        parse_examples([('cat', None), ('', paths)], cats)
    with pytest.raises(DemoInputError, match='"bird" is not one of'):
        parse_examples([('bird', paths)], cats)
    bad = tmp_path / 'bad.jpg'
    bad.write_bytes(b'junk')
    with pytest.raises(DemoInputError, match="'bad.jpg' of \"dog\""):
        parse_examples([('dog', [paths[0], str(bad)])], cats)
    with pytest.raises(DemoInputError, match='17 example images'):
        parse_examples([('dog', paths[:1] * 17)], cats)


# ------------------------------------------------------------- formatting


def test_format_tags_and_sort_scores():
    rows = [
        TagRow('grass', '草 ', 0.7),
        TagRow('dog', '狗', 0.9),
        TagRow('apple', '', 0.7)
    ]
    bars, table, en, zh = db.format_tags(rows)
    assert list(bars.items()) == [('dog / 狗', 0.9), ('apple', 0.7),
                                  ('grass / 草', 0.7)]
    assert table == [['dog', '狗', 0.9], ['apple', '', 0.7],
                     ['grass', '草', 0.7]]
    assert en == 'dog | apple | grass' and zh == '狗 | apple | 草'
    assert db.format_tags([]) == ({}, [], '', '')
    many = [TagRow(f't{i:02d}', '', i / 100) for i in range(40)]
    bars, table, en, _ = db.format_tags(many, max_bars=5)
    assert list(bars) == ['t39', 't38', 't37', 't36', 't35']
    assert len(table) == 40 and en.count('|') == 39
    assert list(db.sort_scores({
        'b': 0.2,
        'a': 0.2,
        'c': 0.6
    }, 2)) == ['c', 'a']


# --------------------------------------------------------------- handlers


def test_run_tagging():
    fake = FakeBackend()
    img = np.zeros((8, 8, 3), np.uint8)
    bars, table, en, zh = run_tagging(fake, img, 0.3, True, '')
    assert fake.calls[-1] == ('tag', (8, 8), None, None)
    assert en == 'frisbee | grass | dog' and zh == 'frisbee | 草 | 狗'
    assert table[0] == ['frisbee', '', 0.7]
    run_tagging(fake, img, 0.3, False, None)
    assert fake.calls[-1][2] == 0.3
    # The open set always uses the slider.
    bars, *_ = run_tagging(fake, img, 0.25, True, 'beach,\n Ball ')
    assert fake.calls[-1] == ('tag', (8, 8), 0.25, ['beach', 'Ball'])
    assert list(bars) == ['Ball', 'beach']
    with pytest.raises(DemoInputError, match='duplicate'):
        run_tagging(fake, img, 0.3, True, 'a, A')
    with pytest.raises(DemoInputError, match='no image'):
        run_tagging(fake, None, 0.3, True, '')
    with pytest.raises(DemoInputError, match='not in'):
        run_tagging(fake, img, 1.5, True, '')


def test_run_classify(tmp_path):
    fake = FakeBackend()
    img = np.zeros((8, 8, 3), np.uint8)
    ex = str(tmp_path / 'ex.png')
    Image.new('RGB', (4, 4)).save(ex)
    out = run_classify(fake, img, 'cat, dog, fox', 'Dog: a good dog',
                       [('fox', [ex]), (None, None)], 'openai_imagenet', 2)
    assert list(out.items()) == [('fox', 0.5), ('dog', 1 / 3)]
    call = fake.calls[-1]
    assert call[2:4] == (['cat', 'dog', 'fox'], {'dog': ['a good dog']})
    assert list(call[4]) == ['fox'] and call[4]['fox'][0].size == (4, 4)
    assert call[5:] == ('openai_imagenet', 2)
    # topk is clamped to the category count; no template picks the first.
    out = run_classify(fake, img, 'cat\ndog', '', [], None, 10.0)
    assert len(out) == 2 and fake.calls[-1][5:] == ('simple', 2)
    with pytest.raises(DemoInputError, match='no categories'):
        run_classify(fake, img, ' ', '', [], 'simple', 5)
    with pytest.raises(DemoInputError, match="'cat' .#0. and 'CAT' .#1."):
        run_classify(fake, img, 'cat, CAT', '', [], 'simple', 5)
    with pytest.raises(DemoInputError, match='unknown template set'):
        run_classify(fake, img, 'cat', '', [], 'nope', 5)
    with pytest.raises(DemoInputError, match='no image'):
        run_classify(fake, None, 'cat', '', [], 'simple', 5)
    # Issue 12, s.6: these reached the page as raw ValueErrors.
    for topk in ('abc', 0, 1.5, None):
        with pytest.raises(DemoInputError, match='top-k must be a whole'):
            run_classify(fake, img, 'cat, dog', '', [], 'simple', topk)
    cjk = '猫' * 120
    with pytest.raises(
            DemoInputError,
            match=r'too long for the text model: \d+ tokens, at '
            'most 60'):
        run_classify(fake, img, f'{cjk}, dog', '', [], 'simple', 2)
    with pytest.raises(DemoInputError, match='too long for the text model'):
        run_tagging(fake, img, 0.5, False, cjk)


# ---------------------------------------------------------- real backend


def test_unavailable_models_explain_how_to_convert(tmp_path):
    backend = MMPromptBackend('clip_vit-base-p16', None, 'ram.py',
                              str(tmp_path / 'missing.pth'))
    clip, ram = backend.clip_unavailable(), backend.ram_unavailable()
    assert 'openai_clip_to_mmprompt.py' in clip
    assert '--clip-checkpoint' in clip
    assert 'ram_to_mmprompt.py' in ram and 'missing.pth` does not' in ram
    assert '--ram-text-checkpoint' in backend.open_set_unavailable()
    # A zoo name's own files and converter (issue #20: the open weights).
    help_text = MMPromptBackend('pe-core_vit-base-p16').clip_unavailable()
    assert 'pe_core_to_mmprompt.py' in help_text
    assert 'checkpoints/pe-core_vit-base-p16.pth' in help_text
    assert 'timm/PE-Core-B-16/resolve' in help_text  # its weights' URL
    ckpt = tmp_path / 'ok.pth'
    ckpt.write_bytes(b'')
    assert MMPromptBackend('x', str(ckpt)).clip_unavailable() is None
    # A text checkpoint picks the open-set config by default ...
    backend = MMPromptBackend('x', ram_text_checkpoint=str(ckpt))
    assert backend.ram_config == db.RAM_OPENSET_CONFIG
    assert backend.open_set_unavailable() is None
    # ... and a closed-set config cannot do the open set.
    backend = MMPromptBackend(
        'x', ram_config=db.RAM_CONFIG, ram_text_checkpoint=str(ckpt))
    assert 'open-set RAM config' in backend.open_set_unavailable()
    with pytest.raises(DemoInputError, match='open-set RAM config'):
        run_tagging(backend, np.zeros((4, 4, 3), np.uint8), 0.5, True, 'cat')


def test_result_adapters():
    rows = db._tag_rows([
        dict(
            tags=['dog', 'grass'],
            tags_chinese=['狗', '草 '],
            tag_scores=[0.9, 0.7],
            tag_labels=[3, 1])
    ])
    assert rows == [TagRow('dog', '狗', 0.9), TagRow('grass', '草 ', 0.7)]
    rows = db._tag_rows([
        dict(
            tags=['cat'],
            tags_chinese=None,
            tag_scores=[0.6],
            tag_labels=[0])
    ])
    assert rows == [TagRow('cat', '', 0.6)]
    assert db._class_scores(
        [dict(topk_classes=['b', 'a'], topk_scores=[0.7, 0.2])]) == {
            'b': 0.7,
            'a': 0.2
        }


@pytest.fixture(scope='module')
def tiny_backend(tmp_path_factory):
    """The real backend on tiny random-weight converted models."""
    from testing_utils import demo_models as tiny
    if not osp.isfile(osp.join(tiny.RAM_VECTORS, 'ram_tiny_state_dict.pth')):
        pytest.skip(f'shared RAM test vectors not found in '
                    f'{tiny.RAM_VECTORS}')
    work = str(tmp_path_factory.mktemp('tiny_models'))
    clip = tiny.make_tiny_clip(work)
    ram = tiny.make_tiny_ram(work, clip['checkpoint'])
    backend = MMPromptBackend(clip['config'], clip['checkpoint'],
                              ram['config'], ram['checkpoint'],
                              clip['checkpoint'])
    image = osp.join(tiny.RAM_VECTORS, 'images', 'img0_rgb_320x240.png')
    return backend, image, tiny.ram_tiny_expected()['expected']


def test_real_backend_tags_like_the_reference(tiny_backend):
    backend, image, expected = tiny_backend
    want_en = sorted(expected['tags_en'][0].split(' | '))
    want_zh = sorted(t.strip() for t in expected['tags_zh'][0].split(' | '))
    bars, table, en, zh = run_tagging(backend, image, 0.5, True, '')
    assert sorted(en.split(' | ')) == want_en
    assert sorted(zh.split(' | ')) == want_zh
    scores = [row[2] for row in table]
    assert scores == sorted(scores, reverse=True)
    # Open set, then the closed set again: no state left behind.
    bars, table, en, zh = run_tagging(backend, image, 0.3, True,
                                      'cat, dog, red car')
    assert set(en.split(' | ')) <= {'cat', 'dog', 'red car'} and en
    assert all(row[1] == '' for row in table)
    _, _, en, _ = run_tagging(backend, image, 0.5, True, '')
    assert sorted(en.split(' | ')) == want_en
    # A global threshold of 0 selects every tag.
    _, table, _, _ = run_tagging(backend, image, 0.0, False, '')
    assert len(table) == 20


def test_real_backend_tags_with_ram_plus(tmp_path):
    """The demo runs RAM++ (``--ram-config`` of a RAM++ config): the
    reference tags of the tiny RAM++, then an open set from plain names."""
    from testing_utils import demo_models as tiny
    if not osp.isfile(
            osp.join(tiny.RAM_VECTORS, 'ram_plus_tiny_state_dict.pth')):
        pytest.skip(f'shared RAM++ test vectors not found in '
                    f'{tiny.RAM_VECTORS}')
    clip = tiny.make_tiny_clip(str(tmp_path))
    ram = tiny.make_tiny_ram(str(tmp_path), clip['checkpoint'], plus=True)
    backend = MMPromptBackend(clip['config'], None, ram['config'],
                              ram['checkpoint'], clip['checkpoint'])
    image = osp.join(tiny.RAM_VECTORS, 'images', 'img0_rgb_320x240.png')
    expected = tiny.ram_tiny_expected(plus=True)['expected']
    _, _, en, zh = run_tagging(backend, image, 0.5, True, '')
    assert sorted(en.split(' | ')) == sorted(
        expected['tags_en'][0].split(' | '))
    assert sorted(zh.split(' | ')) == sorted(
        t.strip() for t in expected['tags_zh'][0].split(' | '))
    _, table, en, _ = run_tagging(backend, image, 0.0, True, 'cat, dog')
    assert sorted(row[0] for row in table) == ['cat', 'dog']


def test_real_backend_classifies(tiny_backend, tmp_path):
    backend, image, _ = tiny_backend
    out = run_classify(backend, image, 'cat, dog, red car',
                       'cat: a small cat with whiskers', [('dog', [image])],
                       'simple', 5)
    assert sorted(out) == ['cat', 'dog', 'red car']
    assert abs(sum(out.values()) - 1) < 1e-4
    assert list(out.values()) == sorted(out.values(), reverse=True)
    out = run_classify(backend, image, 'bus\ntree', '', [], 'openai_imagenet',
                       1)
    assert len(out) == 1 and set(out) <= {'bus', 'tree'}


class _CountingClassifier:
    """Answers with the categories it is called with; records the threads
    calling it and how many call at once."""

    def __init__(self):
        self.threads = set()
        self.active = self.most_active = 0
        self._lock = threading.Lock()

    def __call__(self, image, categories, templates, topk, **kwargs):
        with self._lock:
            self.threads.add(threading.get_ident())
            self.active += 1
            self.most_active = max(self.most_active, self.active)
        time.sleep(0.01)
        with self._lock:
            self.active -= 1
        return [
            dict(
                topk_classes=list(categories),
                topk_scores=[1.0 / len(categories)] * len(categories))
        ]


def test_backend_builds_once_and_serves_requests_side_by_side(monkeypatch):
    """Eight threads, each with its own categories: the model is built
    once, called from the requests' own threads at the same time, and each
    request gets its own categories."""
    builds = []

    def build(self):
        builds.append(_CountingClassifier())
        time.sleep(0.05)
        return builds[-1]

    monkeypatch.setattr(MMPromptBackend, '_build_classifier', build)
    backend = MMPromptBackend('x', 'ckpt.pth')
    img = Image.new('RGB', (4, 4))
    results, errors = {}, []
    start = threading.Barrier(8)

    def worker(i):
        cats = [f'class{i}-{j}' for j in range(3)]
        try:
            start.wait()
            for _ in range(5):
                out = backend.classify(img, cats, {}, {}, 'simple', 3)
                if list(out) != cats:
                    errors.append((i, list(out)))
            results[i] = out
        except Exception as e:  # pragma: no cover - shown by the assert
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i, )) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 8
    assert len(builds) == 1
    assert builds[0].threads == {t.ident for t in threads}
    assert builds[0].most_active > 1


def test_lazy_model_remembers_a_failed_build():
    calls = []

    def build():
        calls.append(1)
        raise OSError('disk on fire')

    model = LazyModel(build)
    for _ in range(2):
        with pytest.raises(RuntimeError, match='could not be loaded '
                           r'\(OSError: disk on fire\)'):
            model.get()
    assert calls == [1]


def test_backend_load_failure_is_a_message(monkeypatch):

    def build(self):
        raise FileNotFoundError('no such file: ram.pth')

    monkeypatch.setattr(MMPromptBackend, '_build_tagger', build)
    backend = MMPromptBackend('x', None, 'y', 'ram.pth')
    for _ in range(2):
        with pytest.raises(
                RuntimeError, match='could not be loaded .*no such file'):
            backend.tag(Image.new('RGB', (4, 4)), None, None)


# ------------------------------------------------------------------ page


def _load_demo_module():
    pytest.importorskip('gradio')
    spec = importlib.util.spec_from_file_location(
        'mmprompt_gradio_demo', osp.join(REPO, 'demo', 'gradio_demo.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_page_builds_and_disables_missing_models():
    demo_module = _load_demo_module()
    backend = MMPromptBackend('clip_vit-base-p16', None, 'ram.py', None)
    page = demo_module.build_demo(backend, queue_size=4)
    texts = [
        c['props'].get('value') for c in page.config['components']
        if c['type'] == 'markdown'
    ]
    assert any('ram_to_mmprompt.py' in (t or '') for t in texts)
    assert any('openai_clip_to_mmprompt.py' in (t or '') for t in texts)
    # No inputs are built for a disabled tab.
    assert not [c for c in page.config['components'] if c['type'] == 'image']
    assert page._queue.max_size == 4


def test_guard_turns_errors_into_page_messages():
    demo_module = _load_demo_module()
    import gradio as gr

    def bad_input(x):
        raise DemoInputError('no image: upload an image first')

    def crash(x):
        raise KeyError('secret internals')

    with pytest.raises(gr.Error, match='no image'):
        demo_module._guard(bad_input)(1)

    def refused(x):
        raise ValueError('template set unknown')

    with pytest.raises(gr.Error, match='template set unknown'):
        demo_module._guard(refused)(1)
    with pytest.raises(gr.Error, match=r'internal error \(KeyError\)') as e:
        demo_module._guard(crash)(1)
    assert 'secret' not in str(e.value)
    assert demo_module._category_choices('a, b\nA ,b，c') == [
        'a', 'b', 'A', 'c'
    ]
    args = demo_module.parse_args(['--port', '0'])
    assert args.server_name == '127.0.0.1' and args.clip_checkpoint is None


def test_page_via_client(tmp_path):
    """The queued page in-process, driven through gradio_client."""
    demo_module = _load_demo_module()
    client_lib = pytest.importorskip('gradio_client')
    page = demo_module.build_demo(FakeBackend(), queue_size=8)
    page.launch(
        server_name='127.0.0.1',
        server_port=None,
        prevent_thread_lock=True,
        quiet=True,
        ssr_mode=False,
        show_error=True)
    try:
        client = client_lib.Client(page.local_url, verbose=False)
        img = str(tmp_path / 'img.png')
        Image.new('RGBA', (30, 20)).save(img)
        bars, en, zh, table = client.predict(
            client_lib.handle_file(img),
            0.4,
            True,
            'beach, ball',
            api_name='/tag')
        assert en == 'ball | beach'
        assert bars['label'] == 'ball'
        assert table['data'][0] == ['ball', '', 0.6]
        top = client.predict(
            client_lib.handle_file(img),
            'cat, dog, fox',
            '',
            'simple',
            2,
            'dog', [client_lib.handle_file(img)],
            None,
            None,
            None,
            None,
            api_name='/classify')
        assert [c['label'] for c in top['confidences']] == ['fox', 'dog']
        bad = tmp_path / 'bad.png'
        bad.write_text('junk')
        with pytest.raises(Exception, match='not an image file'):
            client.predict(
                client_lib.handle_file(str(bad)),
                0.4,
                True,
                '',
                api_name='/tag')
        with pytest.raises(Exception, match='duplicate category names'):
            client.predict(
                client_lib.handle_file(img),
                'cat, Cat',
                '',
                'simple',
                2,
                None,
                None,
                None,
                None,
                None,
                None,
                api_name='/classify')
        # Still serving after the errors.
        assert client.predict(
            client_lib.handle_file(img), 0.4, True, '',
            api_name='/tag')[1] == 'frisbee | grass | dog'
    finally:
        page.close()


def test_learned_prompts_in_the_classify_tab(tmp_path):
    """``--learned``: the real backend classifies with a CoOp file (the
    scores of ZeroShotClassifier(learned=)), the page shows it and starts
    with its categories; descriptions are refused, a bad file is refused
    at start-up."""
    from testing_utils import demo_models as tiny

    from mmprompt.apis import ZeroShotClassifier
    from mmprompt.models.prompt_learning import CoOp, save_learned
    from mmprompt.utils.errors import CheckpointError
    clip = tiny.make_tiny_clip(str(tmp_path))
    names = ['cat', 'dog', 'red car']
    zero_shot = ZeroShotClassifier(clip['config'], clip['checkpoint'])
    import torch
    torch.manual_seed(0)
    coop = CoOp(zero_shot.model, categories=names, n_ctx=2)
    learned = str(tmp_path / 'coop.pth')
    save_learned(coop, learned)
    backend = MMPromptBackend(
        clip['config'], clip['checkpoint'], learned=learned)
    note = backend.learned_prompts()
    assert 'CoOp' in note and 'cat, dog, red car' in note
    assert backend.learned_categories() == names
    image = np.random.default_rng(0).integers(0, 256, (40, 50, 3), np.uint8)
    out = run_classify(backend, image, 'cat, red car, zebra', '', [], 'simple',
                       3)
    want = ZeroShotClassifier(
        clip['config'], clip['checkpoint'], learned=learned)(
            Image.fromarray(image),
            categories=['cat', 'red car', 'zebra'],
            topk=3)[0]
    assert list(out) == want['topk_classes']
    assert np.allclose(list(out.values()), want['topk_scores'], atol=1e-6)
    with pytest.raises(DemoInputError, match='replace descriptions'):
        run_classify(backend, image, 'cat, dog', 'cat: small', [], 'simple', 2)
    with pytest.raises(CheckpointError, match='not a learned-prompt file'):
        MMPromptBackend(
            clip['config'], clip['checkpoint'], learned=clip['checkpoint'])
    if importlib.util.find_spec('gradio') is None:
        pytest.skip('gradio is not installed: the page is not checked')
    page = _load_demo_module().build_demo(backend, queue_size=4)
    props = {
        c['props'].get('elem_id'): c['props']
        for c in page.config['components']
    }
    assert props['cls-learned']['value'] == note
    assert props['cls-categories']['value'] == 'cat, dog, red car'
    assert props['cls-templates']['visible'] is False


# -------------------------------------------------------------- fairness


def test_large_open_set_does_not_starve_small_requests(tiny_backend,
                                                       monkeypatch):
    """While an 8-name open set is embedded (2 names a chunk, the first
    chunk held until the others are done), a closed-set and a small
    open-set request both finish; every answer equals the one served alone
    (the large one: the library's one-call embedding of all 8 names)."""
    backend, image, _ = tiny_backend
    img = load_image(image)
    names = [f'thing {i}' for i in range(8)]
    tagger = backend._tagger.get()
    alone = {
        'closed': backend.tag(img, None, None),
        'small': backend.tag(img, 0.0, ['cat', 'dog']),
        'large': tagger(img, categories=names, threshold=0.0,
                        sort_by='score')
    }
    encoder = tagger.model.category_encoder
    monkeypatch.setattr(encoder, 'chunk_size', 2)
    encoder._cache.clear()
    encode_text = encoder.encode_text
    chunks, done, got = [], [], {}
    others_done = threading.Event()

    def encode_after_others(texts):
        chunks.append(len(texts) // len(encoder.templates))
        if len(chunks) == 1:  # the large request's first chunk
            assert others_done.wait(30), 'the others never finished'
        return encode_text(texts)

    monkeypatch.setattr(encoder, 'encode_text', encode_after_others)

    def call(name, *args):
        got[name] = backend.tag(img, *args)
        done.append(name)

    large = threading.Thread(target=call, args=('large', 0.0, names))
    large.start()
    while not chunks:
        time.sleep(0.001)
    small = [
        threading.Thread(target=call, args=('closed', None, None)),
        threading.Thread(target=call, args=('small', 0.0, ['cat', 'dog']))
    ]
    for t in small:
        t.start()
    for t in small:
        t.join(60)
    others_done.set()
    large.join(60)
    assert sorted(done[:2]) == ['closed', 'small'] and done[2] == 'large'
    assert chunks == [2, 2, 2, 2, 2]  # 'cat', 'dog' among them
    assert got['closed'] == alone['closed'] and got['small'] == alone['small']
    want = dict(
        zip(alone['large'][0]['tags'], alone['large'][0]['tag_scores']))
    have = {row.tag: row.score for row in got['large']}
    assert set(have) == set(want) == set(names)
    assert max(abs(have[n] - want[n]) for n in names) < 1e-5
    # The same large set again: its chunks are cached, nothing re-embedded.
    chunks.clear()
    assert backend.tag(img, 0.0, names) == got['large']
    assert not chunks


def test_page_lets_requests_into_the_backend_in_turns():
    demo_module = _load_demo_module()
    page = demo_module.build_demo(FakeBackend(), queue_size=8)
    limits = {
        fn.api_name: (fn.concurrency_id, fn.concurrency_limit)
        for fn in page.fns.values() if fn.api_name in ('tag', 'classify')
    }
    assert limits == {
        'tag': ('ram', demo_module.ACTIVE_REQUESTS),
        'classify': ('clip', demo_module.ACTIVE_REQUESTS)
    }


def test_large_open_set_keeps_calibrated_thresholds(tiny_backend, monkeypatch):
    """Without a threshold, an open set embedded in chunks selects by the
    checkpoint's calibrated per-category thresholds, as the library's
    one-call ``set_openset`` does."""
    backend, image, _ = tiny_backend
    img = load_image(image)
    names = [f'thing {i}' for i in range(8)]
    tagger = backend._tagger.get()
    monkeypatch.setattr(tagger.model.category_encoder, 'chunk_size', 2)
    monkeypatch.setattr(tagger.model, 'category_thresholds', {
        'thing 1': 0.0,
        'thing 2': 1.0
    })
    chunked = {row.tag for row in backend.tag(img, None, names)}
    tagger.model.set_openset(names)
    alone = tagger(img, categories=tagger.model.vocabulary)
    tagger.model.clear_openset()
    assert chunked == set(alone[0]['tags'])
    assert 'thing 1' in chunked and 'thing 2' not in chunked


# -------------------------------------------------------- memory admission


class BlockingBackend(FakeBackend):
    """Tags only when released; records the budget in use meanwhile."""

    def __init__(self, budget):
        super().__init__()
        self.budget = budget
        self.entered = threading.Semaphore(0)
        self.release = threading.Event()

    def tag(self, image, threshold, categories):
        self.calls.append(('used', self.budget.used))
        self.entered.release()
        assert self.release.wait(10)
        return super().tag(image, threshold, categories)


def test_memory_budget_reserves_waits_and_refuses():
    budget = MemoryBudget(100, wait=0.2)
    with budget.reserve(60):
        assert budget.used == 60
        start = time.monotonic()
        with pytest.raises(DemoInputError,
                           match='busy with other large images'):
            with budget.reserve(41):
                pass
        assert time.monotonic() - start >= 0.2
        with budget.reserve(40):
            assert budget.used == 100
    assert budget.used == 0
    with pytest.raises(
            DemoInputError,
            match=r'^this request would take 0.0001 MB to decode, more '
            r'than the demo allows \(0.0001 MB\)'):
        with budget.reserve(101):
            pass
    with pytest.raises(ValueError, match='budget must be > 0'):
        MemoryBudget(0)


def test_uploads_are_admitted_by_their_decode_cost(tmp_path):
    """Two 100 x 50 RGB uploads (40,000 bytes each to decode) under a
    60,000-byte budget: the second waits for the first to finish."""
    path = str(tmp_path / 'rgb.png')
    Image.new('RGB', (100, 50)).save(path)
    budget = MemoryBudget(60_000, wait=10)
    fake = BlockingBackend(budget)
    threads = [
        threading.Thread(
            target=run_tagging,
            args=(fake, path, 0.3, False, '', budget)) for _ in range(2)
    ]
    threads[0].start()
    assert fake.entered.acquire(timeout=10)
    threads[1].start()
    time.sleep(0.3)
    assert fake.calls == [('used', 40_000)]  # the second one waits
    fake.release.set()
    for t in threads:
        t.join(10)
    assert [c[0] for c in fake.calls] == ['used', 'tag', 'used', 'tag']
    assert fake.calls[2] == ('used', 40_000) and budget.used == 0
    # Over the whole budget: refused before decoding, nothing held.
    with pytest.raises(DemoInputError, match='would take 0.04 MB'):
        run_tagging(fake, path, 0.3, False, '', MemoryBudget(30_000))
    assert len(fake.calls) == 4
    # Example images count too.
    with pytest.raises(DemoInputError, match='would take 0.08 MB'):
        run_classify(FakeBackend(), path, 'cat, dog', '', [('cat', [path])],
                     'simple', 2, MemoryBudget(60_000))


def test_page_takes_a_memory_budget(capsys):
    demo_module = _load_demo_module()
    assert demo_module.parse_args([]).memory_budget_mb == 2000
    with pytest.raises(SystemExit) as e:
        demo_module.parse_args(['--memory-budget-mb', '0'])
    assert e.value.code == 2
    assert '--memory-budget-mb must be > 0, got 0' in capsys.readouterr().err


def test_tagging_tab_with_siglip(tmp_path):
    """A SigLIP config as the tagging model: the open set needs no RAM text
    checkpoint, the rows are the library's tags and sigmoid scores, and no
    categories tag the config's (ImageNet's 1,000) at threshold 0."""
    import torch
    from test_tools.test_siglip_tools import write_tiny_siglip_config
    from testing_utils import siglip

    from mmprompt.apis import ImageTagger
    from mmprompt.converters.siglip import convert_siglip
    from mmprompt.utils.checkpoint import save_checkpoint
    tokenizer_file = siglip.train_tokenizer(str(tmp_path))
    torch.manual_seed(0)
    converted, meta = convert_siglip(
        siglip.randomize_(siglip.TinyReference().state_dict()))
    checkpoint = str(tmp_path / 'tiny_siglip.safetensors')
    save_checkpoint(converted, meta, checkpoint)
    config = write_tiny_siglip_config(
        str(tmp_path / 'cfg.py'), tokenizer_file, templates='simple')
    backend = MMPromptBackend('x', None, config, checkpoint)
    assert backend.open_set_unavailable() is None
    img = Image.fromarray(
        np.random.default_rng(0).integers(0, 255, (40, 48, 3),
                                          dtype=np.uint8))
    rows = backend.tag(img, 0.0, ['cat', 'dog', 'crane'])
    want = ImageTagger(config, pretrained=checkpoint)(
        img, categories=['cat', 'dog', 'crane'], threshold=0.0,
        sort_by='score')[0]
    assert [r.tag for r in rows] == want['tags']
    np.testing.assert_allclose([r.score for r in rows], want['tag_scores'],
                               atol=1e-6)
    assert len(backend.tag(img, 0.0, None)) == 1000
