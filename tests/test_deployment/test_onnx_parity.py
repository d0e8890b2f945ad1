# Copyright (c) mmprompt contributors. All rights reserved.
"""ONNX exports at full size, random weights, fp32: onnxruntime vs PyTorch.

One export per model (CLIP ViT-B/16 image tower, text tower and a
zero-shot classifier; RAM and RAM++ Swin-L/384 tagging); batch 1 and 4 go
through the same file. Features and probabilities must agree within 1e-4
(max abs difference), with the same top-1 and the same selected tags.
"""
import pytest
import torch
from mmengine.config import Config
from testing_utils import REPO_ROOT

pytest.importorskip('onnx', reason='the deploy extra (onnx) is missing')
pytest.importorskip(
    'onnxruntime', reason='the deploy extra (onnxruntime) is missing')
pytest.importorskip(
    'onnxscript', reason='the deploy extra (onnxscript) is missing')

from mmprompt.apis.builder import build_from_config  # noqa: E402
from mmprompt.deployment import (build_export_module, export_onnx,  # noqa
                                 max_abs_diffs, onnx_session, run_onnx)

pytestmark = [pytest.mark.parity, pytest.mark.slow]
ATOL = 1e-4
CLIP_CFG = 'clip/clip_vit-base-p16_zeroshot-cls_in1k.py'
RAM_CFGS = dict(
    ram='ram/ram_swin-large-p4-w12_384px_normal.py',
    ram_plus='ram/ram-plus_swin-large-p4-w12_384px_normal.py')


def build(config: str, seed: int, **model) -> torch.nn.Module:
    cfg = Config.fromfile(f'{REPO_ROOT}/configs/{config}')
    if model:
        cfg.merge_from_dict(dict(model=model))
    torch.manual_seed(seed)
    built = build_from_config(cfg)
    built.init_weights()
    return built.eval()


def check(module, path, batches=(1, 4), **inputs_kw):
    """Export once, compare every batch size (one PyTorch and one
    onnxruntime run each); returns the diffs and both outputs."""
    export_onnx(module, path)
    session = onnx_session(path)
    diffs = {}
    for batch in batches:
        torch.manual_seed(batch)
        inputs = module.example_inputs(batch, **inputs_kw)
        outputs = run_onnx(session, module, inputs)
        with torch.no_grad():
            expected = module(*inputs)
        expected = (expected, ) if torch.is_tensor(expected) else expected
        diffs[batch] = max_abs_diffs(module.output_names, expected, outputs)
        diffs[batch]['outputs'] = (outputs, expected)
    return diffs


def test_clip_towers_and_classifier(tmp_path):
    model = build(CLIP_CFG, 0, categories=[f'class {i}' for i in range(20)])
    model.progress = False
    report = {}
    for kind in ('image', 'text', 'classifier'):
        module = build_export_module(model, kind)
        kw = dict(length=20) if kind == 'text' else {}
        diffs = check(module, str(tmp_path / f'{kind}.onnx'), **kw)
        for batch, d in diffs.items():
            (got, ), (expected, ) = d.pop('outputs')
            report[(kind, batch)] = d
            assert max(d.values()) <= ATOL, (kind, batch, d)
            if kind == 'classifier':
                assert torch.equal(got.argmax(-1), expected.argmax(-1))
    print('\nONNX max abs diffs (CLIP ViT-B/16):', report)


@pytest.mark.heavy
@pytest.mark.parametrize('name', list(RAM_CFGS))
def test_ram_tagging(name, tmp_path):
    model = build(RAM_CFGS[name], 1)
    with torch.no_grad():
        # Random label embeddings and thresholds (a built RAM has zeros).
        model.label_embed.normal_(std=0.5)
        model.class_threshold.uniform_(0.3, 0.7)
    module = build_export_module(model, 'tagging')
    diffs = check(module, str(tmp_path / f'{name}.onnx'))
    for batch, d in diffs.items():
        (probs, thr), (expected, exp_thr) = d.pop('outputs')
        assert max(d.values()) <= ATOL, (batch, d)
        assert torch.equal(thr, exp_thr)
        tags = probs > thr
        assert torch.equal(tags, expected > exp_thr)
        assert tags.any()
    print(f'\nONNX max abs diffs ({name}):', diffs)
