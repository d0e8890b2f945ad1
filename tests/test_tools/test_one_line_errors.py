# Copyright (c) mmprompt contributors. All rights reserved.
"""Issue 18, section 6: every tool answers bad input with one line
(``error: ...`` on stderr, exit status 2, no traceback) and writes
nothing."""
import os
import os.path as osp
import re

import pytest
import torch
from test_tools.test_prompt_learning_errors import (TEST, TRAIN, clip_cfg,
                                                    one_line_error)
from test_tools.test_prompt_learning_errors import write as write_coop
from testing_utils import REPO_ROOT, load_module

from mmprompt.utils.errors import InvalidInputError, run_tool

INFER = load_module('_mmprompt_tools_infer_errors',
                    osp.join(REPO_ROOT, 'tools', 'infer.py'))


@pytest.fixture(scope='module')
def clip_path(tmp_path_factory) -> str:
    """A tiny random-weight CLIP checkpoint."""
    from mmprompt.registry import MODELS
    from mmprompt.utils.checkpoint import save_checkpoint
    torch.manual_seed(0)
    path = str(tmp_path_factory.mktemp('clip') / 'clip.pth')
    save_checkpoint(MODELS.build(clip_cfg()).state_dict(), {}, path)
    return path


def write(tmp_path, clip_path, counts, model='') -> str:
    """A CoOp config of its own name: Runners made in the same second share
    MMEngine's visualiser when their configs share a name."""
    config = write_coop(tmp_path, clip_path, counts, model)
    named = str(tmp_path / f'coop_{tmp_path.name}.py')
    os.rename(config, named)
    return named


@pytest.fixture(autouse=True)
def _logger_outside_capsys(request):
    """MMEngine's logger keeps the stream it was made with: make a current
    one before capsys swaps stderr (another test's may hold a closed
    capsys stream)."""
    from mmengine.logging import MMLogger
    MMLogger.get_instance(f'one_line_errors.{request.node.name}')


@pytest.mark.parametrize('main', [TRAIN.main, TEST.main],
                         ids=['train', 'test'])
def test_missing_and_unparsable_configs(main, tmp_path, clip_path, capsys):
    """The same line from tools/train.py and tools/test.py."""
    extra = [] if main is TRAIN.main else [clip_path]
    missing = str(tmp_path / 'missing.py')
    line = one_line_error(capsys, main, [missing, *extra])
    assert line == f'error: {missing}: no such config file'
    broken = tmp_path / 'broken.py'
    broken.write_text('model = dict(\n')
    line = one_line_error(capsys, main, [str(broken), *extra])
    assert line.startswith(f'error: {broken}: cannot be read (SyntaxError: ')
    assert line.endswith('at line 1)')


def test_train_mistyped_keys(tmp_path, clip_path, capsys):
    """A key no constructor takes is named with its path and the nearest
    argument; a missing top-level key with the nearest key present; a
    ``type`` no registry holds with the nearest registered name."""
    config = write(tmp_path, clip_path, dict(cat=2, dog=2),
                   model=', n_ctxx=4')
    work = ['--work-dir', str(tmp_path / 'w')]
    line = one_line_error(capsys, TRAIN.main, [config, *work])
    assert line == (f"error: {config}: model.n_ctxx is not a setting of "
                    "CoOp; did you mean 'n_ctx'?")
    config = write(tmp_path / 'b', clip_path, dict(cat=2, dog=2))
    line = one_line_error(capsys, TRAIN.main, [
        config, *work, '--cfg-options',
        'train_dataloader.dataset.shotss=2'])
    assert line == (f'error: {config}: train_dataloader.dataset.shotss is '
                    "not a setting of FewShotDataset; did you mean "
                    "'shots'?")
    line = one_line_error(capsys, TRAIN.main, [
        config, *work, '--cfg-options', 'model.type=CoOpp'])
    assert line == (f"error: {config}: type 'CoOpp' is not a registered "
                    "model; did you mean 'CoOp'?")
    renamed = tmp_path / 'renamed.py'
    renamed.write_text("model = dict(type='CoOp')\ntrain_dataloder = {}\n"
                       'train_cfg = {}\noptim_wrapper = {}\n')
    line = one_line_error(capsys, TRAIN.main, [str(renamed), *work])
    assert line == (f"error: {renamed}: no 'train_dataloader' in the config; "
                    "did you mean 'train_dataloder'?")
    assert not (tmp_path / 'w' / 'learned.pth').exists()


