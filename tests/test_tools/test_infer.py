# Copyright (c) mmprompt contributors. All rights reserved.
"""tools/infer.py: bulk tagging / classification / embedding of folders,
lists and WebDataset shards, in chunks that survive a killed run; on 1
process (in-process ``main``) and on 2 (``torchrun`` over gloo)."""
import io
import json
import logging
import os
import os.path as osp
import signal
import tarfile
import time

import numpy as np
import pytest
import torch
from PIL import Image
from testing_utils import REPO_ROOT, load_module
from testing_utils import dist as D
from testing_utils import ram as R

from mmprompt.utils.errors import InvalidInputError, OutputPathError

TOOL = load_module('_mmprompt_tools_infer',
                   osp.join(REPO_ROOT, 'tools', 'infer.py'))
NORMAL = 'ram/ram_swin-large-p4-w12_384px_normal.py'


def png_bytes(seed, size):
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format='PNG')
    return buffer.getvalue()


def write_collection(root, num_files=9, num_shard=5, size=(64, 48)):
    """A folder tree (with one broken file), a list of two of its files
    and a WebDataset shard (image + json per key)."""
    folder = root / 'photos'
    (folder / 'b').mkdir(parents=True)
    for i in range(num_files):
        sub = folder / 'b' if i % 3 == 0 else folder
        (sub / f'im{i:03d}.png').write_bytes(png_bytes(i, size))
    (folder / 'broken.jpg').write_bytes(b'not an image')
    listing = root / 'list.txt'
    listing.write_text('photos/im001.png\nphotos/b/im000.png\n')
    shard = root / 'shard-000.tar'
    with tarfile.open(shard, 'w') as tar:
        for i in range(num_shard):
            for name, data in ((f'{i:06d}.png', png_bytes(100 + i, size)),
                               (f'{i:06d}.json', b'{}')):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return [str(folder), str(listing), str(shard)]


@pytest.fixture(scope='module')
def tagging(tmp_path_factory, ram_vectors_dir):
    root = tmp_path_factory.mktemp('infer')
    checkpoint = R.convert_tiny(ram_vectors_dir, str(root))
    config = R.write_tiny_config(str(root / 'normal.py'), NORMAL, 20)
    inputs = write_collection(root)
    return dict(root=root, config=config, checkpoint=checkpoint,
                inputs=inputs)


def tag_args(setup, out, *extra):
    return [
        'tag', *setup['inputs'], '--model', setup['config'],
        '--checkpoint', setup['checkpoint'], '--out',
        str(out), '--chunk-size', '3', '--batch-size', '2', '--no-progress',
        *extra
    ]


def read_jsonl(path):
    with open(path, encoding='utf-8') as f:
        return [json.loads(line) for line in f]


def assert_same_records(one, two, atol=2e-6):
    """Same images in the same order, same tags; scores within atol (the
    batches differ between runs and are rounded to 6 decimals)."""
    assert [r['image'] for r in one] == [r['image'] for r in two]
    for a, b in zip(one, two):
        assert a.get('tags') == b.get('tags')
        assert a.get('labels') == b.get('labels')
        assert a.get('error') == b.get('error')
        assert np.allclose(a.get('scores', []), b.get('scores', []),
                           atol=atol, rtol=0)


@pytest.fixture(scope='module')
def reference(tagging):
    """The one-process, in-process run all others are compared with."""
    out = tagging['root'] / 'ref' / 'tags.jsonl'
    summary = TOOL.main(tag_args(tagging, out, '--num-workers', '1'))
    return dict(summary=summary, tags=read_jsonl(out),
                failed=read_jsonl(str(out)[:-6] + '.failed.jsonl'))


