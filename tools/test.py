# Copyright (c) mmprompt contributors. All rights reserved.
"""Evaluate a model with MMEngine's Runner and write the metrics as JSON.

Example:
    python tools/test.py \
        configs/clip/clip_vit-base-p16_zeroshot-cls_cifar100.py \
        checkpoints/clip_vit-base-p16.pth --out results.json
"""
import argparse
import json
import os.path as osp
from typing import TYPE_CHECKING, List, Optional

from mmengine.config import Config, DictAction

from mmprompt.utils.errors import UserError, run_tool
from mmprompt.utils.io import atomic_write, check_output
from mmprompt.utils.options import COMPILE_MODES, LAUNCHERS

if TYPE_CHECKING:
    from mmengine.runner import Runner

# torch, MMEngine's Runner and the models are imported where they are used:
# --help and the argument errors come at once.


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Evaluate a model (e.g. zero-shot CLIP) on a dataset.')
    parser.add_argument(
        'config',
        help='config file, mmprompt::<path under configs> (e.g. '
        'mmprompt::clip/clip_vit-base-p16_zeroshot-cls_in1k.py), or a model '
        'name of mmprompt.apis.list_models()')
    parser.add_argument(
        'checkpoint',
        help='checkpoint file (.pth or .safetensors), or a model name of '
        'mmprompt.apis.list_models() (e.g. clip_vit-base-p16) for its '
        'official weights, downloaded and converted once')
    parser.add_argument(
        '--work-dir', help='where to save logs (default: ./work_dirs/CONFIG)')
    parser.add_argument('--out', help='write the metrics to this JSON file')
    parser.add_argument(
        '--dump',
        help='also dump the per-sample predictions to this pickle file')
    parser.add_argument(
        '--force',
        action='store_true',
        help='overwrite existing --out / --dump files')
    parser.add_argument(
        '--no-progress', action='store_true', help='hide the progress bar')
    parser.add_argument(
        '--allow-other-clip-weights',
        action='store_true',
        help='evaluate a learned-prompt CHECKPOINT over other CLIP weights '
        'than it was learned on (refused by default)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, e.g. '
        'test_dataloader.batch_size=32 model.templates=simple')
    parser.add_argument(
        '--precision',
        choices=['fp32', 'fp16', 'bf16'],
        help='run the heavy towers in this precision (default: the '
        "config's `precision`, else fp32)")
    parser.add_argument(
        '--compile',
        nargs='?',
        const='default',
        choices=COMPILE_MODES,
        help='torch.compile the frozen towers (frozen weights constant-'
        "folded); a mode may follow, 'reduce-overhead' adds CUDA graphs")
    parser.add_argument(
        '--launcher',
        choices=LAUNCHERS,
        default='none',
        help='job launcher: pytorch under torchrun (tools/dist_test.sh), '
        'slurm under srun (tools/slurm_test.sh), mpi under mpirun; the '
        'backend is nccl with CUDA, else gloo (env_cfg.dist_cfg.backend '
        'overrides)')
    parser.add_argument(
        '--verbose',
        action='store_true',
        help="log at DEBUG, with MMEngine's environment and config dump")
    args = parser.parse_args(argv)
    if args.out and not args.out.endswith('.json'):
        parser.error('--out must end with .json')
    if args.dump and not args.dump.endswith(('.pkl', '.pickle')):
        parser.error('--dump must end with .pkl or .pickle')
    return args


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Apply the command line to the config."""
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.launcher = args.launcher
    if args.verbose:
        cfg.log_level = 'DEBUG'
    if args.allow_other_clip_weights:
        cfg.allow_other_clip_weights = True
    # The runner adds the PrecisionHook of the config's `precision`, and
    # the hook of a zero-shot model's examples and prototype cache.
    if args.precision:
        cfg.precision = args.precision
    if args.compile:
        mode = None if args.compile == 'default' else args.compile
        cfg.custom_hooks = [
            *cfg.get('custom_hooks', []),
            dict(type='CompileHook', mode=mode)
        ]
    if args.dump:
        evaluator = cfg.test_evaluator
        if not isinstance(evaluator, (list, tuple)):
            evaluator = [evaluator]
        cfg.test_evaluator = [
            *evaluator,
            dict(type='DumpResults', out_file_path=args.dump)
        ]
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    return cfg


def resolve_checkpoint(checkpoint: str) -> str:
    """A file as is; a zoo name through the official-weights cache."""
    from mmprompt.utils.checkpoint import find_checkpoint
    if osp.isfile(checkpoint) or '://' in checkpoint:
        return checkpoint
    from mmprompt.apis import hub, model_zoo
    if checkpoint.lower() in model_zoo.load_zoo():
        return hub.get_checkpoint(checkpoint)
    if checkpoint.endswith(('.pth', '.safetensors', '.pt')) or \
            osp.sep in checkpoint:
        return find_checkpoint(checkpoint)
    raise model_zoo.UnknownModelError(
        f'checkpoint {checkpoint!r} is neither a file nor a model of the '
        f'zoo; {model_zoo.close_names(checkpoint, model_zoo.list_models())}')


def check_outputs(args: argparse.Namespace) -> None:
    """Refuse, before any work, a --out / --dump that cannot be written,
    is an input, or would replace a file without --force."""
    for path in (args.out, args.dump):
        if path:
            check_output(path, force=args.force,
                         inputs=[args.config, args.checkpoint])


def build_runner(cfg: Config, config_path: str) -> 'Runner':
    """The Runner and its test loop (model, dataset), or one line on a
    config typo or missing data."""
    from mmprompt.datasets.integrity import cifar_offline_hint
    from mmprompt.registry import RUNNERS
    from mmprompt.utils.config import config_errors, format_once
    with config_errors(cfg, config_path):
        runner = RUNNERS.build(format_once(cfg))
        try:
            runner.test_loop  # builds the dataset and the dataloader
        except (OSError, FileNotFoundError) as e:
            raise UserError(
                f'{config_path}: the test dataset cannot be read '
                f'({type(e).__name__}: {str(e).splitlines()[0]})' +
                cifar_offline_hint(cfg.test_dataloader.dataset)) from None
    return runner


def write_json(path: str, payload: dict) -> None:
    """Write ``payload`` to ``path`` atomically."""
    with atomic_write(path, 'w') as f:
        json.dump(payload, f, indent=2)
        f.write('\n')


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    from mmengine.dist import get_dist_info, is_main_process
    from mmengine.logging import print_log

    from mmprompt.apis.builder import use_zoo_tokenizer
    from mmprompt.apis.model_zoo import load_config
    from mmprompt.datasets.integrity import (check_cifar_files,
                                             check_image_folder)
    from mmprompt.engine.test_hooks import (CheckLabelsHook,
                                            TestProgressHook, TestSpeedHook)
    from mmprompt.utils.config import require_keys
    from mmprompt.utils.dist import setup_distributed
    check_outputs(args)
    checkpoint = resolve_checkpoint(args.checkpoint)
    cfg = load_config(args.config)[0]
    require_keys(cfg, ('model', 'test_dataloader'), args.config)
    cfg = merge_args(cfg, args)
    # A zoo name's tokenizer file (SigLIP) came with its weights.
    use_zoo_tokenizer(cfg, args.checkpoint)
    check_cifar_files(cfg.test_dataloader.dataset)
    check_image_folder(cfg.test_dataloader.dataset, 'test_dataloader.dataset')
    setup_distributed(cfg, args.launcher, training=False)
    # QuietRunner loads it: strictly, or a learned-prompt file over its
    # CLIP (whose categories then default to the file's).
    cfg.load_from = checkpoint
    runner = build_runner(cfg, args.config)
    print_log(
        f'Evaluating {args.checkpoint} on '
        f'{len(runner.test_dataloader.dataset)} images ({args.config})',
        logger='current')
    # Before the loop: a checkpoint that does not fit fails at once.
    runner.load_checkpoint(checkpoint)
    runner.register_hook(CheckLabelsHook())
    if not args.no_progress:
        runner.register_hook(TestProgressHook())
    speed = TestSpeedHook()
    runner.register_hook(speed)
    metrics = runner.test()
    metrics = {k: float(v) for k, v in metrics.items()}
    width = max(len(k) for k in metrics)
    table = '\n'.join(f'  {k:<{width}}  {v:8.3f}' for k, v in metrics.items())
    print_log(f'Results of {args.config}:\n{table}', logger='current')
    speed = speed.summary()
    after = speed['images_per_s_after_first_batch']
    print_log(
        f"{speed['images']} images in {speed['seconds']:.1f} s: "
        f"{speed['images_per_s']:.1f} img/s for the whole evaluation" +
        (f', {after:.1f} img/s after the first batch' if after else ''),
        logger='current')
    if args.out and is_main_process():
        write_json(
            args.out,
            dict(
                config=args.config,
                checkpoint=args.checkpoint,
                num_samples=len(runner.test_dataloader.dataset),
                world_size=get_dist_info()[1],
                metrics=metrics,
                speed=speed))
        print_log(f'Metrics written to {args.out}', logger='current')
    return metrics


if __name__ == '__main__':
    run_tool(main)