def test_test_mistyped_key(tmp_path, clip_path, capsys):
    config = write(tmp_path, clip_path, dict(cat=2, dog=2),
                   model=', n_ctx=4')
    line = one_line_error(capsys, TEST.main, [
        config, clip_path, '--work-dir', str(tmp_path / 'w'),
        '--cfg-options', 'model.clip.proj_dimz=8',
        'model.categories=[cat,dog]'])
    assert line == (f'error: {config}: model.clip.proj_dimz is not a '
                    "setting of CLIP; did you mean 'proj_dims'?")


@pytest.fixture(scope='module')
def clip_config(tmp_path_factory) -> str:
    """A tiny zero-shot CLIP config (no weights: prompts are checked before
    the model is built)."""
    from testing_utils import clip as H
    root = tmp_path_factory.mktemp('infer_cfg')
    return H.write_tiny_config(
        str(root / 'cfg.py'), 'clip/clip_vit-base-p16_zeroshot-cls_in1k.py',
        model=dict(templates='simple'))


@pytest.mark.parametrize('value,message', [
    ('5', 'threshold must lie in [0, 1], got 5.0'),
    ('nan', 'threshold must lie in [0, 1], got nan'),
    ('-1', 'threshold must lie in [0, 1], got -1.0'),
    ('high', "threshold must be a number in [0, 1], got 'high'"),
])
def test_infer_threshold_as_image_tagger(value, message, tmp_path, capsys):
    """``--threshold`` takes what ImageTagger takes: one function."""
    from mmprompt.models.ram.vocabulary import check_threshold
    out = tmp_path / 'tags.jsonl'
    with pytest.raises(SystemExit) as exit_info:
        run_tool(INFER.main, ['tag', str(tmp_path), '--model', 'x.py',
                              '--out', str(out), '--threshold', value])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].endswith(
        f'error: argument --threshold: {message}')
    assert 'Traceback' not in err and not os.listdir(tmp_path)
    with pytest.raises(InvalidInputError, match=re.escape(message)):
        check_threshold(value)
    assert check_threshold('0.25') == 0.25


@pytest.mark.parametrize('task,extra,message', [
    ('classify', ['--categories', 'cat', ' '], 'category 1 is blank'),
    ('classify', ['--categories', 'cat', 'dog', 'Cat'],
     "duplicate category names: 'cat' (#0) and 'Cat' (#2) are the same "
     "to the tokenizer"),
    ('classify', ['--categories', 'cat', 'x ' * 80],
     "Text 1 is 87 tokens long, over the context length 77 (pass "
     "truncate=True to cut it): 'a photo of a x x x"),
    ('classify', ['--categories', 'cat', '--templates', 'a {} or {}'],
     "template 'a {} or {}' must hold exactly one \"{}\" and no other "
     'replacement field'),
    ('tag', ['--categories', 'cat', 'CAT'],
     "duplicate category names: 'cat' (#0) and 'CAT' (#1) are the same "
     "to the tokenizer"),
    ('tag', ['--categories', 'cat', '--templates', 'a {animal}'],
     "template 'a {animal}' is not a format string"),
])
def test_infer_refuses_prompts_up_front(task, extra, message, clip_config,
                                        tmp_path, capsys):
    """What the inferencers refuse is one line before any output."""
    out = tmp_path / 'out' / 'o.jsonl'
    line = one_line_error(capsys, INFER.main, [
        task, str(tmp_path), '--model', clip_config, '--out', str(out),
        *extra
    ])
    # Names the arguments, or (duplicates) the names themselves.
    assert line.startswith('error: --categories / --templates: ') or \
        line.startswith('error: duplicate category names: ')
    assert message in line
    assert not (tmp_path / 'out').exists()


def malformed_json(path) -> str:
    path.write_text('[\n  "cat",\n  "dog"\n')
    return str(path)


def test_malformed_json_files_name_the_position(tmp_path, clip_path,
                                                clip_config, capsys):
    """Categories and templates (tools/infer.py), descriptions
    (tools/test.py) and few-shot lists (tools/train.py): the file, the
    line and the column."""
    bad = malformed_json(tmp_path / 'bad.json')
    want = (f"error: {bad}: not valid JSON at line 4 column 1: Expecting ',' "
            "delimiter")
    out = str(tmp_path / 'out.jsonl')
    for extra in (['--categories', bad],
                  ['--categories', 'cat', '--templates', bad]):
        line = one_line_error(capsys, INFER.main, [
            'tag', str(tmp_path), '--model', clip_config, '--out', out,
            *extra
        ])
        assert line == want
    config = write(tmp_path / 'coop', clip_path, dict(cat=2, dog=2),
                   model=', n_ctx=4')
    line = one_line_error(capsys, TRAIN.main, [
        config, '--work-dir', str(tmp_path / 'w'), '--cfg-options',
        f'train_dataloader.dataset.list_file={bad}'
    ])
    assert line == want
    line = one_line_error(capsys, TEST.main, [
        clip_config, clip_path, '--work-dir', str(tmp_path / 'w'),
        '--cfg-options', f'model.descriptions={bad}'
    ])
    assert line == want
    assert not os.path.exists(out)


