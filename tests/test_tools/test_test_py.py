# Copyright (c) mmprompt contributors. All rights reserved.
"""tools/test.py end to end: synthetic CIFAR-100 served over HTTP, a planted
100% case and an ImageNet-layout folder, all with random-weight CLIPs."""
import hashlib
import io
import json
import os
import os.path as osp
import pickle
import tarfile

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from testing_utils import REPO_ROOT, load_module

from testing_utils import clip as H  # noqa: E402
TOOL = load_module('_mmprompt_tools_test',
                   osp.join(REPO_ROOT, 'tools', 'test.py'))

NUM_TEST = 200
CIFAR_CFG = 'clip/clip_vit-base-p16_zeroshot-cls_cifar100.py'
IN1K_CFG = 'clip/clip_vit-base-p16_zeroshot-cls_in1k.py'


def synthetic_images(labels, size, seed):
    """Images whose colours and stripes depend on the label, plus noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    images = []
    for label in labels:
        hue = np.array([label % 5, (label // 5) % 5, label // 25]) / 4.0
        freq = 1 + label % 7
        base = 255 * (0.25 + 0.5 * hue)[None, None, :]
        stripes = 60 * np.sin(2 * np.pi * freq * (x + y * (label % 3)))
        img = base + stripes[..., None] + rng.normal(0, 25, (size, size, 3))
        images.append(np.clip(img, 0, 255).astype(np.uint8))
    return np.stack(images)


def _pickled(obj):
    return pickle.dumps(obj, protocol=2)


def md5(data):
    return hashlib.md5(data).hexdigest()


def cifar100_archive(test_images, test_labels, class_names):
    """An archive in the official CIFAR-100 python layout."""
    train_images = synthetic_images(range(10), 32, seed=99)

    def batch(images, labels):
        data = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
        return _pickled({
            'data': data,
            'fine_labels': [int(v) for v in labels],
            'coarse_labels': [int(v) // 5 for v in labels],
            'filenames': [f'{i}.png' for i in range(len(images))],
        })

    members = {
        'train':
        batch(train_images, range(10)),
        'test':
        batch(test_images, test_labels),
        'meta':
        _pickled({
            'fine_label_names': list(class_names),
            'coarse_label_names': [f'super{i}' for i in range(20)],
        }),
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode='w:gz') as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(f'cifar-100-python/{name}')
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue(), {k: md5(v) for k, v in members.items()}


@pytest.fixture(scope='module')
def cifar():
    from mmpretrain.datasets.categories import CIFAR100_CATEGORIES
    labels = np.arange(NUM_TEST) % 100
    images = synthetic_images(labels, 32, seed=0)
    archive, md5s = cifar100_archive(images, labels, CIFAR100_CATEGORIES)
    return images, labels, archive, md5s


@pytest.fixture
def served_cifar(cifar, monkeypatch):
    """Serve the archive and point MMPreTrain's CIFAR100 (URL and md5s)
    at it; its download and integrity checks still run."""
    from mmpretrain.datasets import CIFAR100
    images, labels, archive, md5s = cifar
    with H.FileServer({'/cifar-100-python.tar.gz': archive}) as server:
        monkeypatch.setattr(CIFAR100, 'url',
                            server.url('/cifar-100-python.tar.gz'))
        monkeypatch.setattr(CIFAR100, 'tgz_md5', md5(archive))
        monkeypatch.setattr(CIFAR100, 'train_list', [['train', md5s['train']]])
        monkeypatch.setattr(CIFAR100, 'test_list', [['test', md5s['test']]])
        monkeypatch.setattr(CIFAR100, 'meta',
                            dict(CIFAR100.meta, md5=md5s['meta']))
        yield server


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    pytest.importorskip('open_clip')
    path = tmp_path_factory.mktemp('ckpt') / 'tiny_clip.pth'
    return H.write_converted_checkpoint(str(path), seed=0)


def reference_logits(images, categories, templates, seed=0):
    """open_clip's zero-shot logits for the same weights and images."""
    import open_clip
    from open_clip.zero_shot_classifier import build_zero_shot_classifier
    model = open_clip.model.CLIP(
        embed_dim=H.TINY['embed_dim'],
        vision_cfg=dict(
            layers=2, width=64, head_width=64, patch_size=32, image_size=64),
        text_cfg=dict(
            context_length=77, vocab_size=49408, width=64, heads=1, layers=2),
        quick_gelu=True)
    model.load_state_dict(H.openai_state_dict(seed))
    model.eval()
    preprocess = open_clip.image_transform(64, is_train=False)
    tokenizer = open_clip.get_tokenizer('ViT-B-32')
    with torch.no_grad():
        weights = build_zero_shot_classifier(
            model,
            tokenizer,
            categories,
            templates,
            num_classes_per_batch=None)
        pixels = torch.stack([preprocess(img) for img in images])
        feats = F.normalize(model.encode_image(pixels), dim=-1)
    return model.logit_scale.exp() * feats @ weights


