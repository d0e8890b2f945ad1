# Copyright (c) mmprompt contributors. All rights reserved.
"""Deployment: ONNX export with onnxruntime checks."""
from .onnx import (EXPORT_KINDS, ClassifierExport, ExportError,
                   ImageTowerExport, LearnedPromptExport, TaggerExport,
                   TextTowerExport, build_export_module, compare_onnx,
                   default_kind, export_onnx, max_abs_diffs, onnx_session,
                   run_onnx)

__all__ = [
    'EXPORT_KINDS', 'ClassifierExport', 'ExportError', 'ImageTowerExport',
    'LearnedPromptExport', 'TaggerExport', 'TextTowerExport',
    'build_export_module', 'compare_onnx', 'default_kind', 'export_onnx',
    'max_abs_diffs', 'onnx_session', 'run_onnx'
]
