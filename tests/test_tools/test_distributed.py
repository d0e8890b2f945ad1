# Copyright (c) mmprompt contributors. All rights reserved.
"""torch.distributed on CPU: tools under ``torchrun --nproc_per_node 2``
over gloo give the answers of one process.

Every torchrun run is bounded (``testing_utils.dist.run`` kills the whole
process group on a timeout) and uses a port that was free a moment before.
"""
import os
import pickle

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image
from testing_utils import clip as H
from testing_utils import dist as D

from mmprompt.utils.dist import (check_test_sampler, init_distributed,
                                 setup_distributed, shard_bounds)
from mmprompt.utils.errors import InvalidInputError

IN1K_CFG = 'clip/clip_vit-base-p16_zeroshot-cls_in1k.py'
NUM_IMAGES = 7  # not a multiple of 2: the sampler pads rank 1's share
CATEGORIES = [f'thing number {i}' for i in range(5)]


def test_shard_bounds_cover_once():
    for total in (0, 1, 5, 7, 100):
        for world in (1, 2, 3, 8):
            bounds = [shard_bounds(total, r, world) for r in range(world)]
            assert bounds[0][0] == 0 and bounds[-1][1] == total
            assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
            sizes = [b - a for a, b in bounds]
            assert max(sizes) - min(sizes) <= 1


def test_sampler_that_drops_samples_is_refused():
    check_test_sampler(dict(sampler=dict(type='DefaultSampler')))
    with pytest.raises(InvalidInputError, match='round_up=True'):
        check_test_sampler(
            dict(sampler=dict(type='DefaultSampler', round_up=False)))
    with pytest.raises(InvalidInputError, match='shuffle=False'):
        check_test_sampler(
            dict(sampler=dict(type='DefaultSampler', shuffle=True)))


def test_launcher_without_its_environment_is_one_line(monkeypatch):
    for var in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR',
                'MASTER_PORT'):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(InvalidInputError, match='start the tool with '
                       'torchrun'):
        init_distributed('pytorch')
    with pytest.raises(InvalidInputError, match='unknown launcher'):
        init_distributed('ssh')
    assert init_distributed('none') is False


def test_backend_follows_the_device_unless_set():
    from mmengine.config import Config
    cfg = setup_distributed(Config(dict(env_cfg=dict(dist_cfg={}))), 'none')
    expected = 'nccl' if torch.cuda.is_available() else 'gloo'
    assert cfg.env_cfg.dist_cfg.backend == expected
    assert cfg.launcher == 'none'
    cfg = setup_distributed(
        Config(dict(env_cfg=dict(dist_cfg=dict(backend='mpi')))), 'none')
    assert cfg.env_cfg.dist_cfg.backend == 'mpi'


def test_wrapper_skips_ddp_for_frozen_and_evaluation():
    from mmprompt.models.utils import DistributedWrapper
    frozen = nn.Linear(2, 2).requires_grad_(False)
    assert DistributedWrapper(module=frozen) is frozen
    trainable = nn.Linear(2, 2)
    assert DistributedWrapper(module=trainable, training=False) is trainable


def test_wrapper_uses_ddp_without_device_ids_on_cpu(monkeypatch):
    """A one-process gloo group in this process, torn down afterwards."""
    import torch.distributed as dist
    from mmengine.model import MMDistributedDataParallel

    from mmprompt.models.utils import DistributedWrapper
    if dist.is_initialized():
        pytest.skip('a process group is already running in this process')
    port = D.free_port()
    for key, value in dict(
            RANK='0', WORLD_SIZE='1', LOCAL_RANK='0',
            MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port)).items():
        monkeypatch.setenv(key, value)
    assert init_distributed('pytorch', backend='gloo', timeout=60)
    try:
        model = DistributedWrapper(
            module=nn.Linear(2, 2), device_ids=[0])  # dropped on CPU
        assert isinstance(model, MMDistributedDataParallel)
        assert model.device_ids is None
    finally:
        dist.destroy_process_group()


