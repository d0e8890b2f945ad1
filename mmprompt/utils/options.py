# Copyright (c) mmprompt contributors. All rights reserved.
"""Option values the command lines offer and the code checks, importable
without torch (a tool's ``--help`` does not wait for it)."""
import os
from typing import List, Optional, Union

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


def category_spec(values: Optional[List[str]]) -> Union[None, str, List[str]]:
    """``--categories`` as the inferencers take it: one value that is a
    file or a built-in set name stays a string, anything else (one name
    included) is a list of names.

    Raises:
        UserError: For one ``.txt`` value that is no file.
    """
    if not values:
        return None
    if len(values) == 1:
        from mmprompt.models.clip.prompts import builtin_category_sets
        value = values[0]
        if os.path.isfile(value) or value in builtin_category_sets():
            return value
        if value.endswith('.txt'):
            from mmprompt.utils.errors import UserError
            raise UserError(f'--categories: no such file {value!r}')
    return list(values)
