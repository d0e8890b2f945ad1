# Copyright (c) mmprompt contributors. All rights reserved.
"""ImageTagger and tools/infer.py tag with a tiny SigLIP 2: open sets (a
list, a file, RAM's 4,585 tag names), sigmoid scores against per-tag
thresholds, records as RAM's."""
import json
import os.path as osp

import numpy as np
import pytest
import torch
from PIL import Image
from test_tools.test_siglip_tools import write_tiny_siglip_config
from testing_utils import REPO_ROOT, load_module, siglip

from mmprompt.apis import ImageTagger
from mmprompt.converters.siglip import convert_siglip
from mmprompt.utils.checkpoint import save_checkpoint

NAMES = ['cat', 'dog', 'plastic zebra', 'red rocket', 'crane']


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp('siglip_tagger')
    tokenizer_file = siglip.train_tokenizer(str(root))
    torch.manual_seed(0)
    source = siglip.randomize_(siglip.TinyReference().state_dict())
    converted, meta = convert_siglip(source)
    checkpoint = str(root / 'tiny_siglip.safetensors')
    save_checkpoint(converted, meta, checkpoint)
    config = write_tiny_siglip_config(
        str(root / 'cfg.py'), tokenizer_file, templates='simple')
    rng = np.random.default_rng(0)
    images = []
    for i in range(3):
        path = str(root / f'im{i}.png')
        Image.fromarray(rng.integers(0, 255, (40, 48, 3),
                                     dtype=np.uint8)).save(path)
        images.append(path)
    return dict(root=root, config=config, checkpoint=checkpoint,
                images=images)


@pytest.fixture(scope='module')
def tagger(files):
    return ImageTagger(files['config'], pretrained=files['checkpoint'])


def sigmoid_scores(tagger, images, names):
    """The model's own probabilities, through the classifier's path."""
    from mmprompt.apis import ZeroShotClassifier
    classifier = ZeroShotClassifier(tagger.model)
    out = classifier(images, categories=names, topk=len(names))
    scores = np.zeros((len(images), len(names)))
    for row, result in zip(scores, out):
        for name, score in zip(result['topk_classes'], result['topk_scores']):
            row[names.index(name)] = score
    return scores


def test_open_set_scores_meet_thresholds(tagger, files):
    images = files['images']
    scores = sigmoid_scores(tagger, images, NAMES)
    # Sigmoid scores: not a distribution over the tags.
    assert np.abs(scores.sum(1) - 1).min() > 1e-3
    # Default threshold 0.5 of the model's own probability.
    results = tagger(images, categories=NAMES, batch_size=2)
    assert tagger.vocabulary().thresholds.tolist() == [0.5] * 5
    for result, row in zip(results, scores):
        labels = np.nonzero(row > 0.5)[0].tolist()
        assert result['tag_labels'] == labels
    # A threshold between the scores selects exactly those above it.
    cut = float(np.median(scores))
    results = tagger(images, categories=NAMES, threshold=cut)
    for result, row in zip(results, scores):
        labels = np.nonzero(row > cut)[0].tolist()
        assert result['tag_labels'] == labels
        assert result['tags'] == [NAMES[i] for i in labels]
        assert result['tags_chinese'] is None
        np.testing.assert_allclose(result['tag_scores'], row[labels],
                                   atol=1e-6)
    assert sum(len(r['tag_labels']) for r in results) > 0
    # Kept while the weights stay; built again after an in-place load.
    kept = tagger.vocabulary(NAMES)
    assert tagger.vocabulary(NAMES) is kept
    with torch.no_grad():
        tagger.model.logit_bias.add_(0)
    assert tagger.vocabulary(NAMES) is not kept
    # Per-tag thresholds (calibrated): each tag its own.
    per_tag = {name: float(s) for name, s in zip(NAMES, scores[0])}
    per_tag['dog'] = 0.0
    vocabulary = tagger.model.build_tag_vocabulary(NAMES, 'simple', per_tag)
    result = tagger(images[0], categories=vocabulary)[0]
    assert result['tags'] == ['dog']