PROTOTYPE_SCRIPT = r'''
import json
import sys
import torch
from mmprompt.models.clip import zero_shot
from mmprompt.models.clip.prototype_cache import PrototypeCache
from mmprompt.models.clip.text_encoder import CLIPTextTransformer
from mmprompt.models.clip.tokenizer import CLIPTokenizer
from mmprompt.utils.dist import init_distributed

init_distributed('pytorch', backend='gloo', timeout=120)
out, cache = sys.argv[1], sys.argv[2]
rank = torch.distributed.get_rank()
torch.manual_seed(0)
encoder = CLIPTextTransformer(
    embed_dims=64, num_layers=2, num_heads=4, out_dims=32).eval()
categories, templates, descriptions, weight = json.loads(sys.argv[3])
descriptions = {int(k): v for k, v in descriptions.items()}
args = (encoder, CLIPTokenizer(), categories, templates, descriptions, weight)
protos = zero_shot.build_text_prototypes_sharded(*args, batch_size=3)
cache = PrototypeCache(cache)
before = cache.load('k' * 64)
cache.save('k' * 64, protos)
after = cache.load('k' * 64)
torch.save(dict(protos=protos, before=before, after=after),
           f'{out}/rank{rank}.pth')
'''


@pytest.mark.slow
def test_prototypes_split_across_ranks_match_one_process(tmp_path):
    """11 categories on 2 ranks (6 + 5), descriptions on both sides of the
    cut; the cache is missed by both, written once, then read by both."""
    import json

    from mmprompt.models.clip import zero_shot
    from mmprompt.models.clip.text_encoder import CLIPTextTransformer
    from mmprompt.models.clip.tokenizer import CLIPTokenizer
    categories = [f'category {i}' for i in range(11)]
    templates = ['a photo of a {}.', 'a low resolution photo of the {}.']
    descriptions = {1: ['one with wings'], 8: ['long', 'a very long tail']}
    spec = [categories, templates, descriptions, 0.5]
    script = tmp_path / 'protos.py'
    script.write_text(PROTOTYPE_SCRIPT)
    cache = tmp_path / 'cache'
    D.run(D.torchrun_argv(str(script), [
        str(tmp_path), str(cache), json.dumps(spec)]), timeout=180)
    torch.manual_seed(0)
    encoder = CLIPTextTransformer(
        embed_dims=64, num_layers=2, num_heads=4, out_dims=32).eval()
    want = zero_shot.build_text_prototypes(
        encoder, CLIPTokenizer(), categories, templates, descriptions, 0.5,
        batch_size=3)
    for rank in (0, 1):
        got = torch.load(tmp_path / f'rank{rank}.pth', weights_only=True)
        assert got['before'] is None
        diff = float((got['protos'] - want).abs().max())
        assert diff <= 1e-6, diff
        assert torch.equal(got['after'], got['protos'].cpu()) or \
            rank == 1  # rank 1 reads rank 0's prototypes
        diff = float((got['after'] - want).abs().max())
        assert diff <= 1e-6, diff
    assert os.listdir(cache) == ['k' * 64 + '.pth']


@pytest.mark.parametrize('launcher', ['mpi', 'slurm'])
def test_mpi_and_slurm_variables_start_a_cpu_group(monkeypatch, launcher):
    """Open MPI's / Slurm's variables (one task) become torch's; no CUDA
    call is made on the way."""
    import torch.distributed as dist
    if dist.is_initialized():
        pytest.skip('a process group is already running in this process')
    for key in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK'):
        monkeypatch.setenv(key, '')  # restored after the test, which the
        monkeypatch.delenv(key)  # launcher sets them again
    env = dict(
        mpi=dict(OMPI_COMM_WORLD_RANK='0', OMPI_COMM_WORLD_SIZE='1',
                 OMPI_COMM_WORLD_LOCAL_RANK='0'),
        slurm=dict(SLURM_PROCID='0', SLURM_NTASKS='1', SLURM_LOCALID='0',
                   SLURM_NODELIST='localhost'))[launcher]
    for key, value in dict(env, MASTER_ADDR='127.0.0.1',
                           MASTER_PORT=str(D.free_port())).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(torch.cuda, 'set_device', None)  # would raise
    assert init_distributed(launcher, backend='gloo', timeout=60)
    try:
        assert dist.get_world_size() == 1 and dist.get_backend() == 'gloo'
        assert os.environ['RANK'] == '0' and os.environ['WORLD_SIZE'] == '1'
    finally:
        dist.destroy_process_group()


