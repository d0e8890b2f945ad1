# Copyright (c) mmprompt contributors. All rights reserved.
"""ZeroShotClassifier on a (tiny) PE-Core: the images reach the model as
open_clip's PE-Core ``preprocess`` makes them, and the scores are the
reference model's."""
import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image
from test_models.test_pe_core import TinyReference, randomize_, tiny_cfg

from mmprompt.apis import ZeroShotClassifier
from mmprompt.converters import convert_pe_core
from mmprompt.models.clip import CLIPTokenizer

CATEGORIES = ['cat', 'dog', 'red rocket']


def test_classifier_uses_pe_preprocessing_and_weights(tmp_path):
    open_clip = pytest.importorskip('open_clip')
    pytest.importorskip('timm')
    ref = randomize_(TinyReference(), seed=0, std=0.1).eval()
    converted, meta = convert_pe_core(ref.state_dict())
    ckpt = str(tmp_path / 'tiny_pe.pth')
    torch.save(dict(state_dict=converted, meta=meta), ckpt)
    cfg = Config(dict(model=tiny_cfg(), default_scope='mmprompt'))
    classifier = ZeroShotClassifier(cfg, pretrained=ckpt)
    model = classifier.model
    assert model.preprocess_args == dict(
        scale=32, resize_mode='squash', interpolation='bilinear')

    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (40, 90, 3), dtype=np.uint8))
    pcfg = open_clip.get_pretrained_cfg('PE-Core-B-16', 'meta')
    theirs = open_clip.image_transform(
        32,
        is_train=False,
        mean=pcfg['mean'],
        std=pcfg['std'],
        interpolation=pcfg['interpolation'],
        resize_mode=pcfg['resize_mode'])(
            image)
    packed = classifier.pipeline(image)
    ours = model.data_preprocessor(
        dict(inputs=[packed['inputs']],
             data_samples=[packed['data_samples']]))['inputs'][0]
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)

    result = classifier(
        image, categories=CATEGORIES, templates='{}', topk=3)[0]
    texts = CLIPTokenizer()(CATEGORIES, context_length=32)
    with torch.no_grad():
        feats = torch.nn.functional.normalize(
            ref.encode_image(theirs[None]), dim=-1)
        protos = torch.nn.functional.normalize(ref.encode_text(texts), dim=-1)
        probs = (ref.logit_scale.exp() * feats @ protos.t()).softmax(-1)[0]
    want = [CATEGORIES[i] for i in probs.argsort(descending=True)]
    assert result['topk_classes'] == want
    np.testing.assert_allclose(
        result['topk_scores'],
        probs.sort(descending=True).values.numpy(),
        atol=1e-5)
