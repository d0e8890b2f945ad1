# Copyright (c) mmprompt contributors. All rights reserved.
"""Start tools under ``torchrun`` on CPU (gloo) with a bounded time
(``from testing_utils import dist``)."""
import os
import signal
import socket
import subprocess
import sys
from typing import List, Optional, Sequence

from . import REPO_ROOT


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def tool_env(**extra: str) -> dict:
    """The environment of a tool subprocess: this checkout first on the
    path, one thread per process, no GPU."""
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        [REPO_ROOT, env.get('PYTHONPATH', '')]).rstrip(os.pathsep)
    env.update(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1',
               CUDA_VISIBLE_DEVICES='')
    env.update(extra)
    return env


def torchrun_argv(script: str,
                  args: Sequence[str],
                  nproc: int = 2,
                  port: Optional[int] = None,
                  nnodes: int = 1,
                  node_rank: int = 0) -> List[str]:
    """``python -m torch.distributed.run ... script args`` on 127.0.0.1."""
    return [
        sys.executable, '-m', 'torch.distributed.run',
        f'--nproc_per_node={nproc}', f'--nnodes={nnodes}',
        f'--node_rank={node_rank}', '--master_addr=127.0.0.1',
        f'--master_port={port or free_port()}',
        os.path.join(REPO_ROOT, script), *args
    ]


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL a process started with ``start_new_session`` and its
    children (torchrun's workers)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()


def run(argv: Sequence[str],
        timeout: float = 240,
        check: bool = True,
        **env: str) -> subprocess.CompletedProcess:
    """Run ``argv`` in a new session; on timeout kill the whole group.

    Raises:
        AssertionError: On a timeout, or with ``check`` a non-zero status
            (with the end of the output).
    """
    proc = subprocess.Popen(
        list(argv),
        cwd=REPO_ROOT,
        env=tool_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        raise AssertionError(f'timed out after {timeout} s: {argv}')
    finally:
        kill_group(proc)
    result = subprocess.CompletedProcess(argv, proc.returncode, out)
    if check and proc.returncode != 0:
        raise AssertionError(
            f'exit {proc.returncode}: {" ".join(argv)}\n{out[-4000:]}')
    return result
