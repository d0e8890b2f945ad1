# Copyright (c) mmprompt contributors. All rights reserved.
"""Export a CLIP or RAM model to ONNX, optionally checked with onnxruntime.

Examples:
    python tools/deployment/pytorch2onnx.py clip_vit-base-p16 clip.onnx \
        --kind classifier --categories cat dog --verify
    python tools/deployment/pytorch2onnx.py \
        configs/ram/ram_swin-large-p4-w12_384px_normal.py ram.onnx \
        --checkpoint ram_swin_large_14m.safetensors --verify

See :mod:`mmprompt.deployment.onnx` for the graphs' inputs and outputs.
"""
import argparse
from typing import TYPE_CHECKING, List, Optional

from mmengine.config import DictAction

from mmprompt.utils.errors import InvalidInputError, run_tool
from mmprompt.utils.options import DEFAULT_OPSET, EXPORT_KINDS

if TYPE_CHECKING:
    import torch

# torch, onnx and the models are imported where they are used: --help and
# the argument errors come at once.


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('model', help='zoo name, mmprompt:: name or config')
    parser.add_argument('out', help='the .onnx file to write')
    parser.add_argument(
        '--checkpoint',
        help='converted weights (default: the zoo weights of a name, or '
        "the config's load_from)")
    parser.add_argument('--kind', choices=EXPORT_KINDS, help='what to export')
    parser.add_argument('--categories', nargs='+', help='classifier / '
                        'open-set categories: names, a set name or a file')
    parser.add_argument('--templates', nargs='+', help='prompt templates')
    parser.add_argument('--descriptions', help='JSON file of descriptions')
    parser.add_argument('--examples', help='folder of example images')
    parser.add_argument(
        '--learned',
        help='a learned-prompt file (tools/train.py, CoOp); MODEL is the '
        'CLIP it was learned on (a zoo name or a zero-shot config) or its '
        'prompt-learning config')
    parser.add_argument(
        '--allow-other-clip-weights',
        action='store_true',
        help='use a --learned file over other CLIP weights than it was '
        'learned on')
    parser.add_argument('--opset', type=int, default=DEFAULT_OPSET)
    parser.add_argument(
        '--verify',
        action='store_true',
        help='compare onnxruntime with PyTorch at batch 1 and 2')
    parser.add_argument('--force', action='store_true',
                        help='overwrite the output')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='model config overrides')
    return parser.parse_args(argv)


def build_model(args: argparse.Namespace) -> 'torch.nn.Module':
    """The model to export, with its weights and categories."""
    from mmprompt.apis import get_model
    overrides = dict(args.cfg_options or {})
    for key in ('categories', 'templates', 'descriptions', 'examples'):
        value = getattr(args, key)
        if value is not None:
            single = key in ('descriptions', 'examples') or len(value) > 1
            overrides[key] = value if single else value[0]
    check_prompts(args.model, overrides)
    pretrained = args.checkpoint or True
    if args.learned:
        return learned_model(args, overrides)
    return get_model(args.model, pretrained=pretrained, **overrides)


def check_prompts(model: str, overrides: dict) -> None:
    """Refuse, before the build, the categories and templates the model
    would refuse (blank, repeated, templates without one ``{}``)."""
    from mmprompt.apis.model_zoo import load_config
    from mmprompt.apis.utils import check_prompts as check
    from mmprompt.models.ram import RAM
    from mmprompt.registry import MODELS
    from mmprompt.utils import register_all_modules
    if overrides.get('categories') is None and \
            overrides.get('templates') is None:
        return
    register_all_modules(init_default_scope=False)
    cls = MODELS.get(str(load_config(model)[0].model.get('type')))
    check(overrides.get('categories'), overrides.get('templates'),
          open_set=isinstance(cls, type) and issubclass(cls, RAM))


def learned_model(args: argparse.Namespace,
                  overrides: dict) -> 'torch.nn.Module':
    """The prompt-learning model of ``--learned`` over ``MODEL``, on
    ``--categories`` if given."""
    from mmprompt.apis.builder import get_model
    from mmprompt.models.clip.prompts import resolve_categories
    unused = set(overrides) - {'categories'}
    if unused:
        raise InvalidInputError(
            f'--learned takes no {", ".join(sorted(unused))}: the file '
            'fixes the model and its prompts (--categories may change)')
    model = get_model(
        args.model,
        args.checkpoint or True,
        learned=args.learned,
        allow_other_weights=args.allow_other_clip_weights)
    if overrides.get('categories') is not None:
        model.set_categories(
            list(resolve_categories(overrides['categories'])))
    return model


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    from mmengine.logging import print_log

    from mmprompt.deployment import (build_export_module, compare_onnx,
                                     default_kind, export_onnx, onnx_session)
    from mmprompt.deployment.onnx import (check_opset, check_outputs,
                                          require_deploy)
    require_deploy()
    # Refuse what cannot be written before the (slow) model build.
    check_opset(args.opset)
    inputs = [
        args.model, args.checkpoint, args.descriptions, args.examples,
        args.learned, *(args.categories or []), *(args.templates or [])
    ]
    check_outputs([args.out], args.force, inputs=[p for p in inputs if p])
    model = build_model(args)
    module = build_export_module(model, args.kind or default_kind(model))
    files = export_onnx(module, args.out, opset=args.opset, force=args.force)
    print_log(f'{module.kind} graph written to {", ".join(files)}',
              logger='current')
    if args.verify:
        session = onnx_session(args.out)
        for batch in (1, 2):
            diffs = compare_onnx(session, module,
                                 module.example_inputs(batch))
            text = ', '.join(f'{k} {v:.2e}' for k, v in diffs.items())
            print_log(f'batch {batch}: max abs diff {text}',
                      logger='current')
    return 0


if __name__ == '__main__':
    run_tool(main)
