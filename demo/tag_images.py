# Copyright (c) mmprompt contributors. All rights reserved.
"""Moved: ``python tools/infer.py tag`` tags folders, lists and shards,
resumably (see its docstring). This prints the equivalent command."""
import shlex
import sys
from typing import List, Optional

RENAMED = {'--config': '--model'}
DROPPED = ('--recursive', '--compile')  # infer.py walks every subfolder


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = [RENAMED.get(a, a) for a in argv if a not in DROPPED]
    sys.stderr.write('demo/tag_images.py is now tools/infer.py tag; use: ' +
                     shlex.join(['python', 'tools/infer.py', 'tag', *args]) +
                     '\n')
    return 2


if __name__ == '__main__':
    sys.exit(main())
