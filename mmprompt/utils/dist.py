# Copyright (c) mmprompt contributors. All rights reserved.
"""torch.distributed for every tool, on GPUs (NCCL) and on CPUs (gloo).

MMEngine's ``init_dist`` calls ``torch.cuda.set_device`` for every launcher,
so without a GPU every rank dies with "Found no NVIDIA driver".
"""
import atexit
import datetime
import os
import subprocess
from typing import List, Optional, Sequence, Tuple

import torch
import torch.distributed as torch_dist
from mmengine.config import Config
from mmengine.dist import get_dist_info, init_dist, is_distributed

from .errors import InvalidInputError
from .options import LAUNCHERS
DEFAULT_PORT = '29500'


def default_backend() -> str:
    """``'nccl'`` where CUDA is available, else ``'gloo'``."""
    return 'nccl' if torch.cuda.is_available() else 'gloo'


def _slurm_env(port: Optional[int]) -> None:
    """MMEngine's Slurm variables to torch's (``RANK``, ``MASTER_ADDR``...)."""
    nodes = os.environ['SLURM_NODELIST']
    os.environ['RANK'] = os.environ['SLURM_PROCID']
    os.environ['WORLD_SIZE'] = os.environ['SLURM_NTASKS']
    os.environ['LOCAL_RANK'] = os.environ.get('SLURM_LOCALID', '0')
    if port is not None:
        os.environ['MASTER_PORT'] = str(port)
    os.environ.setdefault('MASTER_PORT', DEFAULT_PORT)
    if 'MASTER_ADDR' not in os.environ:
        os.environ['MASTER_ADDR'] = subprocess.getoutput(
            f'scontrol show hostname {nodes} | head -n1')


def _mpi_env() -> None:
    """Open MPI's variables to torch's; ``MASTER_ADDR`` must be set."""
    if 'MASTER_ADDR' not in os.environ:
        raise InvalidInputError(
            'the mpi launcher needs MASTER_ADDR (the address of rank 0)')
    os.environ['RANK'] = os.environ['OMPI_COMM_WORLD_RANK']
    os.environ['WORLD_SIZE'] = os.environ['OMPI_COMM_WORLD_SIZE']
    os.environ['LOCAL_RANK'] = os.environ['OMPI_COMM_WORLD_LOCAL_RANK']
    os.environ.setdefault('MASTER_PORT', DEFAULT_PORT)


_LAUNCHER_VARS = dict(
    pytorch=('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT'),
    slurm=('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST'),
    mpi=('OMPI_COMM_WORLD_RANK', 'OMPI_COMM_WORLD_SIZE',
         'OMPI_COMM_WORLD_LOCAL_RANK'))


def init_distributed(launcher: str,
                     backend: Optional[str] = None,
                     timeout: Optional[float] = None,
                     port: Optional[int] = None) -> bool:
    """Start the default process group, on any device: MMEngine's launchers
    and variables, delegated to MMEngine with a GPU, gloo without one.

    Args:
        launcher (str): One of :data:`LAUNCHERS`.
        backend (str, optional): Defaults to :func:`default_backend`.
        timeout (float, optional): Seconds a collective may wait. Defaults
            to torch's (30 minutes).
        port (int, optional): Slurm's rendezvous port. Defaults to
            ``MASTER_PORT``, else 29500.

    Returns:
        bool: Whether a process group is running afterwards.

    Raises:
        InvalidInputError: For an unknown launcher, or missing launcher
            variables.
    """
    if launcher not in LAUNCHERS:
        raise InvalidInputError(
            f'unknown launcher {launcher!r}; choose one of {LAUNCHERS}')
    if launcher == 'none':
        return is_distributed()
    if is_distributed():
        return True
    missing = [v for v in _LAUNCHER_VARS[launcher] if v not in os.environ]
    if missing:
        how = dict(
            pytorch='torchrun (tools/dist_test.sh)',
            slurm='srun (tools/slurm_test.sh)',
            mpi='mpirun')[launcher]
        raise InvalidInputError(
            f'--launcher {launcher} needs {", ".join(missing)} in the '
            f'environment: start the tool with {how}, or use --launcher '
            'none')
    backend = backend or default_backend()
    kwargs = {}
    if timeout is not None:
        kwargs['timeout'] = datetime.timedelta(seconds=float(timeout))
    if torch.cuda.is_available():
        if launcher == 'slurm' and port is not None:
            kwargs['port'] = port
        init_dist(launcher, backend=backend, **kwargs)
        atexit.register(_destroy_process_group)
        return True
    if backend == 'nccl':
        raise InvalidInputError(
            'the nccl backend needs CUDA, which this machine does not have; '
            'use env_cfg.dist_cfg.backend=gloo (the default without a GPU)')
    if launcher == 'slurm':
        _slurm_env(port)
    elif launcher == 'mpi':
        _mpi_env()
    torch_dist.init_process_group(
        backend=backend, init_method='env://', **kwargs)
    # Before the interpreter tears down gloo's threads, which aborts a rank
    # now and then (SIGABRT, seen under load in CI).
    atexit.register(_destroy_process_group)
    return True