def write_folder(root, num_images=NUM_IMAGES):
    """An ImageNet-layout folder (val/*.JPEG, meta/val.txt) of random
    images of several sizes, labels cycling over the categories."""
    (root / 'val').mkdir(parents=True)
    (root / 'meta').mkdir()
    rng = np.random.default_rng(0)
    lines = []
    for i in range(num_images):
        pixels = rng.integers(0, 255, (60 + 3 * i, 70, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / 'val' / f'{i}.JPEG', quality=95)
        lines.append(f'{i}.JPEG {i % len(CATEGORIES)}\n')
    (root / 'meta' / 'val.txt').write_text(''.join(lines))
    return root


@pytest.fixture(scope='module')
def clip_setup(tmp_path_factory):
    pytest.importorskip('open_clip')
    tmp = tmp_path_factory.mktemp('dist_clip')
    root = write_folder(tmp / 'data')
    checkpoint = H.write_converted_checkpoint(str(tmp / 'tiny.pth'))
    config = H.write_tiny_config(
        str(tmp / 'cfg.py'),
        IN1K_CFG,
        model=dict(
            categories=CATEGORIES,
            templates=['a photo of a {}.', 'a drawing of the {}.']),
        extra=('test_dataloader.update(batch_size=2, '
               f"dataset=dict(data_root='{root}'))\n"))
    return dict(tmp=tmp, config=config, checkpoint=checkpoint)


def run_test_py(setup, name, nproc, *extra, **torchrun):
    """tools/test.py on ``nproc`` processes; returns (metrics, dump)."""
    out = setup['tmp'] / f'{name}.json'
    dump = setup['tmp'] / f'{name}.pkl'
    args = [
        setup['config'], setup['checkpoint'], '--work-dir',
        str(setup['tmp'] / f'work_{name}'), '--out',
        str(out), '--dump',
        str(dump), '--no-progress', *extra
    ]
    if nproc == 1 and not torchrun:
        D.run([D.sys.executable, D.os.path.join(D.REPO_ROOT, 'tools/test.py'),
               *args])
    else:
        D.run(D.torchrun_argv('tools/test.py', [*args, '--launcher',
                                                'pytorch'],
                              nproc=nproc, **torchrun))
    import json
    with open(out) as f:
        result = json.load(f)
    with open(dump, 'rb') as f:
        return result, pickle.load(f)


def assert_same_predictions(one, two, atol):
    """Same samples in the same order, same labels; scores within atol
    (batches differ between 1 and 2 processes, and CPU kernels may round
    differently for another batch composition)."""
    assert len(one) == len(two) == NUM_IMAGES
    assert [s['img_path'] for s in one] == [s['img_path'] for s in two]
    assert [s['sample_idx'] for s in one] == list(range(NUM_IMAGES))
    for a, b in zip(one, two):
        assert a['pred_label'].tolist() == b['pred_label'].tolist()
        assert a['gt_label'].tolist() == b['gt_label'].tolist()
    diff = max(
        float((a['pred_score'] - b['pred_score']).abs().max())
        for a, b in zip(one, two))
    assert diff <= atol, diff
    return diff


@pytest.fixture(scope='module')
def one_process(clip_setup):
    return run_test_py(clip_setup, 'one', 1)


@pytest.mark.slow
def test_test_py_two_processes_match_one(clip_setup, one_process):
    """7 images on 2 ranks (4 + 3, the sampler pads with image 0): the
    padding never counts, metrics and per-sample predictions match. The
    2-process run builds its prototypes split across the ranks and writes
    the prototype cache once."""
    cache = clip_setup['tmp'] / 'prototypes'
    one, dump_one = one_process
    two, dump_two = run_test_py(clip_setup, 'two', 2, '--cfg-options',
                                f'model.prototype_cache_dir={cache}')
    assert len(os.listdir(cache)) == 1
    assert two['world_size'] == 2 and one['world_size'] == 1
    assert one['num_samples'] == two['num_samples'] == NUM_IMAGES
    assert two['metrics'] == one['metrics']
    assert two['speed']['images'] == NUM_IMAGES
    assert_same_predictions(dump_one, dump_two, atol=1e-6)


def _test_py_args(setup, name):
    return [
        setup['config'], setup['checkpoint'], '--work-dir',
        str(setup['tmp'] / f'work_{name}'), '--out',
        str(setup['tmp'] / f'{name}.json'), '--dump',
        str(setup['tmp'] / f'{name}.pkl'), '--no-progress'
    ]


def _load_run(setup, name):
    import json
    with open(setup['tmp'] / f'{name}.json') as f:
        result = json.load(f)
    with open(setup['tmp'] / f'{name}.pkl', 'rb') as f:
        return result, pickle.load(f)


def _run_all(procs, timeout=240):
    """Wait for every process; kill all of them on a timeout or failure."""
    import subprocess
    outputs = []
    try:
        for p in procs:
            out, _ = p.communicate(timeout=timeout)
            outputs.append(out)
    except subprocess.TimeoutExpired:
        raise AssertionError('timed out')
    finally:
        for p in procs:
            D.kill_group(p)
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, out[-4000:]


def _start(argv, **env):
    import subprocess
    return subprocess.Popen(
        argv, cwd=D.REPO_ROOT, env=D.tool_env(**env),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)


@pytest.mark.slow
def test_two_nodes_on_one_machine(clip_setup, one_process):
    """tools/dist_test.sh twice, NNODES=2 and NODE_RANK 0 / 1 on
    127.0.0.1, one process per node: the multi-node rendezvous."""
    port = str(D.free_port())
    script = D.os.path.join(D.REPO_ROOT, 'tools', 'dist_test.sh')
    args = _test_py_args(clip_setup, 'nodes')
    procs = [
        _start(['bash', script, *args[:2], '1', *args[2:]], NNODES='2',
               NODE_RANK=str(rank), PORT=port, MASTER_ADDR='127.0.0.1')
        for rank in (0, 1)
    ]
    _run_all(procs)
    two, dump_two = _load_run(clip_setup, 'nodes')
    one, dump_one = one_process
    assert two['world_size'] == 2
    assert two['metrics'] == one['metrics']
    assert_same_predictions(dump_one, dump_two, atol=1e-6)


FAKE_SRUN = r'''#!/usr/bin/env bash
# srun stand-in: --ntasks=N starts N copies with Slurm's variables.
N=1
while [[ "$1" == -* ]]; do
  case "$1" in --ntasks=*) N="${1#--ntasks=}";; -p) shift;; esac
  shift
done
pids=()
for ((i = 0; i < N; i++)); do
  SLURM_PROCID=$i SLURM_LOCALID=$i SLURM_NTASKS=$N \
  SLURM_NODELIST=localhost "$@" &
  pids+=($!)
done
status=0
for p in "${pids[@]}"; do wait $p || status=1; done
exit $status
'''


@pytest.mark.slow
def test_slurm_script_and_launcher(clip_setup, one_process, tmp_path):
    """tools/slurm_test.sh through a stand-in srun on PATH (2 tasks,
    GPUS_PER_NODE=0): the slurm launcher maps Slurm's variables on CPU."""
    srun = tmp_path / 'bin' / 'srun'
    srun.parent.mkdir()
    srun.write_text(FAKE_SRUN)
    srun.chmod(0o755)
    script = D.os.path.join(D.REPO_ROOT, 'tools', 'slurm_test.sh')
    args = _test_py_args(clip_setup, 'slurm')
    proc = _start(
        ['bash', script, 'cpu', 'job', *args],
        PATH=f'{srun.parent}{D.os.pathsep}{D.os.environ["PATH"]}',
        GPUS='2', GPUS_PER_NODE='0', MASTER_ADDR='127.0.0.1',
        MASTER_PORT=str(D.free_port()))
    _run_all([proc])
    two, dump_two = _load_run(clip_setup, 'slurm')
    one, dump_one = one_process
    assert two['world_size'] == 2
    assert two['metrics'] == one['metrics']
    assert_same_predictions(dump_one, dump_two, atol=1e-6)


TRAIN_CFG = 'coop/coop_vit-base-p16_16shots_custom.py'


@pytest.mark.slow
def test_train_two_processes_match_one(tmp_path):
    """CoOp through tools/train.py: 1 process with batch 8 and 2 with 4
    each (the same global batch; DefaultSampler deals rank r the samples
    r, r + 2, ... of the same shuffled order, DDP averages the two
    gradients): the learned contexts agree within 1e-5 after 2 epochs."""
    base = D.os.path.join(D.REPO_ROOT, 'configs', TRAIN_CFG)
    if not D.os.path.isfile(D.os.path.join(D.REPO_ROOT, 'tools',
                                           'train.py')) or not \
            D.os.path.isfile(base):
        pytest.skip('tools/train.py and the CoOp configs are not here yet')
    from test_models.test_prompt_learning import clip_cfg

    from mmprompt.registry import MODELS
    from mmprompt.utils.checkpoint import save_checkpoint
    torch.manual_seed(0)
    clip = MODELS.build(clip_cfg(tiny=True))
    clip.init_weights()
    clip_path = str(tmp_path / 'clip.pth')
    save_checkpoint(clip.state_dict(), {}, clip_path)
    rng = np.random.default_rng(0)
    for c in ('cat', 'dog', 'car', 'tree'):
        folder = tmp_path / 'data' / 'train' / c
        folder.mkdir(parents=True)
        for i in range(4):
            pixels = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f'{i}.png')
    cfg = dict(clip_cfg(tiny=True),
               init_cfg=dict(type='Pretrained', checkpoint=clip_path))
    pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
    config = tmp_path / 'coop.py'
    config.write_text(f"""_base_ = [{base!r}]
model = dict(clip=dict(_delete_=True, **{cfg!r}), n_ctx=4)
train_dataloader = dict(num_workers=0, batch_size=8, dataset=dict(
    shots=4, dataset=dict(data_root={str(tmp_path / 'data')!r},
    pipeline={pipeline!r})))
optim_wrapper = dict(optimizer=dict(lr=0.5))
param_scheduler = []
train_cfg = dict(max_epochs=2)
default_hooks = dict(checkpoint=dict(interval=100))
""")
    train = D.os.path.join(D.REPO_ROOT, 'tools', 'train.py')
    D.run([D.sys.executable, train, str(config), '--work-dir',
           str(tmp_path / 'one')])
    D.run(D.torchrun_argv('tools/train.py', [
        str(config), '--work-dir', str(tmp_path / 'two'), '--launcher',
        'pytorch', '--cfg-options', 'train_dataloader.batch_size=4'
    ]))
    ctx = [
        torch.load(tmp_path / run / 'learned.pth',
                   weights_only=True)['state_dict']['prompt_learner.ctx']
        for run in ('one', 'two')
    ]
    largest = float(ctx[0].abs().max())
    assert largest > 0.2  # it trained: the context starts as N(0, 0.02)
    diff = float((ctx[0] - ctx[1]).abs().max())
    print(f'CoOp context, 2 vs 1 process: max abs diff {diff:.2e} '
          f'(largest entry {largest:.2f})')
    assert diff <= 1e-5, diff