def run_tool(tmp_path,
             config,
             checkpoint,
             *options,
             dump=None,
             precision=None,
             compile=None):
    out = tmp_path / 'metrics.json'
    argv = [
        config, checkpoint, '--work-dir',
        str(tmp_path / 'work'), '--out',
        str(out), '--force'
    ]
    if dump:
        argv += ['--dump', str(dump)]
    if precision:
        argv += ['--precision', precision]
    if compile:
        argv += ['--compile']
    if options:
        argv += ['--cfg-options', *options]
    metrics = TOOL.main(argv)
    with open(out) as f:
        return metrics, json.load(f)


def test_cifar100_download_and_evaluate(tmp_path, cifar, served_cifar,
                                        checkpoint):
    from mmprompt.models.clip.prompts import (OPENAI_CIFAR_TEMPLATES,
                                              resolve_categories)
    images, labels, _, _ = cifar
    config = H.write_tiny_config(str(tmp_path / 'cfg.py'), CIFAR_CFG)
    data_root = tmp_path / 'data' / 'cifar100'
    metrics, result = run_tool(
        tmp_path,
        config,
        checkpoint,
        f'test_dataloader.dataset.data_root={data_root}',
        dump=tmp_path / 'preds.pkl')
    # The dataset downloaded the archive from the local server.
    assert served_cifar.requests == ['/cifar-100-python.tar.gz']
    assert (data_root / 'cifar-100-python' / 'test').is_file()
    assert result['num_samples'] == NUM_TEST
    assert set(result['metrics']) == {
        'accuracy/top1', 'accuracy/top5', 'mean_per_class_recall'
    }
    assert result['metrics'] == metrics
    for value in metrics.values():
        assert 0 <= value <= 100
    # Per sample, the same scores as open_clip's zero-shot code with the
    # same weights, images, class names and templates.
    with open(tmp_path / 'preds.pkl', 'rb') as f:
        preds = pickle.load(f)
    assert [int(p['gt_label']) for p in preds] == labels.tolist()
    ref = reference_logits([Image.fromarray(img) for img in images],
                           list(resolve_categories('cifar100')),
                           list(OPENAI_CIFAR_TEMPLATES)).softmax(-1)
    scores = torch.stack([p['pred_score'] for p in preds])
    torch.testing.assert_close(scores, ref, atol=1e-6, rtol=0)
    pred = scores.argmax(-1).numpy()
    assert metrics['accuracy/top1'] == pytest.approx(100 * float(
        (pred == labels).mean()))


@pytest.mark.parametrize('precision,compile',
                         [(None, False), ('bf16', False),
                          pytest.param(None, True, marks=pytest.mark.slow)])