def test_learned_file_over_other_clip_weights(tmp_path, capsys):
    """tools/infer.py refuses a learned file over other
    weights of its CLIP's architecture (they used to warn and answer
    confidently) unless --allow-other-clip-weights."""
    pytest.importorskip('open_clip')
    from test_apis.test_learned_classifier import (write_coop_config,
                                                   write_learned)
    from testing_utils import clip as H
    ckpt = H.write_converted_checkpoint(str(tmp_path / 'a.pth'), seed=0)
    other = H.write_converted_checkpoint(str(tmp_path / 'b.pth'), seed=1)
    config = H.write_tiny_config(str(tmp_path / 'cfg.py'),
                                 'clip/clip_vit-base-p16_zeroshot-cls_in1k.py')
    learned = write_learned(write_coop_config(tmp_path, ckpt),
                            str(tmp_path / 'learned.pth'), 3,
                            ['cat', 'dog', 'car'])
    images = tmp_path / 'images'
    images.mkdir()
    from PIL import Image
    Image.new('RGB', (40, 30), (200, 10, 10)).save(images / 'red.png')
    out = tmp_path / 'out' / 'classes.jsonl'
    argv = ['classify', str(images), '--model', config, '--checkpoint',
            other, '--learned', learned, '--out', str(out), '--no-progress',
            '--num-workers', '0']
    line = one_line_error(capsys, INFER.main, argv)
    assert line == (
        f'error: {learned}: learned on other CLIP weights of the same '
        'architecture; the prompts were tuned for other features: load the '
        'CLIP it was learned on, or pass allow_other_weights=True '
        '(--allow-other-clip-weights) to use it anyway')
    assert not (tmp_path / 'out').exists() or not os.listdir(tmp_path / 'out')
    INFER.main(argv + ['--allow-other-clip-weights'])
    assert out.exists()


@pytest.mark.parametrize('tool', ['infer', 'pytorch2onnx', 'calibrate'])
def test_every_tool_reads_configs_alike(tool, tmp_path, clip_path, capsys):
    """A config that does not parse, or holds a key the model does not
    take, is the same line from the other tools (through
    :func:`mmprompt.apis.model_zoo.load_config` and
    :func:`mmprompt.apis.builder.build_from_config`)."""
    from testing_utils import clip as H
    if tool == 'pytorch2onnx':
        pytest.importorskip('onnxscript')
        main = load_module('_mmprompt_pytorch2onnx_errors',
                           osp.join(REPO_ROOT, 'tools', 'deployment',
                                    'pytorch2onnx.py')).main
    elif tool == 'calibrate':
        main = load_module('_mmprompt_calibrate_errors',
                           osp.join(REPO_ROOT, 'tools',
                                    'calibrate_thresholds.py')).main
    else:
        main = INFER.main

    from PIL import Image
    (tmp_path / 'imgs').mkdir()
    Image.new('RGB', (40, 30)).save(tmp_path / 'imgs' / 'a.png')

    def argv(config):
        if tool == 'infer':
            return ['embed', str(tmp_path / 'imgs'), '--model', config,
                    '--out',
                    str(tmp_path / 'out.npy'), '--num-workers', '0']
        if tool == 'pytorch2onnx':
            return [config, str(tmp_path / 'out.onnx')]
        return [config, clip_path, str(tmp_path / 'out.pth')]

    broken = tmp_path / 'broken.py'
    broken.write_text("model = dict(type='CLIPZeroShot'\n")
    line = one_line_error(capsys, main, argv(str(broken)))
    assert line.startswith(f'error: {broken}: cannot be read (SyntaxError: ')
    typo = H.write_tiny_config(
        str(tmp_path / 'typo.py'),
        'clip/clip_vit-base-p16_zeroshot-cls_in1k.py',
        model=dict(templtes='simple'))
    line = one_line_error(capsys, main, argv(typo))
    assert line == (f'error: {typo}: model.templtes is not a setting of '
                    "CLIPZeroShot; did you mean 'templates'?")
    assert sorted(os.listdir(tmp_path)) == ['broken.py', 'imgs', 'typo.py']
