# Copyright (c) mmprompt contributors. All rights reserved.
import pytest
import torch.nn as nn

from mmprompt.models.utils import compile_model
from mmprompt.registry import MODELS


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


def _cxx_compiler() -> bool:
    import shutil
    return any(shutil.which(c) for c in ('c++', 'g++', 'clang++'))


def test_text_option_needs_a_text_tower_of_one_shape():
    import os.path as osp

    from mmengine.config import Config
    from testing_utils import clip
    cfg = Config.fromfile(
        osp.join(clip.CONFIGS, '_base_', 'models', 'clip_vit-base-p16.py'))
    cfg.merge_from_dict(dict(model=clip.tiny_model_overrides()))
    model = MODELS.build(cfg.model).eval()
    with pytest.raises(TypeError, match='CLIPZeroShot has no text tower of '
                       'one input shape to compile'):
        compile_model(model, text=True)
    assert not getattr(model.visual, '_mmprompt_compiled', False)


@pytest.mark.skipif(not _cxx_compiler(), reason='inductor needs a C++ '
                    'compiler on the CPU')
def test_compiled_siglip_text_tower_gives_the_eager_prototypes(tmp_path):
    """``compile_model(text=True)`` compiles SigLIP's text tower (rows of
    64 tokens), and the prototypes built through it, two batch sizes, equal
    the eager ones."""
    import torch
    from testing_utils import siglip
    tokenizer_file = siglip.train_tokenizer(str(tmp_path))
    torch.manual_seed(0)
    model = MODELS.build(siglip.tiny_cfg(tokenizer_file)).eval()
    model.load_state_dict(siglip.randomize_(model.state_dict()))
    model.text_batch_size = 4
    categories = ['cat', 'golden retriever', 'plastic zebra']
    templates = ['a photo of a {}.', 'itap of a {}', 'a bad photo of the {}']
    expected = model.build_prototypes(categories, templates)
    compile_model(model, text=True)
    assert model.text_encoder._mmprompt_compiled
    assert model.visual._mmprompt_compiled
    calls = []
    forward = model.text_encoder.forward
    model.text_encoder.forward = lambda *a: calls.append(1) or forward(*a)
    protos = model.build_prototypes(categories, templates)
    assert len(calls) == 3  # 9 prompts: batches of 4, 4 and 1
    torch.testing.assert_close(protos, expected, atol=1e-5, rtol=0)
    assert not torch.equal(protos[0], protos[1])
