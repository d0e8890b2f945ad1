# Copyright (c) mmprompt contributors. All rights reserved.
"""Every method and tool takes the open weights' families (issue #20).

A tiny random-weight model of each family, built from the family's own
model config with few, narrow layers: open_clip's ViT-L/14 on LAION-2B
(exact GELU), MetaCLIP's (QuickGELU) and PE-Core (RoPE, attention pool,
projection bias, a 32-token text tower). For each: CoOp and CoCoOp trained
by tools/train.py, their learned file read back by tools/infer.py classify
and by ZeroShotClassifier(learned=); Tip-Adapter-F trained the same way;
the ONNX export of each tower against PyTorch; and RAM's open set, whose
label embeddings live in CLIP ViT-B/16's text space, refusing another
family's text tower in one line.
"""
import copy
import json
import os
import os.path as osp

import numpy as np
import pytest
import torch
from mmcv import imwrite
from mmengine.config import Config
from testing_utils import REPO_ROOT, load_module

CONFIGS = osp.join(REPO_ROOT, 'configs')
TRAIN = load_module('mmprompt_train_py',
                    osp.join(REPO_ROOT, 'tools', 'train.py'))
INFER = load_module('_mmprompt_tools_infer_matrix',
                    osp.join(REPO_ROOT, 'tools', 'infer.py'))
NAMES = ['cat', 'dog', 'car']
SIZE = 32
VIT = dict(
    vision_backbone=dict(
        arch=dict(
            _delete_=True,
            embed_dims=64,
            num_layers=2,
            num_heads=2,
            feedforward_channels=256),
        img_size=SIZE,
        patch_size=16),
    text_backbone=dict(embed_dims=64, num_layers=2, num_heads=2),
    proj_dims=32)
PE = copy.deepcopy(VIT)
PE['vision_backbone'].update(
    rope_ref_grid=(2, 2), attn_pool_cfg=dict(num_heads=2))
#: family -> (model config under configs/_base_/models, tiny overrides).
FAMILIES = {
    'laion2b': ('clip_vit-large-p14_laion2b.py', VIT),
    'metaclip': ('clip_vit-large-p14_metaclip-2.5b.py', VIT),
    'pe_core': ('pe-core_vit-base-p16.py', PE),
}
PIPELINE = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]


def family_model(name: str) -> dict:
    """The family's zero-shot ``model`` dict, shrunk."""
    base, tiny = FAMILIES[name]
    cfg = Config.fromfile(osp.join(CONFIGS, '_base_', 'models', base))
    cfg.merge_from_dict(dict(model=copy.deepcopy(tiny)))
    return cfg.model.to_dict()


def clip_cfg(name: str, checkpoint: str) -> dict:
    """The frozen CLIP of a prompt learner: the family's model as a
    ``CLIP`` (no zero-shot vocabulary), loaded from ``checkpoint``."""
    cfg = family_model(name)
    cfg.update(type='CLIP',
               init_cfg=dict(type='Pretrained', checkpoint=checkpoint))
    for key in ('templates', 'categories'):
        cfg.pop(key, None)
    return cfg


@pytest.fixture(scope='module', params=sorted(FAMILIES))
def family(request, tmp_path_factory):
    """The family's name, a random checkpoint, a zero-shot config and a
    folder of 4 images per class."""
    from mmprompt.registry import MODELS
    from mmprompt.utils import register_all_modules
    from mmprompt.utils.checkpoint import save_checkpoint
    register_all_modules()
    name = request.param
    root = tmp_path_factory.mktemp(name)
    torch.manual_seed(0)
    cfg = clip_cfg(name, '')
    cfg.pop('init_cfg')
    clip = MODELS.build(cfg)
    clip.init_weights()
    checkpoint = str(root / 'clip.pth')
    save_checkpoint(clip.state_dict(), {}, checkpoint)
    base = osp.join(CONFIGS, '_base_', 'models', FAMILIES[name][0])
    zero_shot = root / 'zero_shot.py'
    zero_shot.write_text(
        f'_base_ = [{base!r}, '
        f"{osp.join(CONFIGS, '_base_', 'default_runtime.py')!r}]\n"
        f'model = dict(**{FAMILIES[name][1]!r}, categories={NAMES!r}, '
        "templates='simple', progress=False)\n")
    rng = np.random.default_rng(0)
    for label in NAMES:
        os.makedirs(root / 'data' / 'train' / label)
        for i in range(4):
            imwrite(rng.integers(0, 256, (SIZE, SIZE, 3), np.uint8),
                    str(root / 'data' / 'train' / label / f'{i}.png'))
    return dict(
        name=name,
        root=root,
        checkpoint=checkpoint,
        config=str(zero_shot),
        images=str(root / 'data' / 'train'))


