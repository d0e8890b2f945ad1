# Copyright (c) mmprompt contributors. All rights reserved.
"""tools/test.py on a tiny SigLIP 2: converted open_clip-layout weights,
the model's tokenizer file, sigmoid scores, planted examples score 100 on
an ImageNet folder and on CIFAR-100 (the archive served from 127.0.0.1);
thresholds calibrated on a tagging set drive tools/infer.py tag."""
import json

import numpy as np
import pytest
import torch
from PIL import Image
from test_tools.test_test_py import (cifar, run_tool,  # noqa: F401
                                     served_cifar, write_imagenet_folder)
from testing_utils import REPO_ROOT, load_module, siglip

from mmprompt.converters.siglip import convert_siglip
from mmprompt.utils.checkpoint import read_checkpoint, save_checkpoint

IN1K_CFG = 'siglip/siglip2_vit-base-p16_zeroshot-cls_in1k.py'
CIFAR_CFG = 'siglip/siglip2_vit-base-p16_zeroshot-cls_cifar100.py'


def write_tiny_siglip_config(path: str, tokenizer_file: str,
                             base: str = IN1K_CFG,
                             array_order: str = 'bgr',
                             **model) -> str:
    """A SigLIP 2 leaf config (``base``) shrunk to testing_utils.siglip.TINY;
    ``array_order`` of the images its dataset gives."""
    tiny = siglip.tiny_cfg(tokenizer_file)
    overrides = dict(
        vision_backbone=dict(
            arch=dict(_delete_=True, **tiny.vision_backbone.arch),
            img_size=tiny.vision_backbone.img_size,
            patch_size=tiny.vision_backbone.patch_size),
        text_backbone={
            k: tiny.text_backbone[k]
            for k in ('vocab_size', 'embed_dims', 'num_layers', 'num_heads',
                      'feedforward_channels')
        },
        tokenizer=dict(tiny.tokenizer),
        proj_dims=tiny.proj_dims,
        **model)
    size = tiny.vision_backbone.img_size
    with open(path, 'w') as f:
        f.write(f"_base_ = ['{siglip.REPO_ROOT}/configs/{base}']\n"
                f'model = dict(**{overrides!r})\n'
                'test_dataloader = dict(num_workers=0, batch_size=32, '
                "dataset=dict(pipeline=[dict(type='CLIPPreprocess', "
                f"scale={size}, resize_mode='squash', "
                f"array_order={array_order!r}), "
                "dict(type='PackInputs')]))\n")
    return path


def write_tiny_checkpoint(folder) -> str:
    torch.manual_seed(0)
    source = siglip.randomize_(siglip.TinyReference().state_dict())
    converted, meta = convert_siglip(source)
    checkpoint = str(folder / 'tiny_siglip.safetensors')
    save_checkpoint(converted, meta, checkpoint)
    return checkpoint


def test_tools_test_runs_siglip(tmp_path):
    tokenizer_file = siglip.train_tokenizer(str(tmp_path))
    checkpoint = write_tiny_checkpoint(tmp_path)
    from mmprompt.models.clip.prompts import resolve_categories
    names = resolve_categories('imagenet')
    labels = [0, 1, 417, 999, 0, 1, 417, 999]
    root = tmp_path / 'imagenet'
    files = write_imagenet_folder(root, labels)
    examples = {}
    for path, label in zip(files, labels):
        examples.setdefault(names[label], []).append(str(path))
    config = write_tiny_siglip_config(
        str(tmp_path / 'cfg.py'), tokenizer_file, templates='simple',
        examples=examples, cache_alpha=1000.0, cache_beta=2000.0)
    metrics, result = run_tool(tmp_path, config, checkpoint,
                               f'test_dataloader.dataset.data_root={root}')
    assert result['num_samples'] == len(labels)
    assert metrics == {
        'accuracy/top1': 100.0,
        'accuracy/top5': 100.0,
        'mean_per_class_recall': 100.0
    }


def test_tools_test_runs_siglip_on_cifar100(
        tmp_path, cifar, served_cifar):  # noqa: F811
    """The CIFAR-100 leaf config (its 100 names, OpenAI's 18 CIFAR
    templates, RGB arrays) downloads the served archive and scores 100 when
    the evaluated images are the examples, filed under their names."""
    from mmprompt.models.clip.prompts import resolve_categories
    images, labels, _, _ = cifar
    names = resolve_categories('cifar100')
    examples = {}
    for i, (img, label) in enumerate(zip(images, labels)):
        path = tmp_path / f'example_{i}.png'
        Image.fromarray(img).save(path)
        examples.setdefault(names[label], []).append(str(path))
    tokenizer_file = siglip.train_tokenizer(str(tmp_path))
    config = write_tiny_siglip_config(
        str(tmp_path / 'cfg.py'), tokenizer_file, base=CIFAR_CFG,
        array_order='rgb', examples=examples, cache_alpha=1000.0,
        cache_beta=2000.0)
    data_root = tmp_path / 'data'
    metrics, result = run_tool(
        tmp_path, config, write_tiny_checkpoint(tmp_path),
        f'test_dataloader.dataset.data_root={data_root}')
    assert served_cifar.requests == ['/cifar-100-python.tar.gz']
    assert result['num_samples'] == len(labels) == 200
    assert metrics == {
        'accuracy/top1': 100.0,
        'accuracy/top5': 100.0,
        'mean_per_class_recall': 100.0
    }


