# Copyright (c) mmprompt contributors. All rights reserved.
import os.path as osp
import subprocess
import sys

import mmpretrain.registry
import pytest
from mmengine import DefaultScope
from mmengine.config import Config
from mmpretrain.utils.dependency import WITH_MULTIMODAL

import mmprompt.registry
from mmprompt.models.clip import (CLIP, CLIPTextTransformer, CLIPTokenizer,
                                  CLIPZeroShot)
from mmprompt.registry import MODELS, TOKENIZER
from mmprompt.utils import register_all_modules

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
RUNTIME = osp.join(REPO_ROOT, 'configs', '_base_', 'default_runtime.py')


def test_mmprompt_classes_win_in_own_scope():
    assert DefaultScope.get_current_instance().scope_name == 'mmprompt'
    assert MODELS.get('CLIPZeroShot') is CLIPZeroShot
    assert MODELS.get('CLIP') is CLIP
    assert MODELS.get('mmprompt.CLIPZeroShot') is CLIPZeroShot
    assert MODELS.get('CLIPTextTransformer') is CLIPTextTransformer
    assert TOKENIZER.get('CLIPTokenizer') is CLIPTokenizer
    assert CLIPZeroShot.__module__ == 'mmprompt.models.clip.clip'


def test_mmpretrain_prefix_reaches_the_parent():
    theirs = MODELS.get('mmpretrain.CLIPZeroShot')
    assert theirs is not None and theirs is not CLIPZeroShot
    assert theirs is mmpretrain.registry.MODELS.get('CLIPZeroShot')
    if WITH_MULTIMODAL:
        assert theirs.__module__.startswith('mmpretrain.models.multimodal')
    else:
        # Without transformers MMPreTrain registers a placeholder that asks
        # for the multi-modal extras.
        with pytest.raises(ImportError, match='multi-modal dependencies'):
            theirs()


def test_mmpretrain_only_modules_resolve_through_parent():
    from mmpretrain.models import ClsDataPreprocessor, VisionTransformer
    from mmpretrain.models.utils import QuickGELU
    assert MODELS.get('VisionTransformer') is VisionTransformer
    assert MODELS.get('ClsDataPreprocessor') is ClsDataPreprocessor
    assert MODELS.get('mmpretrain.QuickGELU') is QuickGELU


@pytest.mark.parametrize('name', mmprompt.registry.__all__)
def test_every_node_is_a_child_of_mmpretrain(name):
    node = getattr(mmprompt.registry, name)
    assert node.scope == 'mmprompt'
    assert node.parent is getattr(mmpretrain.registry, name)
    assert node.parent.scope == 'mmpretrain'


def test_register_all_modules_warns_on_another_scope():
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        assert DefaultScope.get_current_instance().scope_name == 'mmpretrain'
        with pytest.warns(UserWarning, match='is not "mmprompt"'):
            register_all_modules(init_default_scope=True)
        assert DefaultScope.get_current_instance().scope_name == 'mmprompt'
    assert DefaultScope.get_current_instance().scope_name == 'mmprompt'


def test_default_runtime_config():
    cfg = Config.fromfile(RUNTIME)
    assert cfg.default_scope == 'mmprompt'
    assert cfg.custom_imports == dict(
        imports=['mmprompt.models'], allow_failed_imports=False)
    # Inference only: no scheduler or checkpoint hooks.
    assert cfg.default_hooks.param_scheduler is None
    assert cfg.default_hooks.checkpoint is None


def test_default_runtime_resolves_like_a_runner(tmp_path):
    """In a fresh interpreter, only what a Runner does: custom imports,
    default scope, then the visualizer, hooks and a model."""
    script = f"""
import copy
from mmengine.config import Config
from mmengine.registry import HOOKS, MODELS, VISUALIZERS, init_default_scope
from mmengine.utils import import_modules_from_strings
cfg = Config.fromfile({RUNTIME!r})
import_modules_from_strings(**cfg.custom_imports)
init_default_scope(cfg.default_scope)
vis = VISUALIZERS.build(
    dict(cfg.visualizer, name='test', save_dir={str(tmp_path)!r}))
hooks = [HOOKS.build(copy.deepcopy(h)) for h in cfg.default_hooks.values()
         if h is not None]
model = MODELS.build(dict(
    type='CLIPZeroShot',
    vision_backbone=dict(type='VisionTransformer', arch=dict(
        embed_dims=64, num_layers=1, num_heads=1, feedforward_channels=64),
        img_size=32, pre_norm=True,
        layer_cfgs=dict(act_cfg=dict(type='mmpretrain.QuickGELU'))),
    text_backbone=dict(type='CLIPTextTransformer', embed_dims=64,
                       num_layers=1, num_heads=1)))
print(type(vis).__module__, type(hooks[-1]).__module__,
      type(model).__module__, type(model.visual).__module__)
"""
    result = subprocess.run([sys.executable, '-c', script],
                            capture_output=True,
                            text=True,
                            cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        'mmpretrain.visualization.visualizer',
        'mmpretrain.engine.hooks.visualization_hook',
        'mmprompt.models.clip.clip',
        'mmpretrain.models.backbones.vision_transformer'
    ]
