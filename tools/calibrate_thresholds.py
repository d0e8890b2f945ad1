# Copyright (c) mmprompt contributors. All rights reserved.
"""Choose per-tag thresholds of a RAM / RAM++ checkpoint on a labelled set.

The set is the ``test_dataloader`` of a config (``TaggingDataset``, the
annotation format tools/test.py reads). The new thresholds are written into
a copy of the checkpoint (closed set: the ``class_threshold`` buffer; open
set: ``meta['openset_thresholds']``), the input is left untouched, and a
report (per tag and overall, before / after) goes to JSON and text.

Example:
    python tools/calibrate_thresholds.py \
        configs/ram/ram_swin-large-p4-w12_384px_openimages-common.py \
        ram.safetensors ram_calibrated.safetensors --report calib.json
"""
import argparse
import json
import os.path as osp
from typing import List, Optional

from mmengine.config import DictAction

from mmprompt.utils.errors import InvalidInputError, run_tool
from mmprompt.utils.io import atomic_write, check_output
from mmprompt.utils.options import CALIBRATION_MODES


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='config with a tagging test set')
    parser.add_argument('checkpoint', help='converted RAM / RAM++ weights')
    parser.add_argument('out', help='the calibrated checkpoint to write')
    parser.add_argument(
        '--report', help='JSON report (a .txt beside it gets the table); '
        'default: OUT with .json')
    parser.add_argument('--mode', choices=CALIBRATION_MODES, default='f1')
    parser.add_argument('--target-precision', type=float,
                        help='for --mode precision, in (0, 1]')
    parser.add_argument('--min-support', type=int, default=1,
                        help='fewest positive images to calibrate a tag')
    parser.add_argument('--force', action='store_true',
                        help='overwrite the outputs')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args(argv)
    if args.report is None:
        args.report = osp.splitext(args.out)[0] + '.json'
    if not args.report.endswith('.json'):
        parser.error('--report must end with .json')
    return args


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    text_report = osp.splitext(args.report)[0] + '.txt'
    for path in (args.out, args.report, text_report):
        check_output(path, args.force, inputs=[args.checkpoint, args.config])
    if len({osp.abspath(p) for p in (args.out, args.report, text_report)
            }) < 3:
        raise InvalidInputError('the checkpoint and the reports need '
                                'different paths')
    from mmengine.logging import print_log

    from mmprompt.apis.tag_calibration import collect_scores, write_thresholds
    from mmprompt.evaluation.calibration import (calibrate_thresholds,
                                                 calibration_report,
                                                 format_report)
    data = collect_scores(args.config, args.checkpoint, args.cfg_options)
    result = calibrate_thresholds(data['scores'], data['target'],
                                  data['thresholds'], args.mode,
                                  args.target_precision, args.min_support,
                                  data['never'])
    report = calibration_report(data['names'], data['scores'],
                                data['target'], data['thresholds'], result)
    report.update(
        config=args.config,
        checkpoint=args.checkpoint,
        out=args.out,
        mode=args.mode,
        target_precision=args.target_precision,
        min_support=args.min_support,
        open_set=data['open_set'],
        num_images=int(data['scores'].size(0)))
    write_thresholds(args.checkpoint, args.out, data, result['thresholds'],
                     args.force)
    text = format_report(report)
    with atomic_write(args.report, 'w') as f:
        json.dump(report, f, indent=2, ensure_ascii=False)
        f.write('\n')
    with atomic_write(text_report, 'w') as f:
        f.write(text + '\n')
    kept = [t for t in report['tags'] if t['reason']]
    print_log(
        f'{text}\n{len(report["tags"]) - len(kept)} tags calibrated, '
        f'{len(kept)} kept; written {args.out}, {args.report}, '
        f'{text_report}',
        logger='current')
    return report


if __name__ == '__main__':
    run_tool(main)