CACHE_SCRIPT = r'''
import os
import sys
import torch
from mmengine.dataset import DefaultSampler
from mmpretrain.structures import DataSample
from mmprompt.engine.prompt_hooks import collect_features
from mmprompt.utils.dist import init_distributed

if 'RANK' in os.environ:
    init_distributed('pytorch', backend='gloo', timeout=120)
INDICES = [40, 3, 17, 8, 99, 5, 61]  # a few-shot subset of a larger set


class Clip(torch.nn.Module):
    proj_dims = 4

    def __init__(self):
        super().__init__()
        self.logit_scale = torch.nn.Parameter(torch.tensor(1.))
        self.proj = torch.nn.Linear(6, 4)

    def extract_image_feat(self, x):
        return self.proj(x)


class Model:
    torch.manual_seed(0)
    clip = Clip()

    @staticmethod
    def data_preprocessor(batch, training):
        return batch


class Dataset:
    indices = INDICES

    def __len__(self):
        return len(INDICES)


class Loader:
    """Each rank's DefaultSampler share (7 samples: rank 1's is padded),
    shuffled; pass p shows sample r as its p-th "augmented" view."""

    def __init__(self):
        self.dataset = Dataset()
        self.sampler = DefaultSampler(self.dataset, shuffle=True, seed=0)
        self.passes = 0

    def __iter__(self):
        self.passes += 1
        rows = list(self.sampler)
        for start in range(0, len(rows), 2):
            part = rows[start:start + 2]
            yield dict(
                inputs=torch.stack([
                    torch.sin(torch.arange(6.) * self.passes + r)
                    for r in part
                ]),
                data_samples=[
                    DataSample(metainfo=dict(
                        sample_idx=INDICES[r])).set_gt_label(r % 3)
                    for r in part
                ])


with torch.no_grad():
    feats, labels = collect_features(Model, Loader(), passes=3)
rank = int(os.environ.get('RANK', 0))
torch.save(dict(feats=feats, labels=labels),
           os.path.join(sys.argv[1], f'rank{rank}.pth'))
'''


@pytest.mark.slow
def test_tip_adapter_cache_on_two_ranks_matches_one(tmp_path, monkeypatch):
    """Tip-Adapter-F's cache features (3 augmented passes, each rank its
    shuffled share, rank 1's padded) all-reduced: both ranks get one
    process's tensors."""
    import runpy
    import sys
    script = tmp_path / 'cache.py'
    script.write_text(CACHE_SCRIPT)
    one = tmp_path / 'one'
    two = tmp_path / 'two'
    one.mkdir()
    two.mkdir()
    monkeypatch.setattr(sys, 'argv', [str(script), str(one)])
    runpy.run_path(str(script), run_name='__main__')
    want = torch.load(one / 'rank0.pth', weights_only=True)
    D.run(D.torchrun_argv(str(script), [str(two)]), timeout=180)
    for rank in (0, 1):
        got = torch.load(two / f'rank{rank}.pth', weights_only=True)
        assert torch.equal(got['labels'], want['labels'])
        diff = float((got['feats'] - want['feats']).abs().max())
        assert diff <= 1e-6, diff
