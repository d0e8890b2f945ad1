# Copyright (c) mmprompt contributors. All rights reserved.
"""Moved: ``python tools/infer.py tag`` tags folders, lists and shards,
resumably. This prints the equivalent command and exits 2."""
import shlex
import sys
from typing import List, Optional


def main(argv: Optional[List[str]] = None) -> int:
    args = [{'--config': '--model'}.get(a, a) for a in
            (sys.argv[1:] if argv is None else argv)
            if a not in ('--recursive', '--compile')]  # no such options
    command = shlex.join(['python', 'tools/infer.py', 'tag', *args])
    sys.stderr.write(f'demo/tag_images.py is now tools/infer.py tag; use: '
                     f'{command}\n')
    return 2


if __name__ == '__main__':
    sys.exit(main())
