# Copyright (c) mmprompt contributors. All rights reserved.
"""A (tiny) PE-Core exports to ONNX: RoPE, the attention pool and the
projection's bias run in onnxruntime as in PyTorch."""
import pytest
import torch
from test_models.test_pe_core import TinyReference, randomize_, tiny_cfg

from mmprompt.converters import convert_pe_core
from mmprompt.registry import MODELS

pytest.importorskip('onnx', reason='the deploy extra (onnx) is missing')
pytest.importorskip('onnxruntime', reason='onnxruntime is missing')


@pytest.mark.parametrize('kind,output,atol', [('image', 'image_feats', 1e-5),
                                              ('classifier', 'probs', 1e-6)])
def test_export_matches_pytorch(kind, output, atol, tmp_path):
    pytest.importorskip('open_clip')
    pytest.importorskip('timm')
    from mmprompt.deployment import (build_export_module, compare_onnx,
                                     export_onnx)
    from mmprompt.deployment.onnx import onnx_session
    ref = randomize_(TinyReference(), seed=0, std=0.1).eval()
    converted, _ = convert_pe_core(ref.state_dict())
    model = MODELS.build(tiny_cfg()).eval()
    model.load_state_dict(converted, strict=True)
    model.set_categories(['cat', 'dog', 'red rocket'], templates='{}')
    module = build_export_module(model, kind)
    path, = export_onnx(module, str(tmp_path / f'{kind}.onnx'))
    images = torch.rand(
        4, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 255
    diffs = compare_onnx(onnx_session(path), module, [images])
    assert set(diffs) == {output}
    assert diffs[output] < atol
