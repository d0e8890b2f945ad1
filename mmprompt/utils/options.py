# Copyright (c) mmprompt contributors. All rights reserved.
"""Option values the command lines offer and the code checks, importable
without torch (a tool's ``--help`` does not wait for it)."""

#: Job launchers of :func:`mmprompt.utils.dist.setup_distributed`.
LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')

#: ``torch.compile`` modes of :func:`mmprompt.models.utils.compile_model`.
COMPILE_MODES = ('default', 'reduce-overhead', 'max-autotune',
                 'max-autotune-no-cudagraphs')

#: Threshold calibration modes of
#: :func:`mmprompt.evaluation.calibration.calibrate_thresholds`.
CALIBRATION_MODES = ('f1', 'precision')

#: What :func:`mmprompt.deployment.build_export_module` exports, and the
#: default ONNX opset.
EXPORT_KINDS = ('image', 'text', 'classifier', 'tagging')
DEFAULT_OPSET = 18
