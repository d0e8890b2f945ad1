# Copyright (c) mmprompt contributors. All rights reserved.
"""ImageTagger with the tiny RAM / RAM++ reference checkpoints: the tags
and scores of the reference, every input type, batching, thresholds,
open-set categories and errors."""
import json
import os.path as osp

import numpy as np
import pytest
import torch
from PIL import Image

from mmprompt.apis import ImageTagger, list_models

from testing_utils import ram as H  # noqa: E402
from testing_utils import same_results, side_by_side  # noqa: E402

NORMAL = 'ram/ram_swin-large-p4-w12_384px_normal.py'
OPENSET = 'ram/ram_swin-large-p4-w12_384px_openset.py'
PLUS_OPENSET = 'ram/ram-plus_swin-large-p4-w12_384px_openset.py'


@pytest.fixture(scope='module')
def files(ram_vectors_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp('tagger')
    return dict(
        root=root,
        images=[
            osp.join(ram_vectors_dir, 'images', name) for name in H.IMAGES
        ],
        ram=H.convert_tiny(ram_vectors_dir, str(root)),
        ram_plus=H.convert_tiny(ram_vectors_dir, str(root), 'ram_plus'),
        text=H.save_text_encoder(str(root / 'text.pth')),
        meta=H.expected(ram_vectors_dir),
        plus_meta=H.expected(ram_vectors_dir, 'ram_plus'))


@pytest.fixture(scope='module')
def tagger(files):
    config = H.write_tiny_config(str(files['root'] / 'normal.py'), NORMAL, 20)
    return ImageTagger(config, pretrained=files['ram'])


def split_tags(joined: str) -> list:
    """recognize-anything's ' | '-joined tags as a list, each stripped."""
    return [t.strip() for t in joined.split(' | ')] if joined else []


def check_reference(results, meta, atol=1e-5):
    for i, result in enumerate(results):
        labels = meta['targets'][i].nonzero()[:, 0].tolist()
        assert result['tag_labels'] == labels
        assert ' | '.join(
            result['tags']) == meta['expected']['tags_en'][i]
        # RAM's Chinese names, without the spaces its list ends them in.
        assert result['tags_chinese'] == split_tags(
            meta['expected']['tags_zh'][i])
        np.testing.assert_allclose(
            result['tag_scores'], meta['probs'][i, labels], atol=atol)
        # As MMPreTrain's inferencers: the score of every tag, in order.
        assert isinstance(result['pred_scores'], np.ndarray)
        np.testing.assert_allclose(
            result['pred_scores'], meta['probs'][i], atol=atol)


def test_paths_pil_and_arrays_match_reference(tagger, files):
    meta = files['meta']
    check_reference(tagger(files['images'], batch_size=2), meta)
    pil = [Image.open(p) for p in files['images']]
    check_reference(tagger(pil), meta)
    # BGR arrays (H, W, 3), as mmcv.imread gives, and a grey (H, W) one.
    arrays = [np.asarray(pil[0].convert('RGB'))[..., ::-1], np.asarray(pil[1])]
    assert arrays[1].ndim == 2
    check_reference(tagger(arrays, batch_size=2), meta)
    one = tagger(files['images'][1])
    assert len(one) == 1
    check_reference([tagger(files['images'][0])[0]], meta)


def test_sorting_thresholds_and_datasamples(tagger, files):
    path = files['images'][0]
    by_index = tagger(path)[0]
    by_score = tagger(path, sort_by='score')[0]
    assert sorted(by_score['tag_scores'], reverse=True) == \
        by_score['tag_scores']
    assert sorted(by_score['tag_labels']) == by_index['tag_labels']
    assert set(by_score['tags']) == set(by_index['tags'])
    # One threshold for all: 'body' (threshold 1.0) now fires too.
    low = tagger(path, threshold=0.5)[0]
    probs = files['meta']['probs'][0]
    assert low['tag_labels'] == (probs > 0.5).nonzero()[:, 0].tolist()
    assert 'body' in low['tags']
    assert tagger(path, threshold=1.0)[0]['tags'] == []
    samples = tagger(path, return_datasamples=True)
    torch.testing.assert_close(samples[0].pred_score, probs, atol=1e-5, rtol=0)


def test_model_name_with_overrides(files):
    assert 'ram_swin-large-p4-w12_384px_normal' in ImageTagger.list_models()
    assert ImageTagger.list_models() == sorted(
        list_models('ram') + list_models('siglip'))
    tagger = ImageTagger(
        'ram_swin-large-p4-w12_384px_normal',
        pretrained=files['ram'],
        num_classes=20,
        **H.TINY_MODEL)
    check_reference(tagger(files['images'], batch_size=2), files['meta'])
    with pytest.raises(ValueError, match='neither a model of the zoo nor'):
        ImageTagger('ram_swin-tiny')


def test_bad_inputs(tagger, tmp_path):
    broken = tmp_path / 'broken.jpg'
    broken.write_bytes(b'not a jpeg')
    with pytest.raises(ValueError, match='broken.jpg'):
        tagger([str(broken)])
    with pytest.raises(ValueError, match='missing.png'):
        tagger(str(tmp_path / 'missing.png'))
    with pytest.raises(TypeError, match='int'):
        tagger(3)
    with pytest.raises(ValueError, match='uint8'):
        tagger(np.zeros((8, 8, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r'\[0, 1\]'):
        tagger(np.zeros((8, 8, 3), dtype=np.uint8), threshold=1.5)
    with pytest.raises(ValueError, match='sort_by'):
        tagger(np.zeros((8, 8, 3), dtype=np.uint8), sort_by='name')
    with pytest.raises(TypeError, match='open-set model'):
        tagger(np.zeros((8, 8, 3), dtype=np.uint8), categories=['cat'])


def test_rgb_array_order(files):
    config = H.write_tiny_config(str(files['root'] / 'rgb.py'), NORMAL, 20)
    tagger = ImageTagger(config, pretrained=files['ram'], array_order='rgb')
    rgb = np.asarray(Image.open(files['images'][0]).convert('RGB'))
    check_reference([tagger(rgb)[0]], files['meta'])


def test_bf16_precision_keeps_thresholds(files):
    config = H.write_tiny_config(str(files['root'] / 'bf16.py'), NORMAL, 20)
    tagger = ImageTagger(config, pretrained=files['ram'], precision='bf16')
    model = tagger.model
    assert model.visual_encoder.patch_embed.projection.weight.dtype == (
        torch.bfloat16)
    assert model.class_threshold.dtype == torch.float32
    result = tagger(files['images'][0])[0]
    scores = [float(s) for s in result['tag_scores']]
    assert scores and all(0 <= s <= 1 for s in scores)


def test_compile_option(files):
    """compile=True / a mode compiles the towers (lazily: the graphs are
    built on the first call, which test_compiled_ram_* runs)."""
    config = H.write_tiny_config(str(files['root'] / 'cc.py'), NORMAL, 20)
    tagger = ImageTagger(
        config, pretrained=files['ram'], compile='max-autotune-no-cudagraphs')
    model = tagger.model
    assert [
        getattr(model.get_submodule(n), '_mmprompt_compiled', False)
        for n in model.compile_modules
    ] == [True] * (1 + len(model.tagging_head.layers))
    assert not getattr(model.image_proj, '_mmprompt_compiled', False)
    with pytest.raises(ValueError, match='mode must be one of'):
        ImageTagger(config, pretrained=files['ram'], compile='fastest')


def test_openset_categories(files):
    config = H.write_tiny_config(
        str(files['root'] / 'openset.py'),
        OPENSET,
        20,
        text_encoder=H.tiny_text_encoder(files['text']))
    tagger = ImageTagger(config, pretrained=files['ram'])
    categories = ['Aerial photography', 'apple', 'umbrella_stand', 'Ale']
    results = tagger(files['images'], categories=categories, batch_size=2)
    model = tagger.model
    vocabulary = tagger.vocabulary()
    assert tagger.is_openset and vocabulary.names == tuple(categories)
    assert vocabulary.names_chinese is None
    # The vocabulary is a value: the model still scores RAM's own tags.
    assert not model.is_openset and model.vocabulary.num_tags == 20
    # RAM's own input tensors of the two images.
    x = torch.load(
        osp.join(osp.dirname(files['images'][0]), '..', 'inputs.pth'),
        weights_only=True)['images']
    with torch.no_grad():
        scores = model.compute_logits(x, vocabulary).sigmoid()
    for result, row in zip(results, scores):
        labels = (row > 0.5).nonzero()[:, 0].tolist()
        assert result['tag_labels'] == labels
        assert result['tags'] == [categories[i] for i in labels]
        assert result['tags_chinese'] is None
        np.testing.assert_allclose(
            result['tag_scores'], row[labels], atol=1e-6)
    # The categories stay for the next call; clearing gives RAM's tags.
    assert tagger(files['images'][0])[0]['tag_labels'] == \
        results[0]['tag_labels']
    tagger.clear_categories()
    check_reference([tagger(files['images'][0])[0]], files['meta'])
    with pytest.raises(ValueError, match='RAMPlusOpenset'):
        tagger(files['images'][0], categories={'cat': ['a cat.']})


def test_ram_plus_descriptions(files, ram_data_dir):
    config = H.write_tiny_config(
        str(files['root'] / 'plus_openset.py'),
        PLUS_OPENSET,
        8,
        text_encoder=H.tiny_text_encoder(files['text']))
    tagger = ImageTagger(config, pretrained=files['ram_plus'])
    with open(
            osp.join(ram_data_dir, 'datasets',
                     'openimages_rare_200_llm_tag_descriptions.json')) as f:
        items = json.load(f)[:3]
    subset = files['root'] / 'three.json'
    subset.write_text(json.dumps(items))
    as_dict = {k: v[:51] for item in items for k, v in item.items()}
    from_dict = tagger(files['images'], categories=as_dict, batch_size=2)
    names = tuple(as_dict)
    assert tagger.vocabulary().names == names
    assert tagger.vocabulary().label_embed.shape == (3 * 51, 512)
    from_file = tagger(files['images'], categories=str(subset), batch_size=2)
    assert same_results(from_file, from_dict)
    # The same categories as a list of one-key dicts.
    tagger.set_categories(items)
    direct = tagger(files['images'], batch_size=2)
    assert same_results(direct, from_dict)
    assert all(set(r['tags']) <= set(names) for r in direct)


def test_ram_plus_json_object_file_is_read_as_descriptions(
        files, ram_data_dir, tmp_path):
    """A categories file holding one JSON object ``{name: [descriptions]}``
    (with a byte-order mark) tags as that dict does; RAM refuses it."""
    config = H.write_tiny_config(
        str(files['root'] / 'plus_openset_obj.py'),
        PLUS_OPENSET,
        8,
        text_encoder=H.tiny_text_encoder(files['text']))
    tagger = ImageTagger(config, pretrained=files['ram_plus'])
    with open(
            osp.join(ram_data_dir, 'datasets',
                     'openimages_rare_200_llm_tag_descriptions.json')) as f:
        items = json.load(f)[:2]
    as_dict = {k: v[:3] for item in items for k, v in item.items()}
    path = tmp_path / 'object.json'
    path.write_bytes(b'\xef\xbb\xbf' + json.dumps(as_dict).encode())
    from_file = tagger(files['images'][:2], categories=str(path))
    assert tagger.vocabulary().names == tuple(as_dict)
    assert tagger.vocabulary().label_embed.shape == (2 * 3, 512)
    assert same_results(
        from_file, tagger(files['images'][:2], categories=as_dict))
    ram = ImageTagger(
        H.write_tiny_config(
            str(files['root'] / 'openset_obj.py'),
            OPENSET,
            20,
            text_encoder=H.tiny_text_encoder(files['text'])),
        pretrained=files['ram'])
    with pytest.raises(ValueError, match='descriptions per category need '
                       'RAM\\+\\+'):
        ram.set_categories(str(path))


def test_threads_with_different_open_sets_get_their_own_answers(files):
    """One tagger, two threads tagging 4 and 5 open-set categories, 20
    rounds each at once: every answer equals the one-at-a-time answer.
    With the open set stored on the model (``set_openset``) the threads'
    images were scored against each other's categories."""
    config = H.write_tiny_config(
        str(files['root'] / 'openset_threads.py'),
        OPENSET,
        20,
        text_encoder=H.tiny_text_encoder(files['text']))
    tagger = ImageTagger(config, pretrained=files['ram'])
    sets = [['Aerial photography', 'apple', 'umbrella_stand', 'Ale'],
            ['zebra', 'kayak', 'violin', 'tulip', 'moth']]
    images = files['images'][:2]
    alone = [
        tagger(images, categories=names, threshold=0.0, batch_size=2)
        for names in sets
    ]
    assert [len(r['tags']) for r in alone[1]] == [5, 5]
    got = side_by_side(
        lambda names: tagger(
            images, categories=names, threshold=0.0, batch_size=2), sets)
    for i in (0, 1):
        assert len(got[i]) == 20
        for out in got[i]:
            for result, want in zip(out, alone[i]):
                assert result['tags'] == want['tags']
                np.testing.assert_allclose(
                    result['tag_scores'], want['tag_scores'], atol=1e-6)
    assert not tagger.model.is_openset


def test_long_open_sets_are_embedded_in_cached_chunks(files):
    """The category encoder embeds a long set in chunks (here of 2 names),
    each cached: the same embeddings as in one piece, and a set sharing
    chunks with an earlier one embeds only its new names."""
    config = H.write_tiny_config(
        str(files['root'] / 'openset_chunks.py'),
        OPENSET,
        20,
        text_encoder=H.tiny_text_encoder(files['text']))
    tagger = ImageTagger(config, pretrained=files['ram'])
    encoder = tagger.model.category_encoder
    names = ['cat', 'dog', 'apple', 'kayak', 'violin']
    whole = tagger.vocabulary(names).label_embed
    encoder._cache.clear()
    encoder.chunk_size = 2
    encoded = []
    encode_text = encoder.encode_text

    def counted(texts):
        encoded.append(len(texts) // len(encoder.templates))
        return encode_text(texts)

    encoder.encode_text = counted
    chunked = tagger.vocabulary(names).label_embed
    assert encoded == [2, 2, 1]
    torch.testing.assert_close(chunked, whole, atol=1e-6, rtol=0)
    encoded.clear()
    tagger.vocabulary(names[:4] + ['tulip', 'moth'])
    assert encoded == [2]  # ['tulip', 'moth']; the first two chunks kept
    tagger.vocabulary(names)
    assert encoded == [2]  # the whole set kept too


def test_bulk_inference_reads_images_as_the_tagger(tagger, files):
    """tools/infer.py's TagTask applies the tagger's test pipeline (RAM's
    transform, then the model's data preprocessor): the same pixels and
    records as a call, also after pickling (DataLoader workers)."""
    import pickle

    from mmprompt.apis.bulk import TagTask
    from mmprompt.utils.image_io import decode_image
    assert tagger.test_pipeline == [
        dict(type='RAMPreprocess', scale=384, array_order='bgr'),
        dict(type='PackInputs')
    ]
    task = TagTask(tagger)
    assert task.transform.steps == tagger.test_pipeline
    images = [decode_image(p, mode=None) for p in files['images']]
    data = [task.transform(image) for image in images]
    worker = pickle.loads(pickle.dumps(task.transform))
    for path, image, one in zip(files['images'], images, data):
        pixels = tagger.pipeline(path)['inputs']
        assert torch.equal(one['inputs'], pixels)
        assert torch.equal(worker(image)['inputs'], pixels)
    records = task(data)
    for record, result in zip(records, tagger(files['images'])):
        assert record['labels'] == result['tag_labels']
        assert record['scores'] == [round(s, 6) for s in result['tag_scores']]