def test_calibrated_siglip_thresholds_drive_infer_tag(tmp_path):
    """tools/calibrate_thresholds.py on a SigLIP open set (the config's
    categories, a labelled multi-label set) writes per-tag thresholds into
    a copy of the checkpoint; tools/infer.py tag with that checkpoint
    selects exactly what they say (here the truth: the two best images of
    each tag), where the model's own 0.5 selects something else."""
    from mmprompt.apis import ImageTagger
    from mmprompt.evaluation.calibration import calibrate_thresholds
    names = ['cat', 'dog', 'plastic zebra', 'red rocket', 'crane']
    (tmp_path / 'imgs').mkdir()
    rng = np.random.default_rng(0)
    images = []
    for i in range(4):
        path = tmp_path / 'imgs' / f'im{i}.png'
        Image.fromarray(rng.integers(0, 255, (40, 48, 3),
                                     dtype=np.uint8)).save(path)
        images.append(str(path))
    tokenizer_file = siglip.train_tokenizer(str(tmp_path))
    checkpoint = write_tiny_checkpoint(tmp_path)
    config = write_tiny_siglip_config(
        str(tmp_path / 'cfg.py'), tokenizer_file, templates='simple',
        categories=names)
    tagger = ImageTagger(config, pretrained=checkpoint)
    # Threshold 0: every tag, its sigmoid score, in label order.
    scores = torch.tensor([
        r['pred_scores']
        for r in tagger(images, categories=names, threshold=0.0)
    ])
    truth = scores >= scores.sort(dim=0).values[2]
    (tmp_path / 'classes.txt').write_text('\n'.join(names) + '\n')
    (tmp_path / 'ann.txt').write_text(''.join(
        ','.join([f'im{i}', *[n for n, t in zip(names, row) if t]]) + '\n'
        for i, row in enumerate(truth.tolist())))
    dataset = dict(_delete_=True, type='TaggingDataset',
                   data_root=str(tmp_path), ann_file='ann.txt',
                   data_prefix='imgs', img_suffix='.png',
                   classes='classes.txt',
                   pipeline=[dict(type='CLIPPreprocess', scale=32,
                                  resize_mode='squash'),
                             dict(type='PackInputs')])
    with open(config, 'a') as f:
        f.write(f'test_dataloader = dict(num_workers=0, batch_size=4, '
                f'dataset={dataset!r})\n')
    calib = load_module('_mmprompt_calibrate_siglip',
                        f'{REPO_ROOT}/tools/calibrate_thresholds.py')
    out = str(tmp_path / 'calibrated.safetensors')
    report = calib.main([config, checkpoint, out])
    expected = calibrate_thresholds(scores, truth, torch.full((5, ), 0.5))
    thresholds = read_checkpoint(out)[1]['openset_thresholds']
    assert list(thresholds) == names and report['open_set']
    assert torch.tensor(list(thresholds.values())).tolist() == \
        pytest.approx(expected['thresholds'].tolist(), abs=1e-6)
    assert expected['calibrated'].all()

    infer = load_module('_mmprompt_infer_siglip_calibrated',
                        f'{REPO_ROOT}/tools/infer.py')
    (tmp_path / 'names.txt').write_text('\n'.join(names) + '\n')
    records = {}
    for name, ckpt in (('default', checkpoint), ('calibrated', out)):
        jsonl = tmp_path / f'{name}.jsonl'
        infer.main(['tag', *images, '--model', config, '--checkpoint', ckpt,
                    '--categories', str(tmp_path / 'names.txt'), '--out',
                    str(jsonl), '--no-progress', '--num-workers', '0'])
        with open(jsonl, encoding='utf-8') as f:
            records[name] = [json.loads(line)['labels'] for line in f]
    assert records['calibrated'] == [
        row.nonzero()[:, 0].tolist() for row in truth
    ]
    assert records['default'] == [
        (row > 0.5).nonzero()[:, 0].tolist() for row in scores
    ] != records['calibrated']