def test_tag_folder_list_and_shard_in_input_order(tagging, reference):
    records, failed = reference['tags'], reference['failed']
    names = [r['image'] for r in records]
    folder, listing, shard = tagging['inputs']
    walked = sorted(
        osp.join(dp, f) for dp, _, fs in os.walk(folder) for f in fs
        if f.endswith('.png'))
    listed = ['photos/im001.png', 'photos/b/im000.png']  # as written
    in_shard = [f'{shard}:{i:06d}.png' for i in range(5)]
    assert names == walked + listed + in_shard
    assert [r['key'] for r in records[-5:]] == [f'{i:06d}' for i in range(5)]
    assert failed == [dict(
        image=osp.join(folder, 'broken.jpg'),
        error=f'{osp.join(folder, "broken.jpg")}: not an image file PIL '
        'can read')]
    assert reference['summary']['readable'] == len(records) == 16
    assert reference['summary']['unreadable'] == 1
    # The records equal the inferencer's on the same files.
    from mmprompt.apis import ImageTagger
    tagger = ImageTagger(tagging['config'], tagging['checkpoint'])
    want = tagger(walked[:3], batch_size=3)
    for got, exp in zip(records[:3], want):
        assert got['tags'] == exp['tags']
        assert np.allclose(got['scores'], exp['tag_scores'], atol=2e-6)
    assert not osp.exists(tagging['root'] / 'ref' / 'tags.jsonl.parts')


def test_outputs_are_never_lost(tagging, reference, tmp_path):
    out = tmp_path / 'tags.jsonl'
    with pytest.raises(InvalidInputError, match='no such file'):
        TOOL.main(tag_args(dict(tagging, inputs=[str(tmp_path / 'nope')]),
                           out))
    out.write_text('precious\n')
    with pytest.raises(OutputPathError, match='exists; pass --force'):
        TOOL.main(tag_args(tagging, out))
    assert out.read_text() == 'precious\n'
    inside = osp.join(tagging['inputs'][0], 'tags.jsonl')
    with pytest.raises(OutputPathError, match='inside the input folder'):
        TOOL.main(tag_args(tagging, inside))
    names = tmp_path / 'names.jsonl'  # the model's inputs count too
    names.write_text('cat\n')
    with pytest.raises(OutputPathError, match='is one of the inputs'):
        TOOL.main(tag_args(tagging, names, '--categories', str(names),
                           '--force'))
    assert names.read_text() == 'cat\n'
    TOOL.main(tag_args(tagging, out, '--force', '--num-workers', '0'))
    assert_same_records(read_jsonl(out), reference['tags'])
    with pytest.raises(OutputPathError, match='nothing to resume'):
        TOOL.main(tag_args(tagging, out, '--resume'))


def test_interrupted_run_resumes_without_loss(tagging, reference, tmp_path,
                                              monkeypatch):
    """The third chunk write fails (like a kill); --resume does the rest."""
    from mmprompt.apis import bulk
    out = tmp_path / 'tags.jsonl'
    real_write, calls = bulk.ChunkStore.write, []

    def failing_write(self, c, *args):
        calls.append(c)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_write(self, c, *args)

    monkeypatch.setattr(bulk.ChunkStore, 'write', failing_write)
    with pytest.raises(KeyboardInterrupt):
        TOOL.main(tag_args(tagging, out, '--num-workers', '0'))
    monkeypatch.setattr(bulk.ChunkStore, 'write', real_write)
    parts = sorted(os.listdir(f'{out}.parts'))
    assert parts == ['chunk-0000000.jsonl', 'chunk-0000001.jsonl',
                     'manifest.json']
    with pytest.raises(OutputPathError, match='pass --resume'):
        TOOL.main(tag_args(tagging, out))
    with pytest.raises(OutputPathError, match='used other thresholds;'):
        TOOL.main(tag_args(tagging, out, '--resume', '--threshold', '0.1'))
    summary = TOOL.main(tag_args(tagging, out, '--resume'))
    assert summary['processed'] == 17 - 6
    assert_same_records(read_jsonl(out), reference['tags'])