def test_calibrated_thresholds_of_the_checkpoint(tagger, files, tmp_path):
    """A checkpoint carrying ``meta['openset_thresholds']`` (as
    tools/calibrate_thresholds.py writes them) thresholds those tags;
    the others keep 0.5; a call's threshold overrides them all."""
    from mmprompt.apis.tag_calibration import tag_vocabulary_of
    from mmprompt.utils.checkpoint import read_checkpoint
    state_dict, meta = read_checkpoint(files['checkpoint'])
    path = str(tmp_path / 'calibrated.safetensors')
    save_checkpoint(state_dict,
                    dict(meta, openset_thresholds={'dog': 0.0,
                                                   'crane': 0.25}), path)
    calibrated = ImageTagger(files['config'], pretrained=path)
    result = calibrated(files['images'][0], categories=NAMES)[0]
    assert calibrated.vocabulary().thresholds.tolist() == \
        [0.5, 0.0, 0.5, 0.5, 0.25]
    assert 'dog' in result['tags']
    assert 'dog' not in tagger(files['images'][0],
                               categories=NAMES)[0]['tags']
    assert calibrated.vocabulary(NAMES, threshold=0.7).thresholds.tolist() \
        == pytest.approx([0.7] * 5)
    # What tools/calibrate_thresholds.py starts from: the config's
    # categories as tags, with the checkpoint's thresholds.
    model = calibrated.model
    model.categories = ('cat', 'dog')
    vocabulary = tag_vocabulary_of(model, path)
    assert vocabulary.names == ('cat', 'dog')
    assert vocabulary.thresholds.tolist() == [0.5, 0.0]


def test_ram_tag_names_from_a_file(tagger, files, ram_data_dir):
    """RAM's 4,585 tag names (read from the shared data, never copied into
    the project) as a SigLIP open set."""
    path = osp.join(ram_data_dir, 'ram_tag_list.txt')
    with open(path, encoding='utf-8') as f:
        names = [line.strip() for line in f if line.strip()]
    assert len(names) == 4585
    preds = tagger(files['images'][:1], categories=path,
                   return_datasamples=True)
    score = preds[0].pred_score
    assert score.shape == (4585, )
    assert tagger.vocabulary().names == tuple(names)
    assert preds[0].pred_label.tolist() == \
        (score > 0.5).nonzero()[:, 0].tolist()
    # Kept by what built it: asking again builds nothing.
    assert tagger.vocabulary(path) is tagger.vocabulary()


def test_errors(tagger, files):
    from mmprompt.utils.errors import InvalidInputError
    assert 'siglip2_vit-base-p16' in ImageTagger.list_models()
    assert 'clip_vit-base-p16' not in ImageTagger.list_models()
    # Refused before any download: CLIP's softmax is no per-tag probability.
    with pytest.raises(InvalidInputError, match='clip_vit-base-p16 .*'
                       'softmax over its categories'):
        ImageTagger('clip_vit-base-p16')
    with pytest.raises(InvalidInputError, match='descriptions per category '
                       'need RAM\\+\\+'):
        tagger(files['images'][0], categories={'cat': ['a small cat']})


def test_infer_tag_with_siglip(files, tmp_path):
    tool = load_module('_mmprompt_tools_infer_siglip',
                       osp.join(REPO_ROOT, 'tools', 'infer.py'))
    names = tmp_path / 'names.txt'
    names.write_text('\n'.join(NAMES) + '\n')
    out = tmp_path / 'tags.jsonl'
    tool.main([
        'tag', *files['images'], '--model', files['config'], '--checkpoint',
        files['checkpoint'], '--categories',
        str(names), '--threshold', '0.05', '--out',
        str(out), '--no-progress', '--batch-size', '2'
    ])
    with open(out, encoding='utf-8') as f:
        records = [json.loads(line) for line in f]
    assert [r['image'] for r in records] == files['images']
    scores = sigmoid_scores(
        ImageTagger(files['config'], pretrained=files['checkpoint']),
        files['images'], NAMES)
    for record, row in zip(records, scores):
        labels = np.nonzero(row > 0.05)[0].tolist()
        assert record['labels'] == labels
        assert record['tags'] == [NAMES[i] for i in labels]
        np.testing.assert_allclose(record['scores'], row[labels], atol=2e-6)
