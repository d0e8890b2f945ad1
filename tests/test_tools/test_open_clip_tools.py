# Copyright (c) mmprompt contributors. All rights reserved.
"""The APIs and tools take open_clip's models: a random-weight model shrunk
from the DFN-5B config (QuickGELU, squash preprocessing) through
ZeroShotClassifier, tools/infer.py and tools/test.py."""
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from testing_utils import REPO_ROOT, load_module
from testing_utils import clip as H

from .test_test_py import run_tool, write_imagenet_folder

INFER = load_module('_mmprompt_tools_infer_open_clip',
                    osp.join(REPO_ROOT, 'tools', 'infer.py'))
DFN_IN1K = 'open_clip/clip_vit-huge-p14_dfn5b_zeroshot-cls_in1k.py'
SIZE = H.TINY['img_size']
SQUASH = (
    'test_dataloader = dict(num_workers=0, batch_size=32, '
    'dataset=dict(pipeline=['
    f"dict(type='CLIPPreprocess', scale={SIZE}, resize_mode='squash'), "
    "dict(type='PackInputs')]))\n")


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    pytest.importorskip('open_clip')
    root = tmp_path_factory.mktemp('open_clip_tools')
    checkpoint = H.write_converted_checkpoint(str(root / 'clip.pth'))
    config = H.write_tiny_config(
        str(root / 'cfg.py'),
        DFN_IN1K,
        model=dict(categories=['cat', 'dog', 'car'], templates='simple'),
        extra=SQUASH)
    rng = np.random.default_rng(0)
    wide = Image.fromarray(rng.integers(0, 256, (64, 200, 3), np.uint8))
    wide.save(root / 'wide.png')
    return dict(
        root=root,
        config=config,
        checkpoint=checkpoint,
        image=str(root / 'wide.png'))


def _pixels(image, **kwargs):
    from mmprompt.datasets import CLIPPreprocess
    out = CLIPPreprocess(scale=SIZE, **kwargs)(dict(img=image))['img']
    return torch.from_numpy(out).permute(2, 0, 1)


def test_zero_shot_classifier_preprocesses_as_the_config_says(tiny):
    from mmprompt.apis import ZeroShotClassifier
    classifier = ZeroShotClassifier(tiny['config'], tiny['checkpoint'])
    assert classifier.model.preprocess_args == dict(
        scale=SIZE, resize_mode='squash', interpolation='bicubic')
    wide = Image.open(tiny['image'])
    got = classifier.pipeline(tiny['image'])['inputs']
    assert torch.equal(got, _pixels(wide, resize_mode='squash'))
    assert not torch.equal(got, _pixels(wide))
    result = classifier(tiny['image'], topk=3)[0]
    assert sorted(result['topk_classes']) == ['car', 'cat', 'dog']


def test_infer_embed_uses_the_models_preprocessing(tiny, tmp_path):
    """tools/infer.py embed: the normalised features of the squashed
    image, not of OpenAI's centre crop."""
    from mmprompt.apis import get_model
    out = tmp_path / 'feats.npy'
    INFER.main([
        'embed', tiny['image'], '--model', tiny['config'], '--checkpoint',
        tiny['checkpoint'], '--no-progress', '--num-workers', '0', '--out',
        str(out)
    ])
    feats = np.load(out)
    model = get_model(tiny['config'], tiny['checkpoint'])
    wide = Image.open(tiny['image'])
    want = {}
    for mode in ('squash', 'shortest'):
        with torch.no_grad():
            data = model.data_preprocessor(
                dict(inputs=[_pixels(wide, resize_mode=mode)]), False)
            want[mode] = F.normalize(
                model.extract_image_feat(data['inputs']), dim=-1).numpy()
    assert feats.shape == (1, H.TINY['embed_dim'])
    assert np.abs(feats - want['squash']).max() <= 1e-5
    assert np.abs(feats - want['shortest']).max() > 1e-3


def test_tools_test_py_runs_an_open_clip_config(tiny, tmp_path):
    """tools/test.py on the DFN ImageNet config (shrunk): planted examples
    (the evaluated images again) score 100 %."""
    from mmprompt.models.clip.prompts import resolve_categories
    names = resolve_categories('imagenet')
    labels = [0, 1, 2, 417, 999, 5]
    root = tmp_path / 'imagenet'
    files = write_imagenet_folder(root, labels)
    examples = {}
    for path, label in zip(files, labels):
        examples.setdefault(names[label], []).append(str(path))
    config = H.write_tiny_config(
        str(tmp_path / 'cfg.py'),
        DFN_IN1K,
        model=dict(
            templates='simple',
            examples=examples,
            cache_alpha=1000.0,
            cache_beta=2000.0),
        extra=SQUASH)
    metrics, result = run_tool(tmp_path, config, tiny['checkpoint'],
                               f'test_dataloader.dataset.data_root={root}')
    assert result['num_samples'] == len(labels)
    assert metrics == {
        'accuracy/top1': 100.0,
        'accuracy/top5': 100.0,
        'mean_per_class_recall': 100.0
    }


def test_onnx_metadata_names_the_preprocessing(tiny):
    """An exported image graph says how to resize its input (squash)."""
    from mmprompt.apis import get_model
    from mmprompt.deployment.onnx import ClassifierExport, ImageTowerExport
    model = get_model(tiny['config'], tiny['checkpoint'])
    for export in (ImageTowerExport, ClassifierExport):
        meta = export(model).metadata()
        assert (meta['image_size'], meta['resize_mode'],
                meta['interpolation']) == (f'[{SIZE}, {SIZE}]', 'squash',
                                           'bicubic')


def test_unconverted_file_names_both_converters(tiny, tmp_path):
    """An open_clip file given to a config as it is: one line saying what
    it is and which converter takes it."""
    from mmprompt.apis import get_model
    from mmprompt.utils.errors import CheckpointError
    raw = str(tmp_path / 'open_clip_pytorch_model.bin')
    torch.save(H.openai_state_dict(), raw)
    with pytest.raises(CheckpointError) as e:
        get_model(tiny['config'], raw)
    assert str(e.value) == (
        f'{raw}: an OpenAI / open_clip CLIP checkpoint, not converted; '
        'convert it with tools/model_converters/openai_clip_to_mmprompt.py '
        "(OpenAI's release) or tools/model_converters/"
        "open_clip_to_mmprompt.py (open_clip's)")