@pytest.fixture(scope='module')
def clip_model(tmp_path_factory):
    pytest.importorskip('open_clip')
    from testing_utils import clip as H
    root = tmp_path_factory.mktemp('infer_clip')
    checkpoint = H.write_converted_checkpoint(str(root / 'clip.pth'))
    config = H.write_tiny_config(
        str(root / 'cfg.py'),
        'clip/clip_vit-base-p16_zeroshot-cls_in1k.py',
        model=dict(categories=['cat', 'dog', 'car'], templates='simple'))
    inputs = write_collection(root, num_files=4, num_shard=2)
    return dict(root=root, config=config, checkpoint=checkpoint,
                inputs=inputs)


def test_embed_and_classify(clip_model, tmp_path):
    """Embeddings: one row per readable image in input order, equal to the
    model's normalised features; classes: the classifier's top-k."""
    from mmprompt.apis import ZeroShotClassifier
    common = [*clip_model['inputs'], '--model', clip_model['config'],
              '--checkpoint', clip_model['checkpoint'], '--chunk-size', '2',
              '--no-progress', '--num-workers', '0']
    TOOL.main(['embed', *common, '--out', str(tmp_path / 'feats.npy')])
    feats = np.load(tmp_path / 'feats.npy')
    index = read_jsonl(tmp_path / 'feats.index.jsonl')
    assert feats.shape == (len(index), 32) and len(index) == 8
    assert [r['row'] for r in index] == list(range(8))
    assert len(read_jsonl(tmp_path / 'feats.failed.jsonl')) == 1
    classifier = ZeroShotClassifier(clip_model['config'],
                                    clip_model['checkpoint'])
    files = [r['image'] for r in index[:4]]  # the folder's
    model = classifier.model
    with torch.no_grad():
        data = model.data_preprocessor(
            dict(inputs=[classifier.pipeline(f)['inputs'] for f in files]),
            False)
        want = torch.nn.functional.normalize(
            model.extract_image_feat(data['inputs']), dim=-1)
    assert np.abs(feats[:4] - want.numpy()).max() <= 1e-5
    TOOL.main(['classify', *common, '--topk', '2', '--out',
               str(tmp_path / 'classes.jsonl')])
    classes = read_jsonl(tmp_path / 'classes.jsonl')
    want = classifier(files, topk=2)
    for got, exp in zip(classes, want):
        assert got['classes'] == exp['topk_classes']
        assert np.allclose(got['scores'], exp['topk_scores'], atol=2e-6)


@pytest.mark.slow
def test_two_processes_match_one(tagging, reference, tmp_path):
    out = tmp_path / 'tags.jsonl'
    D.run(D.torchrun_argv('tools/infer.py',
                          [*tag_args(tagging, out), '--launcher', 'pytorch']))
    assert_same_records(read_jsonl(out), reference['tags'])
    assert read_jsonl(str(out)[:-6] + '.failed.jsonl') == reference['failed']


