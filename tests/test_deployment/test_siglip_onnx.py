# Copyright (c) mmprompt contributors. All rights reserved.
"""A tiny SigLIP exported to ONNX: image tower, text tower (full-length
rows only) and the zero-shot classifier (sigmoid scores), onnxruntime vs
PyTorch within 1e-5."""
import pytest
import torch
from testing_utils import siglip

pytest.importorskip('onnx', reason='the deploy extra (onnx) is missing')
pytest.importorskip(
    'onnxruntime', reason='the deploy extra (onnxruntime) is missing')
pytest.importorskip(
    'onnxscript', reason='the deploy extra (onnxscript) is missing')

from mmprompt.deployment import (build_export_module, export_onnx,  # noqa
                                 max_abs_diffs, onnx_session, run_onnx)
from mmprompt.registry import MODELS  # noqa: E402


def test_tiny_siglip_exports(tmp_path):
    tokenizer_file = siglip.train_tokenizer(str(tmp_path))
    torch.manual_seed(0)
    model = MODELS.build(siglip.tiny_cfg(tokenizer_file)).eval()
    model.load_state_dict(
        siglip.randomize_(model.state_dict(), seed=1), strict=True)
    model.progress = False
    model.set_categories(['cat', 'dog', 'plastic zebra'])
    for kind in ('image', 'text', 'classifier'):
        module = build_export_module(model, kind)
        path = str(tmp_path / f'{kind}.onnx')
        export_onnx(module, path)
        session = onnx_session(path)
        for batch in (1, 3):
            inputs = module.example_inputs(batch)
            if kind == 'text':
                assert inputs[0].shape == (batch, 64)
            with torch.no_grad():
                expected = module(*inputs)
            got = run_onnx(session, module, inputs)
            diffs = max_abs_diffs(module.output_names, (expected, ), got)
            assert max(diffs.values()) <= 1e-5, (kind, batch, diffs)
            if kind == 'classifier':
                # Sigmoid scores: not a distribution over the categories.
                assert (expected.sum(-1) - 1).abs().min() > 1e-3