def train(family: dict, method: str, tmp_path) -> str:
    """tools/train.py, one epoch of ``method`` on the family's CLIP; the
    learned file."""
    clip = clip_cfg(family['name'], family['checkpoint'])
    data = str(family['root'] / 'data')
    if method == 'tip_adapter_f':
        base = 'tip_adapter/tip-adapter-f_vit-base-p16_16shots_custom.py'
        text = f"""model = dict(clip=dict(_delete_=True, **{clip!r}))
train_dataloader = dict(num_workers=0, batch_size=4, dataset=dict(shots=2,
    dataset=dict(data_root={data!r}, pipeline={PIPELINE!r})))
val_dataloader = dict(num_workers=0, dataset=dict(dataset=dict(
    data_root={data!r}, pipeline={PIPELINE!r})))
custom_hooks = [dict(type='TipAdapterHook', augment_epochs=1,
                     search_step=(4, 4))]
"""
    else:
        base = 'coop/coop_vit-base-p16_16shots_custom.py'
        kind = dict(coop='CoOp', cocoop='CoCoOp')[method]
        text = f"""model = dict(clip=dict(_delete_=True, **{clip!r}),
    type={kind!r}, n_ctx=4, ctx_init={'a photo of a' if kind == 'CoCoOp'
                                     else None!r})
train_dataloader = dict(num_workers=0, batch_size=4, dataset=dict(shots=4,
    dataset=dict(data_root={data!r}, pipeline={PIPELINE!r})))
optim_wrapper = dict(optimizer=dict(lr=0.05))
"""
    config = tmp_path / f'{method}.py'
    config.write_text(
        f"_base_ = [{osp.join(CONFIGS, base)!r}]\n{text}"
        'param_scheduler = []\ntrain_cfg = dict(max_epochs=1)\n'
        'default_hooks = dict(checkpoint=dict(interval=1))\n')
    return TRAIN.main([str(config), '--work-dir', str(tmp_path / 'work')])


def classify(family: dict, learned: str, tmp_path) -> dict:
    """tools/infer.py classify with ``learned``: image -> {class: score}
    (scores written to 6 decimals)."""
    out = tmp_path / 'classify.jsonl'
    INFER.main([
        'classify', family['images'], '--model', family['config'],
        '--checkpoint', family['checkpoint'], '--learned', learned,
        '--topk', '3', '--no-progress', '--num-workers', '0', '--out',
        str(out)
    ])
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    return {
        osp.relpath(row['image'], family['images']):
        dict(zip(row['classes'], row['scores']))
        for row in rows
    }


@pytest.mark.parametrize('method', ['coop', 'cocoop', 'tip_adapter_f'])
def test_learned_file_reads_back_alike(family, method, tmp_path):
    """A method trained on the family's CLIP: tools/infer.py classify and
    ZeroShotClassifier(learned=) give the same scores, and not the
    zero-shot ones (the learned file is used)."""
    from mmprompt.apis import ZeroShotClassifier
    learned = train(family, method, tmp_path)
    got = classify(family, learned, tmp_path)
    assert len(got) == 4 * len(NAMES)
    classifier = ZeroShotClassifier(
        family['config'], family['checkpoint'], learned=learned)
    plain = ZeroShotClassifier(family['config'], family['checkpoint'])
    moved = 0.0
    for path, scores in sorted(got.items()):
        image = osp.join(family['images'], path)
        want = classifier(image, topk=3)[0]
        zero = plain(image, topk=3)[0]
        assert set(scores) == set(NAMES)
        for cls, score in zip(want['topk_classes'], want['topk_scores']):
            assert abs(scores[cls] - score) < 1e-5, (path, cls)
        zero = dict(zip(zero['topk_classes'], zero['topk_scores']))
        moved = max(moved, *(abs(scores[c] - zero[c]) for c in NAMES))
    assert moved > 1e-4


