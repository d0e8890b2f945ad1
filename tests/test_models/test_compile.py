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
