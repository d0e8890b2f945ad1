# Copyright (c) mmprompt contributors. All rights reserved.
import os.path as osp

import torch
from testing_utils import REPO_ROOT, load_module, siglip

from mmprompt.registry import MODELS
from mmprompt.utils.checkpoint import load_checkpoint

CLI = osp.join(REPO_ROOT, 'tools', 'model_converters',
               'siglip_to_mmprompt.py')


def test_cli_converts_and_refuses_to_overwrite(tmp_path, capsys):
    """open_clip's .bin -> .safetensors that loads strictly; a second run
    without --force fails in one line and keeps the file."""
    cli = load_module('siglip_to_mmprompt', CLI)
    source = siglip.randomize_(siglip.TinyReference().state_dict())
    src = str(tmp_path / 'open_clip_pytorch_model.bin')
    torch.save(source, src)
    dst = str(tmp_path / 'tiny.safetensors')
    assert cli.main([src, dst]) == 0
    model = MODELS.build(siglip.tiny_cfg())
    load_checkpoint(model, dst)
    assert torch.equal(model.logit_bias.detach(), source['logit_bias'])
    stamp = osp.getmtime(dst)
    capsys.readouterr()
    assert cli.main([src, dst]) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and err.startswith('error: ')
    assert '--force' in err and osp.getmtime(dst) == stamp
    bad = str(tmp_path / 'clip.bin')
    torch.save({'visual.proj': torch.zeros(2, 2)}, bad)
    assert cli.main([bad, str(tmp_path / 'x.safetensors')]) == 2
    assert 'not a SigLIP (open_clip layout) checkpoint' in \
        capsys.readouterr().err
