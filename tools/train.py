# Copyright (c) mmprompt contributors. All rights reserved.
"""Train a prompt-learning model (CoOp, CoCoOp, Tip-Adapter-F) on a frozen
CLIP with MMEngine's Runner; what was learned goes to WORK_DIR/learned.pth.

What the config leaves to the run (the few-shot draw's list file, the
model's categories and cache size from the training set) the configs'
runner fills in (:func:`mmprompt.engine.run_config.complete_config`), and
the hooks are the schedule's: ``RUNNERS.build(cfg).train()`` runs what this
tool runs.

Example:
    python tools/train.py configs/coop/coop_vit-base-p16_16shots_cifar100.py \
        --work-dir work_dirs/coop_cifar100
"""
import argparse
import os.path as osp
from typing import List, Optional

from mmengine.config import Config, DictAction

from mmprompt.utils.errors import run_tool
from mmprompt.utils.io import check_output
from mmprompt.utils.options import LAUNCHERS

# torch, MMEngine's Runner and the models are imported where they are used:
# --help and the argument errors come at once.

LEARNED = 'learned.pth'
# What merge_args and the Runner read.
REQUIRED = ('model', 'train_dataloader', 'train_cfg', 'optim_wrapper')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Train prompts on a frozen CLIP.')
    parser.add_argument(
        'config',
        help='config file, or mmprompt::<path under configs> (e.g. '
        'mmprompt::coop/coop_vit-base-p16_16shots_custom.py)')
    parser.add_argument(
        '--work-dir', help='where to save logs, checkpoints and the learned '
        'prompts (default: ./work_dirs/CONFIG)')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from this checkpoint, or from the latest one in the '
        'work dir when no path is given')
    parser.add_argument(
        '--amp', action='store_true', help='automatic mixed precision')
    parser.add_argument(
        '--force',
        action='store_true',
        help=f'train again in a work dir that holds a {LEARNED}')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, e.g. train_cfg.max_epochs=10')
    parser.add_argument(
        '--launcher',
        choices=LAUNCHERS,
        default='none',
        help='job launcher (tools/dist_train.sh uses pytorch)')
    parser.add_argument('--debug', action='store_true',
                        help='show tracebacks of expected errors')
    parser.add_argument(
        '--verbose',
        action='store_true',
        help="log at DEBUG, with MMEngine's environment and config dump")
    return parser.parse_args(argv)


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Apply the command line to the config."""
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.launcher = args.launcher
    if args.verbose:
        cfg.log_level = 'DEBUG'
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    check_data_folders(cfg)
    return cfg


def check_data_folders(cfg: Config) -> None:
    """The training and validation image folders are there, before anything
    is built (training never reads the test set)."""
    from mmprompt.datasets.integrity import check_image_folder
    for name in ('train_dataloader', 'val_dataloader'):
        dataset = (cfg.get(name) or {}).get('dataset')
        if dataset:
            check_image_folder(dataset, f'{name}.dataset')


def main(argv: Optional[List[str]] = None) -> str:
    args = parse_args(argv)
    from mmengine.dist import is_main_process
    from mmengine.logging import print_log
    from mmengine.model import is_model_wrapper

    from mmprompt.apis.model_zoo import load_config
    from mmprompt.registry import RUNNERS
    from mmprompt.utils.config import config_errors, format_once, require_keys
    from mmprompt.utils.dist import setup_distributed
    cfg = load_config(args.config)[0]
    require_keys(cfg, REQUIRED, args.config)
    with config_errors(cfg, args.config):
        cfg = merge_args(cfg, args)
    learned = osp.join(cfg.work_dir, LEARNED)
    # Before training: the learned file can be written, and replaces one
    # only with --force (or --resume).
    check_output(learned, args.force or bool(args.resume),
                 inputs=[args.config], flag='--force (or --resume)')
    setup_distributed(cfg, args.launcher, training=True)
    with config_errors(cfg, args.config):
        runner = RUNNERS.build(format_once(cfg))
        epochs = cfg.train_cfg.get('max_epochs')
        print_log(
            f'Training {cfg.model.type}'
            f"{f' for {epochs} epochs' if epochs else ''}; logs, "
            f'checkpoints and {LEARNED} in {cfg.work_dir}',
            logger='current')
        runner.train()
    model = runner.model
    model = model.module if is_model_wrapper(model) else model
    if is_main_process():
        from mmprompt.models.prompt_learning import save_learned
        model.set_categories(model.trained_categories)
        save_learned(model, learned, force=True)
        print_log(f'Learned prompts written to {learned}', logger='current')
    return learned


if __name__ == '__main__':
    run_tool(main)
