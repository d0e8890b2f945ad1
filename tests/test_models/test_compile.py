# Copyright (c) mmprompt contributors. All rights reserved.
import pytest
import torch.nn as nn

from mmprompt.models.utils import compile_model


def test_compile_model_arguments():
    model = nn.Sequential(nn.Linear(2, 2))
    with pytest.raises(TypeError, match='compile_modules'):
        compile_model(model)
    with pytest.raises(ValueError, match='mode must be one of'):
        compile_model(model, modules=['0'], mode='fastest')
    with pytest.raises(AttributeError):
        compile_model(model, modules=['1'])
    weight = model[0].weight
    compile_model(model, modules=['0'])  # lazily: nothing compiled yet
    assert model[0].weight is weight and list(
        model.state_dict()) == ['0.weight', '0.bias']
    with pytest.raises(RuntimeError, match='already compiled'):
        compile_model(model, modules=['0'])


def test_compiled_towers_run_under_inference_mode_and_no_grad():
    """MMPreTrain keeps stochastic-depth rates as numpy scalars; compiled
    as they are, dynamo's guards on them fail under inference_mode."""
    import numpy as np
    import torch
    from mmcv.cnn.bricks.drop import DropPath
    torch.manual_seed(0)
    model = nn.Module()
    model.tower = nn.Sequential(
        nn.Linear(4, 4), DropPath(np.linspace(0, 0.1, 3)[1]))
    model.eval()
    x = torch.randn(2, 4)
    with torch.no_grad():
        expected = model.tower(x)
    compile_model(model, modules=['tower'])
    assert type(model.tower[1].drop_prob) is float
    with torch.inference_mode():
        torch.testing.assert_close(model.tower(x), expected)
    with torch.no_grad():
        torch.testing.assert_close(model.tower(x), expected)