@pytest.mark.parametrize('kind', ['image', 'text', 'classifier'])
def test_onnx_export_matches_pytorch(family, kind, tmp_path):
    """tools/deployment/pytorch2onnx.py on the family's zero-shot config:
    onnxruntime agrees with PyTorch; the text graph on rows of different
    lengths (each pooled at its own end-of-text token) and at batch 1."""
    pytest.importorskip('onnx', reason='the deploy extra (onnx) is missing')
    pytest.importorskip('onnxruntime', reason='onnxruntime is missing')
    from mmprompt.apis import get_model
    from mmprompt.deployment import build_export_module, compare_onnx
    from mmprompt.deployment.onnx import onnx_session
    export = load_module(
        '_mmprompt_pytorch2onnx_matrix',
        osp.join(REPO_ROOT, 'tools', 'deployment', 'pytorch2onnx.py'))
    out = str(tmp_path / f'{kind}.onnx')
    assert export.main([
        family['config'], out, '--checkpoint', family['checkpoint'],
        '--kind', kind
    ]) == 0
    model = get_model(family['config'], family['checkpoint']).eval()
    module = build_export_module(model, kind)
    session = onnx_session(out)
    if kind == 'text':
        ids = model.tokenize(['a cat', 'a photo of a big red dog', 'car'])
        batches = [ids[:, :10], ids[1:2, :9]]
    else:
        images = torch.rand(
            3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
        batches = [images * 255, images[:1] * 255]
    for batch in batches:
        diffs = compare_onnx(session, module, [batch])
        assert set(diffs) == set(module.output_names)
        assert max(diffs.values()) < 1e-5, diffs


def test_ram_open_set_refuses_another_text_tower(family, ram_vectors_dir,
                                                 tmp_path):
    """RAM's open set embeds categories with CLIP ViT-B/16's text tower (its
    tagging head was trained on that space): the family's checkpoint given
    as the text tower is refused in one line, naming the file."""
    from testing_utils import ram as R

    from mmprompt.utils.errors import UserError
    ram = R.convert_tiny(ram_vectors_dir, str(tmp_path), 'ram')
    config = R.write_tiny_config(
        str(tmp_path / 'openset.py'),
        'ram/ram_swin-large-p4-w12_384px_openset.py', 20,
        text_encoder=dict(R.tiny_text_encoder(), init_cfg=None))
    with pytest.raises(UserError) as e:
        INFER.main([
            'tag', family['images'], '--model', config, '--checkpoint', ram,
            '--text-checkpoint', family['checkpoint'], '--categories', 'cat',
            'red car', '--out', str(tmp_path / 'tags.jsonl'), '--no-progress',
            '--num-workers', '0'
        ])
    message = str(e.value)
    assert '\n' not in message
    assert message.startswith(family['checkpoint'])


@pytest.mark.parametrize('leaf,kind', [
    ('coop/coop_vit-base-p16_pe-core-pre_16shots_custom.py', 'CoOp'),
    ('cocoop/cocoop_vit-base-p16_pe-core-pre_16shots_custom.py', 'CoCoOp'),
    ('tip_adapter/tip-adapter-f_vit-base-p16_pe-core-pre_16shots_custom.py',
     'TipAdapterF'),
])
def test_pe_core_leaves_learn_on_pe_cores_clip(leaf, kind):
    """The PE-Core prompt-learning leaves build their method over the CLIP
    of PE-Core's model config (RoPE tower, projection bias, GELU text
    tower) and test with PE's squash / bilinear preprocessing."""
    from mmprompt.registry import MODELS
    from mmprompt.utils import register_all_modules
    register_all_modules()
    cfg = Config.fromfile(osp.join(CONFIGS, leaf))
    want = Config.fromfile(
        osp.join(CONFIGS, '_base_', 'models', 'pe-core_vit-base-p16.py'))
    clip = cfg.model.clip.to_dict()
    assert clip.pop('init_cfg')['checkpoint'] == (
        'checkpoints/pe-core_vit-base-p16.pth')
    zero_shot = want.model.to_dict()
    for key in ('type', 'templates'):
        zero_shot.pop(key)
    clip.pop('type')
    assert clip == zero_shot
    assert cfg.test_dataloader.dataset.pipeline[0] == dict(
        type='CLIPPreprocess', scale=224, resize_mode='squash',
        interpolation='bilinear')
    cfg.merge_from_dict(dict(model=dict(clip=copy.deepcopy(PE))))
    cfg.model.clip.init_cfg = None
    model = MODELS.build(dict(cfg.model, categories=NAMES))
    assert type(model).__name__ == kind
    args = model.clip.preprocess_args
    assert (args['resize_mode'], args['interpolation']) == ('squash',
                                                            'bilinear')
    assert type(model.clip.visual).__name__ == 'PEVisionTransformer'


def test_demo_classifies_with_the_family(family):
    """The demo started with the family's config (``--clip-config``)
    scores as the inferencer does."""
    from mmprompt.apis import ZeroShotClassifier
    demo = load_module('_mmprompt_demo_backend_matrix',
                       osp.join(REPO_ROOT, 'demo', 'demo_backend.py'))
    backend = demo.MMPromptBackend(family['config'], family['checkpoint'])
    image = osp.join(family['images'], 'dog', '1.png')
    got = demo.run_classify(backend, image, ', '.join(NAMES), None, [],
                            'simple', len(NAMES))
    want = ZeroShotClassifier(family['config'], family['checkpoint'])(
        image, categories=NAMES, templates='simple')[0]
    assert sorted(got) == sorted(NAMES)
    for name, score in zip(want['topk_classes'], want['topk_scores']):
        assert abs(got[name] - score) < 1e-6, (name, got, want)