def test_planted_examples_score_100(tmp_path, cifar, served_cifar, checkpoint,
                                    precision, compile):
    """The example images are the evaluated images, filed under their
    category names: only a consistent label <-> name order scores 100%, in
    fp32, with the towers in bf16 (``--precision bf16``) and compiled
    (``--compile``)."""
    from mmprompt.models.clip.prompts import resolve_categories
    images, labels, _, _ = cifar
    names = resolve_categories('cifar100')
    examples = tmp_path / 'examples'
    for i, (img, label) in enumerate(zip(images, labels)):
        folder = examples / names[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(folder / f'{i}.png')
    config = H.write_tiny_config(
        str(tmp_path / 'cfg.py'),
        CIFAR_CFG,
        model=dict(
            examples=str(examples), cache_alpha=1000.0, cache_beta=2000.0))
    metrics, written = run_tool(
        tmp_path,
        config,
        checkpoint,
        f"test_dataloader.dataset.data_root={tmp_path / 'data'}",
        precision=precision,
        compile=compile)
    speed = written['speed']
    assert speed['images'] == len(images)
    assert speed['images_per_s'] == pytest.approx(
        len(images) / speed['seconds'])
    assert metrics == {
        'accuracy/top1': 100.0,
        'accuracy/top5': 100.0,
        'mean_per_class_recall': 100.0
    }


def write_imagenet_folder(root, labels):
    """data/imagenet/val/*.JPEG and meta/val.txt, ImageNet's val layout."""
    (root / 'val').mkdir(parents=True)
    (root / 'meta').mkdir()
    images = synthetic_images(labels, 80, seed=5)
    lines = []
    for i, (img, label) in enumerate(zip(images, labels)):
        name = f'ILSVRC2012_val_{i + 1:08d}.JPEG'
        size = (80 + 7 * (i % 5), 80) if i % 2 else (80, 96)
        Image.fromarray(img).resize(size).save(root / 'val' / name, quality=95)
        lines.append(f'{name} {label}\n')
    (root / 'meta' / 'val.txt').write_text(''.join(lines))
    return [root / 'val' / line.split()[0] for line in lines]


def test_imagenet_folder_planted_and_prototype_cache(tmp_path, checkpoint):
    """An ImageNet-layout folder (annotation file) evaluated with the 1000
    ImageNet names; the examples are the evaluated images again."""
    from mmprompt.models.clip.prompts import resolve_categories
    names = resolve_categories('imagenet')
    labels = [0, 1, 2, 417, 999, 0, 1, 2, 417, 999, 5, 5]
    root = tmp_path / 'imagenet'
    files = write_imagenet_folder(root, labels)
    examples = {}
    for path, label in zip(files, labels):
        examples.setdefault(names[label], []).append(str(path))
    cache = tmp_path / 'prototypes'
    config = H.write_tiny_config(
        str(tmp_path / 'cfg.py'),
        IN1K_CFG,
        model=dict(
            templates='simple',
            examples=examples,
            cache_alpha=1000.0,
            cache_beta=2000.0,
            prototype_cache_dir=str(cache)))
    metrics, result = run_tool(tmp_path, config, checkpoint,
                               f'test_dataloader.dataset.data_root={root}')
    assert result['num_samples'] == len(labels)
    assert metrics == {
        'accuracy/top1': 100.0,
        'accuracy/top5': 100.0,
        'mean_per_class_recall': 100.0
    }
    # The second run reads the text prototypes from the on-disk cache.
    assert len(os.listdir(cache)) == 1
    stamp = os.stat(cache / os.listdir(cache)[0]).st_mtime_ns
    again, _ = run_tool(tmp_path, config, checkpoint,
                        f'test_dataloader.dataset.data_root={root}')
    assert again == metrics
    assert len(os.listdir(cache)) == 1
    assert os.stat(cache / os.listdir(cache)[0]).st_mtime_ns == stamp


def test_safetensors_checkpoint(tmp_path, checkpoint):
    """The Runner's load_from reads a .safetensors checkpoint: the same
    metrics as its .pth."""
    from mmprompt.utils.checkpoint import read_checkpoint, save_checkpoint
    sd, meta = read_checkpoint(checkpoint)
    st = str(tmp_path / 'tiny_clip.safetensors')
    save_checkpoint(sd, meta, st)
    labels = [0, 1, 2, 417, 999, 5]
    root = tmp_path / 'imagenet'
    write_imagenet_folder(root, labels)
    config = H.write_tiny_config(
        str(tmp_path / 'cfg.py'), IN1K_CFG, model=dict(templates='simple'))
    option = f'test_dataloader.dataset.data_root={root}'
    from_pth, _ = run_tool(tmp_path, config, checkpoint, option)
    from_st, _ = run_tool(tmp_path, config, st, option)
    assert from_st == from_pth


def test_bad_arguments(tmp_path):
    with pytest.raises(SystemExit):
        TOOL.parse_args(['cfg.py', 'ckpt.pth', '--out', 'metrics.pkl'])
    with pytest.raises(SystemExit):
        TOOL.parse_args(['cfg.py', 'ckpt.pth', '--dump', 'preds.json'])
    from mmprompt.utils.errors import UserError
    with pytest.raises(UserError, match='no such checkpoint file'):
        TOOL.resolve_checkpoint(str(tmp_path / 'missing.pth'))
    with pytest.raises(UserError,
                       match='neither a file nor a model of the zoo; '
                       'close names: clip_vit-base-p16'):
        TOOL.resolve_checkpoint('clip_vit-base-p61')


def test_cifar100_offline_advice_works(tmp_path, cifar, served_cifar,
                                       checkpoint, monkeypatch):
    """Offline, the error says where to put the archive by hand and its
    md5; doing exactly that evaluates without a network."""
    import re
    import shutil

    from mmpretrain.datasets import CIFAR100

    from mmprompt.utils import UserError
    archive = cifar[2]
    dead = 'http://127.0.0.1:9/cifar-100-python.tar.gz'
    monkeypatch.setattr(CIFAR100, 'url', dead)
    config = H.write_tiny_config(str(tmp_path / 'cfg.py'), CIFAR_CFG)
    data_root = tmp_path / 'data' / 'cifar100'
    option = f'test_dataloader.dataset.data_root={data_root}'
    with pytest.raises(UserError) as e:
        run_tool(tmp_path, config, checkpoint, option)
    message = str(e.value)
    assert '\n' not in message
    advice = re.search(r'download (\S+) \(md5 (\w+)\) elsewhere and put it '
                       r'at (\S+): it is extracted on the next run$', message)
    assert advice.group(1) == dead
    assert advice.group(2) == md5(archive)
    assert advice.group(3) == str(data_root / 'cifar-100-python.tar.gz')
    with open(advice.group(3), 'wb') as f:
        f.write(archive)
    metrics, result = run_tool(tmp_path, config, checkpoint, option)
    assert result['num_samples'] == NUM_TEST
    assert served_cifar.requests == []
    # A different archive there is named, not downloaded over.
    shutil.rmtree(data_root / 'cifar-100-python')
    with open(advice.group(3), 'wb') as f:
        f.write(b'not the archive')
    with pytest.raises(UserError, match='is not the published archive'):
        run_tool(tmp_path, config, checkpoint, option)