def _children(pid):
    """Direct children of ``pid`` (from /proc)."""
    kids = []
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                with open(f'/proc/{entry}/stat') as f:
                    fields = f.read().rsplit(')', 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                kids.append(int(entry))
    return kids


def _rank_of(pid):
    try:
        with open(f'/proc/{pid}/environ', 'rb') as f:
            pairs = [kv for kv in f.read().split(b'\0') if b'=' in kv]
        env = dict(kv.split(b'=', 1) for kv in pairs)
        return int(env.get(b'RANK', b'-1'))
    except OSError:
        return -1


@pytest.mark.slow
def test_rank_killed_then_resumed(tagging, reference, tmp_path):
    """SIGKILL rank 1 once the first chunk is saved; torchrun stops the
    job; ``--resume`` on 2 processes completes it: every image once, the
    same records as one process."""
    out = tmp_path / 'tags.jsonl'
    parts = f'{out}.parts'
    argv = D.torchrun_argv(
        'tools/infer.py',
        [*tag_args(tagging, out), '--chunk-size', '1', '--num-workers', '0',
         '--launcher', 'pytorch'])
    import subprocess
    proc = subprocess.Popen(argv, cwd=REPO_ROOT, env=D.tool_env(),
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.time() + 180
        killed = None
        while time.time() < deadline and killed is None:
            done = [n for n in (os.listdir(parts) if osp.isdir(parts)
                                else []) if n.startswith('chunk-')]
            if done:
                for pid in _children(proc.pid):
                    if _rank_of(pid) == 1:
                        os.kill(pid, signal.SIGKILL)
                        killed = pid
            time.sleep(0.02)
        assert killed, 'rank 1 was never seen running'
        proc.wait(timeout=120)
    finally:
        D.kill_group(proc)
    assert proc.returncode != 0
    saved = [n for n in os.listdir(parts) if n.endswith('.jsonl')]
    assert 0 < len(saved) < 17, saved  # the kill came in the middle
    assert not osp.exists(out)
    D.run(D.torchrun_argv(
        'tools/infer.py',
        [*tag_args(tagging, out), '--chunk-size', '1', '--resume',
         '--launcher', 'pytorch']))
    records = read_jsonl(out)
    assert len({r['image'] for r in records}) == len(records)
    assert_same_records(records, reference['tags'])
    assert read_jsonl(str(out)[:-6] + '.failed.jsonl') == reference['failed']
    assert not osp.exists(parts)


def test_classify_with_learned_prompts(clip_model, tmp_path):
    """A CoOp context saved by save_learned, read back by --learned: the
    model's own predictions, in input order."""
    from mmengine.config import Config
    from testing_utils import clip as H

    from mmprompt.datasets.image_sources import PipelineTransform
    from mmprompt.datasets.transforms import clip_pipeline
    from mmprompt.models.prompt_learning import save_learned
    from mmprompt.registry import MODELS
    base = Config.fromfile(
        osp.join(H.CONFIGS, '_base_', 'models', 'clip_vit-base-p16.py'))
    clip = base.model.to_dict()
    clip.update(type='CLIP', init_cfg=dict(
        type='Pretrained', checkpoint=clip_model['checkpoint']))
    for key in ('templates', 'categories'):
        clip.pop(key, None)
    tiny = H.tiny_model_overrides()
    clip['vision_backbone'].pop('arch')
    clip['vision_backbone'].update(
        {k: v for k, v in tiny['vision_backbone'].items()})
    clip['vision_backbone']['arch'].pop('_delete_')
    clip['text_backbone'].update(tiny['text_backbone'])
    clip['proj_dims'] = tiny['proj_dims']
    model_cfg = dict(type='CoOp', clip=clip, categories=['cat', 'dog', 'car'],
                     n_ctx=4)
    config = tmp_path / 'coop.py'
    config.write_text("default_scope = 'mmprompt'\n"
                      f'model = {model_cfg!r}\n')
    model = MODELS.build(model_cfg)
    model.init_weights()
    torch.manual_seed(3)
    with torch.no_grad():
        model.prompt_learner.ctx.normal_(0, 0.5)
    learned = tmp_path / 'learned.pth'
    save_learned(model, str(learned))
    TOOL.main(['classify', clip_model['inputs'][0], '--model', str(config),
               '--learned', str(learned), '--topk', '2', '--out',
               str(tmp_path / 'classes.jsonl'), '--no-progress',
               '--num-workers', '0'])
    got = read_jsonl(tmp_path / 'classes.jsonl')
    transform = PipelineTransform(clip_pipeline(model.preprocess_args))
    from mmengine.dataset import pseudo_collate
    with torch.no_grad():
        preds = model.eval().test_step(pseudo_collate(
            [transform(Image.open(r['image']).convert('RGB')) for r in got]))
    for record, pred in zip(got, preds):
        top = pred.pred_score.topk(2)
        assert record['labels'] == top.indices.tolist()
        assert np.allclose(record['scores'], top.values.tolist(), atol=2e-6)


def test_categories_argument(tmp_path):
    """One ``--categories`` value is a file or a set name if it is one, else
    a name; a missing .txt is one clear error (it used to reach
    resolve_categories as a string and fail with a TypeError)."""
    from mmprompt.models.clip.prompts import category_spec
    from mmprompt.utils.errors import UserError
    names = tmp_path / 'names.txt'
    names.write_text('cat\ndog\n')
    assert category_spec(None) is None
    assert category_spec(['cat']) == ['cat']
    assert category_spec(['cat', 'dog']) == ['cat', 'dog']
    assert category_spec(['imagenet']) == 'imagenet'
    assert category_spec([str(names)]) == str(names)
    with pytest.raises(UserError, match='no such file'):
        category_spec([str(tmp_path / 'missing.txt')])


def _interrupt_after(monkeypatch, num_writes):
    """Make the chunk write after ``num_writes`` raise KeyboardInterrupt."""
    from mmprompt.apis import bulk
    real_write, calls = bulk.ChunkStore.write, []

    def failing_write(self, c, *args):
        calls.append(c)
        if len(calls) > num_writes:
            raise KeyboardInterrupt
        return real_write(self, c, *args)

    monkeypatch.setattr(bulk.ChunkStore, 'write', failing_write)
    return lambda: monkeypatch.setattr(bulk.ChunkStore, 'write', real_write)


def test_resume_refuses_other_categories_or_checkpoint(
        clip_model, tmp_path, monkeypatch):
    """The manifest holds content digests: an edited category file or a
    checkpoint replaced at the same path is refused by name; restored, the
    run resumes."""
    import shutil
    checkpoint = tmp_path / 'clip.pth'
    shutil.copy(clip_model['checkpoint'], checkpoint)
    names = tmp_path / 'names.txt'
    names.write_text('cat\ndog\ncar\n')
    out = tmp_path / 'classes.jsonl'
    argv = ['classify', *clip_model['inputs'], '--model',
            clip_model['config'], '--checkpoint', str(checkpoint),
            '--categories', str(names), '--chunk-size', '2', '--out',
            str(out), '--no-progress', '--num-workers', '0']
    restore = _interrupt_after(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        TOOL.main(argv)
    restore()
    names.write_text('cat\ndog\nbus\n')
    with pytest.raises(OutputPathError) as info:
        TOOL.main([*argv, '--resume'])
    assert str(info.value) == (
        f'{out}.parts: the interrupted run used other categories; restore '
        'them to resume it, or pass --force instead of --resume to start '
        'over')
    names.write_text('cat\ndog\ncar\n')
    state = torch.load(checkpoint, weights_only=True)
    state['state_dict']['logit_scale'] += 1
    torch.save(state, checkpoint)  # same path, size and name: new content
    with pytest.raises(OutputPathError,
                       match=r'used other checkpoint; restore'):
        TOOL.main([*argv, '--resume'])
    shutil.copy(clip_model['checkpoint'], checkpoint)
    saved = sorted(os.listdir(f'{out}.parts'))  # no lock left behind
    assert len(saved) == 3 and saved[-1] == 'manifest.json', saved
    summary = TOOL.main([*argv, '--resume'])
    assert summary['processed'] == 9 - 4
    assert len(read_jsonl(out)) == 8
    assert not osp.exists(f'{out}.parts')


def test_resume_refuses_other_example_images(clip_model, tmp_path,
                                             monkeypatch):
    """A config's example images are part of the answer: one replaced at
    the same path is refused by name; restored, the run resumes."""
    from PIL import Image
    folder = tmp_path / 'examples'
    for i, name in enumerate(('cat', 'dog')):
        (folder / name).mkdir(parents=True)
        Image.new('RGB', (40, 30), (60 * i, 90, 200)).save(folder / name /
                                                           'a.png')
    config = tmp_path / 'with_examples.py'
    config.write_text(f"_base_ = [{clip_model['config']!r}]\n"
                      f"model = dict(examples={str(folder)!r})\n")
    out = tmp_path / 'classes.jsonl'
    argv = ['classify', *clip_model['inputs'], '--model', str(config),
            '--checkpoint', clip_model['checkpoint'], '--chunk-size', '2',
            '--out', str(out), '--no-progress', '--num-workers', '0']
    restore = _interrupt_after(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        TOOL.main(argv)
    restore()
    image = folder / 'dog' / 'a.png'
    kept = image.read_bytes()
    Image.new('RGB', (40, 30), (250, 10, 10)).save(image)
    with pytest.raises(OutputPathError,
                       match=r'\.parts: the interrupted run used other '
                       r'example images; restore'):
        TOOL.main([*argv, '--resume'])
    image.write_bytes(kept)
    assert TOOL.main([*argv, '--resume'])['processed'] == 9 - 2


def test_live_run_holds_the_output(tagging, tmp_path, monkeypatch):
    """A second run on a live run's output is refused naming the owner,
    with --force too, and loses nothing; the lock of a dead run is taken
    over."""
    import subprocess
    import sys
    out = tmp_path / 'tags.jsonl'
    restore = _interrupt_after(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        TOOL.main(tag_args(tagging, out, '--num-workers', '0'))
    restore()
    parts = f'{out}.parts'
    before = sorted(os.listdir(parts))
    assert before == ['chunk-0000000.jsonl', 'manifest.json']
    owner = subprocess.Popen([sys.executable, '-c',
                              'import time; time.sleep(120)'])
    try:
        with open(osp.join(parts, 'lock'), 'w') as f:
            json.dump(dict(pid=owner.pid, host=os.uname().nodename,
                           started='2026-01-01 00:00:00 UTC'), f)
        for extra in (['--resume'], ['--force'], []):
            with pytest.raises(OutputPathError) as info:
                TOOL.main(tag_args(tagging, out, *extra))
            assert str(info.value) == (
                f'{parts}: another run is writing here (pid {owner.pid} on '
                f'{os.uname().nodename}, started 2026-01-01 00:00:00 UTC); '
                'wait for it to end or stop it')
        assert sorted(os.listdir(parts)) == sorted(before + ['lock'])
    finally:
        owner.kill()
        owner.wait()
    from mmprompt.apis import bulk
    logged = []
    monkeypatch.setattr(bulk, 'print_log', lambda msg, **kw: logged.append(
        (msg, kw.get('level'))))
    summary = TOOL.main(tag_args(tagging, out, '--resume'))
    assert summary['processed'] == 17 - 3
    assert logged == [(f'{parts}: taking over the lock of pid {owner.pid}, '
                       'which is no longer running', logging.WARNING)]
    assert not osp.exists(parts)


def test_refused_first_run_leaves_no_parts(clip_model, tmp_path):
    """A checkpoint or a category file refused when the model is built
    leaves no <out>.parts/: the corrected run needs no --resume."""
    from mmprompt.utils.errors import UserError
    out = tmp_path / 'classes.jsonl'
    bad = tmp_path / 'bad.pth'
    bad.write_bytes(b'not a checkpoint')
    empty = tmp_path / 'names.txt'
    empty.write_text('\n')
    common = ['classify', clip_model['inputs'][0], '--model',
              clip_model['config'], '--out', str(out), '--no-progress',
              '--num-workers', '0']
    with pytest.raises(UserError, match='bad.pth'):
        TOOL.main([*common, '--checkpoint', str(bad)])
    assert sorted(os.listdir(tmp_path)) == ['bad.pth', 'names.txt']
    with pytest.raises(UserError, match='holds no name'):
        TOOL.main([*common, '--checkpoint', clip_model['checkpoint'],
                   '--categories', str(empty)])
    assert sorted(os.listdir(tmp_path)) == ['bad.pth', 'names.txt']
    TOOL.main([*common, '--checkpoint', clip_model['checkpoint']])
    assert len(read_jsonl(out)) == 4


def test_resume_refuses_other_descriptions(tagging, ram_vectors_dir,
                                           tmp_path, monkeypatch):
    """RAM++ open set: a description edited in the --categories file (the
    names kept) is refused by name."""
    root = tagging['root']
    config = R.write_tiny_config(
        str(tmp_path / 'plus_openset.py'),
        'ram/ram-plus_swin-large-p4-w12_384px_openset.py', 8,
        text_encoder=R.tiny_text_encoder(
            R.save_text_encoder(str(tmp_path / 'text.pth'))))
    items = [{'cat': ['a small furry pet', 'an animal with whiskers']},
             {'red car': ['a vehicle on a road', 'a painted automobile']}]
    categories = tmp_path / 'categories.json'
    categories.write_text(json.dumps(items))
    out = tmp_path / 'tags.jsonl'
    argv = ['tag', str(root / 'list.txt'), '--model', config, '--checkpoint',
            R.convert_tiny(ram_vectors_dir, str(tmp_path), 'ram_plus'),
            '--categories', str(categories), '--out', str(out),
            '--chunk-size', '1', '--no-progress', '--num-workers', '0']
    restore = _interrupt_after(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        TOOL.main(argv)
    restore()
    items[1]['red car'][1] = 'a shiny automobile'
    categories.write_text(json.dumps(items))
    with pytest.raises(OutputPathError,
                       match=r'\.parts: the interrupted run used other '
                       r'descriptions; restore'):
        TOOL.main([*argv, '--resume'])


def test_tag_open_set_text_tower_from_a_flag(tagging, ram_vectors_dir,
                                             tmp_path):
    """--text-checkpoint loads the open set's text tower offline: the tags
    equal those of a config naming the same file, and differ from a random
    text tower (issue #22)."""
    root = tagging['root']
    text = R.save_text_encoder(str(tmp_path / 'text.pth'), seed=3)
    ckpt = R.convert_tiny(ram_vectors_dir, str(tmp_path), 'ram')
    base = 'ram/ram_swin-large-p4-w12_384px_openset.py'
    named = R.write_tiny_config(str(tmp_path / 'named.py'), base, 20,
                                text_encoder=R.tiny_text_encoder(text))
    # No text-tower file in the config (its base names the zoo's).
    bare = R.write_tiny_config(
        str(tmp_path / 'bare.py'), base, 20,
        text_encoder=dict(R.tiny_text_encoder(), init_cfg=None))

    def scores(config, name, *extra):
        out = tmp_path / f'{name}.jsonl'
        TOOL.main(['tag', str(root / 'list.txt'), '--model', config,
                   '--checkpoint', ckpt, '--categories', 'cat', 'red car',
                   'tree', '--threshold', '0.01', '--out', str(out),
                   '--no-progress', '--num-workers', '0', *extra])
        return [r['scores'] for r in read_jsonl(out)]

    want = scores(named, 'named')
    assert scores(bare, 'flag', '--text-checkpoint', text) == want
    assert scores(bare, 'random') != want


def test_tag_refuses_the_checkpoint_as_output_and_passes_precision(
        tagging, tmp_path, monkeypatch):
    """What ``demo/tag_images.py``'s tests checked, for ``infer.py tag``:
    the checkpoint is an input (refused as --out before the model is
    built), an empty folder is one line, --precision reaches the tagger."""
    import mmprompt.apis
    built = []

    class Built(Exception):
        pass

    def spy(*args, **kwargs):
        built.append(kwargs)
        raise Built

    monkeypatch.setattr(mmprompt.apis, 'ImageTagger', spy)
    ckpt = tmp_path / 'ram.jsonl'  # --out must end in .jsonl
    ckpt.write_bytes(b'weights')
    argv = tag_args(dict(tagging, checkpoint=str(ckpt)), ckpt, '--force')
    with pytest.raises(OutputPathError, match=f'^{ckpt}: is one of the'):
        TOOL.main(argv)
    assert ckpt.read_bytes() == b'weights' and not built
    (tmp_path / 'empty').mkdir()
    with pytest.raises(InvalidInputError, match='^no image found in '):
        TOOL.main(tag_args(dict(tagging, inputs=[str(tmp_path / 'empty')]),
                           tmp_path / 'o.jsonl'))
    with pytest.raises(Built):
        TOOL.main(tag_args(tagging, tmp_path / 'o.jsonl', '--precision',
                           'bf16'))
    assert built == [dict(precision='bf16')]
    assert not os.listdir(tmp_path / 'empty')
