# Copyright (c) mmprompt contributors. All rights reserved.
"""tools/test.py on a tiny SigLIP 2: converted open_clip-layout weights,
the model's tokenizer file, sigmoid scores, planted examples score 100."""
import torch
from test_tools.test_test_py import run_tool, write_imagenet_folder
from testing_utils import siglip

from mmprompt.converters.siglip import convert_siglip
from mmprompt.utils.checkpoint import save_checkpoint

IN1K_CFG = 'siglip/siglip2_vit-base-p16_zeroshot-cls_in1k.py'


def write_tiny_siglip_config(path: str, tokenizer_file: str,
                             **model) -> str:
    """The SigLIP 2 in1k leaf config shrunk to testing_utils.siglip.TINY."""
    tiny = siglip.tiny_cfg(tokenizer_file)
    overrides = dict(
        vision_backbone=dict(
            arch=dict(_delete_=True, **tiny.vision_backbone.arch),
            img_size=tiny.vision_backbone.img_size,
            patch_size=tiny.vision_backbone.patch_size),
        text_backbone={
            k: tiny.text_backbone[k]
            for k in ('vocab_size', 'embed_dims', 'num_layers', 'num_heads',
                      'feedforward_channels')
        },
        tokenizer=dict(tiny.tokenizer),
        proj_dims=tiny.proj_dims,
        **model)
    size = tiny.vision_backbone.img_size
    with open(path, 'w') as f:
        f.write(f"_base_ = ['{siglip.REPO_ROOT}/configs/{IN1K_CFG}']\n"
                f'model = dict(**{overrides!r})\n'
                'test_dataloader = dict(num_workers=0, batch_size=32, '
                "dataset=dict(pipeline=[dict(type='CLIPPreprocess', "
                f"scale={size}, resize_mode='squash'), "
                "dict(type='PackInputs')]))\n")
    return path


def test_tools_test_runs_siglip(tmp_path):
    tokenizer_file = siglip.train_tokenizer(str(tmp_path))
    torch.manual_seed(0)
    source = siglip.randomize_(siglip.TinyReference().state_dict())
    converted, meta = convert_siglip(source)
    checkpoint = str(tmp_path / 'tiny_siglip.safetensors')
    save_checkpoint(converted, meta, checkpoint)
    from mmprompt.models.clip.prompts import resolve_categories
    names = resolve_categories('imagenet')
    labels = [0, 1, 417, 999, 0, 1, 417, 999]
    root = tmp_path / 'imagenet'
    files = write_imagenet_folder(root, labels)
    examples = {}
    for path, label in zip(files, labels):
        examples.setdefault(names[label], []).append(str(path))
    config = write_tiny_siglip_config(
        str(tmp_path / 'cfg.py'), tokenizer_file, templates='simple',
        examples=examples, cache_alpha=1000.0, cache_beta=2000.0)
    metrics, result = run_tool(tmp_path, config, checkpoint,
                               f'test_dataloader.dataset.data_root={root}')
    assert result['num_samples'] == len(labels)
    assert metrics == {
        'accuracy/top1': 100.0,
        'accuracy/top5': 100.0,
        'mean_per_class_recall': 100.0
    }
