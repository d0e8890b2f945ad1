# Copyright (c) mmprompt contributors. All rights reserved.
"""Regenerate the README's model-zoo table from the metafiles.

Example:
    python tools/misc/model_zoo_table.py            # rewrite README.md
    python tools/misc/model_zoo_table.py --check    # exit 1 if stale
"""
import argparse
import os.path as osp
import sys
from typing import List, Optional

from mmprompt.utils.errors import run_tool

README = osp.join(osp.dirname(osp.dirname(osp.dirname(__file__))),
                  'README.md')


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--readme', default=README, help='default: README.md')
    parser.add_argument(
        '--check', action='store_true', help='only check it is up to date')
    parser.add_argument(
        '--print', action='store_true', help='print the table only')
    args = parser.parse_args(argv)
    from mmprompt.apis.model_zoo import markdown_table, update_readme
    if args.print:
        print(markdown_table())
        return 0
    fresh = update_readme(args.readme, check=args.check)
    if args.check and not fresh:
        sys.stderr.write(f'{args.readme}: the model-zoo table is stale; run '
                         'python tools/misc/model_zoo_table.py\n')
        return 1
    return 0


if __name__ == '__main__':
    run_tool(lambda argv: sys.exit(main(argv)))