def _destroy_process_group() -> None:
    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.destroy_process_group()


def check_test_sampler(dataloader_cfg: dict) -> None:
    """Refuse a sampler setting whose padding would count in the metrics.

    ``collect_results`` cuts the interleaved results at the dataset size,
    which drops ``DefaultSampler``'s padding at the end only with
    ``round_up=True`` and ``shuffle=False``.

    Args:
        dataloader_cfg (dict): A test or validation dataloader config.
    """
    sampler = dataloader_cfg.get('sampler') or {}
    kind = str(sampler.get('type', 'DefaultSampler')).split('.')[-1]
    if kind != 'DefaultSampler':
        return
    if not sampler.get('round_up', True):
        raise InvalidInputError(
            'a distributed evaluation needs sampler round_up=True: without '
            'it MMEngine drops real samples when it gathers the results')
    if sampler.get('shuffle', False):
        raise InvalidInputError(
            'a distributed evaluation needs sampler shuffle=False (results '
            'are gathered in dataset order)')


def setup_distributed(cfg: Config,
                      launcher: str,
                      training: bool = True) -> Config:
    """Prepare ``cfg`` for :class:`mmengine.runner.Runner` and start the group:
    the backend from the device unless set, ``DistributedWrapper`` unless
    another wrapper is set, the evaluation samplers checked.

    Args:
        cfg (Config): The merged config, changed in place and returned.
        launcher (str): One of :data:`LAUNCHERS`.
        training (bool): False to never wrap the model in DDP (evaluation,
            inference). Defaults to True.
    """
    cfg.launcher = launcher
    env_cfg = cfg.setdefault('env_cfg', {})
    dist_cfg = env_cfg.setdefault('dist_cfg', {})
    if not dist_cfg.get('backend'):
        dist_cfg['backend'] = default_backend()
    if launcher == 'none':
        return cfg
    wrapper = cfg.get('model_wrapper_cfg')
    if wrapper is None:
        wrapper = cfg.model_wrapper_cfg = dict(type='DistributedWrapper')
    if str(wrapper.get('type')).split('.')[-1] == 'DistributedWrapper':
        wrapper['training'] = training
    for name in ('test_dataloader', 'val_dataloader'):
        if cfg.get(name):
            check_test_sampler(cfg[name])
    init_distributed(
        launcher,
        backend=dist_cfg['backend'],
        timeout=dist_cfg.get('timeout'),
        port=dist_cfg.get('port'))
    return cfg


def shard_bounds(total: int, rank: int, world_size: int) -> Tuple[int, int]:
    """The contiguous ``[start, stop)`` share of ``total`` items of a rank;
    the first ``total % world_size`` ranks get one more.

    Args:
        total (int): Number of items.
        rank (int): This process's rank.
        world_size (int): Number of processes.
    """
    base, extra = divmod(total, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def all_gather_rows(rows: torch.Tensor, counts: Sequence[int]) -> torch.Tensor:
    """Concatenate every rank's rows, in rank order, padded to the largest
    share for one ``all_gather`` of equal shapes (NCCL needs it).

    Args:
        rows (torch.Tensor): ``(counts[rank], ...)`` this rank's rows.
        counts (Sequence[int]): Rows of every rank.

    Returns:
        torch.Tensor: ``(sum(counts), ...)``, on the device of ``rows``.
    """
    rank, world_size = get_dist_info()
    if world_size == 1:
        return rows
    if rows.size(0) != counts[rank]:
        raise ValueError(f'rank {rank} has {rows.size(0)} rows, expected '
                         f'{counts[rank]}')
    comm = torch.device('cuda', torch.cuda.current_device()) \
        if torch_dist.get_backend() == 'nccl' else torch.device('cpu')
    longest = max(counts)
    padded = rows.new_zeros((longest, *rows.shape[1:])).to(comm)
    padded[:rows.size(0)] = rows.to(comm)
    gathered: List[torch.Tensor] = [
        torch.empty_like(padded) for _ in range(world_size)
    ]
    torch_dist.all_gather(gathered, padded)
    return torch.cat([g[:n] for g, n in zip(gathered, counts)]).to(rows.device)
