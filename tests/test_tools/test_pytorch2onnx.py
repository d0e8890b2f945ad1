# Copyright (c) mmprompt contributors. All rights reserved.
"""tools/deployment/pytorch2onnx.py on tiny random-weight models.

Each export is checked against PyTorch with onnxruntime at two batch sizes
through the same file (the batch is dynamic), and the text tower at two
prompt lengths. Full-size parity is in tests/test_deployment.
"""
import json
import os.path as osp

import pytest
import torch
from testing_utils import REPO_ROOT, load_module
from testing_utils import clip as clip_testing
from testing_utils import ram as ram_testing

pytest.importorskip('onnx', reason='the deploy extra (onnx) is missing')
pytest.importorskip(
    'onnxruntime', reason='the deploy extra (onnxruntime) is missing')
pytest.importorskip(
    'onnxscript', reason='the deploy extra (onnxscript) is missing')

import onnx  # noqa: E402

from mmprompt.apis import get_model  # noqa: E402
from mmprompt.deployment import (build_export_module, compare_onnx,  # noqa
                                 onnx_session, run_onnx)
from mmprompt.utils.errors import UserError  # noqa: E402

TOOL = load_module('_mmprompt_pytorch2onnx',
                   osp.join(REPO_ROOT, 'tools', 'deployment',
                            'pytorch2onnx.py'))
CLIP_BASE = 'clip/clip_vit-base-p16_zeroshot-cls_in1k.py'
RAM_BASES = dict(
    ram='ram/ram_swin-large-p4-w12_384px_normal.py',
    ram_plus='ram/ram-plus_swin-large-p4-w12_384px_normal.py')
CATEGORIES = ['cat', 'dog', 'red car', 'tree']


@pytest.fixture(autouse=True)
def _logger_outside_capsys(request):
    """MMEngine's logger keeps the stream it was made with: make a current
    one before capsys swaps stderr (another module's may hold a closed
    capsys stream)."""
    from mmengine.logging import MMLogger
    MMLogger.get_instance(f'pytorch2onnx.{request.node.name}')


@pytest.fixture(scope='module')
def tiny_clip(tmp_path_factory):
    root = tmp_path_factory.mktemp('onnx_clip')
    ckpt = clip_testing.write_converted_checkpoint(str(root / 'clip.pth'))
    config = clip_testing.write_tiny_config(
        str(root / 'clip.py'), CLIP_BASE, model=dict(categories='imagenet'))
    return dict(root=root, ckpt=ckpt, config=config)


def metadata(path: str) -> dict:
    model = onnx.load(path, load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}


def export(tmp_path, config, ckpt, name, *extra):
    out = str(tmp_path / f'{name}.onnx')
    assert TOOL.main([config, out, '--checkpoint', ckpt, *extra]) == 0
    return out


@pytest.mark.slow
def test_classifier_and_text_tower(tiny_clip, tmp_path):
    """The classifier's probabilities (categories folded in) and the text
    tower's features equal PyTorch's at batch 1 and 3."""
    config, ckpt = tiny_clip['config'], tiny_clip['ckpt']
    out = export(tmp_path, config, ckpt, 'cls', '--categories', *CATEGORIES,
                 '--templates', 'a photo of a {}.', 'a {}.')
    model = get_model(config, pretrained=ckpt, categories=CATEGORIES,
                      templates=['a photo of a {}.', 'a {}.'])
    module = build_export_module(model, 'classifier')
    session = onnx_session(out)
    for batch in (1, 3):
        images = module.example_inputs(batch)
        diffs = compare_onnx(session, module, images)
        assert diffs['probs'] <= 1e-5
        probs = run_onnx(session, module, images)[0]
        with torch.no_grad():
            assert torch.equal(probs.argmax(-1), module(*images).argmax(-1))
    meta = metadata(out)
    assert json.loads(meta['categories']) == CATEGORIES
    assert meta['mmprompt_kind'] == 'classifier'
    # The text tower: any batch, any length up to the context.
    out = export(tmp_path, config, ckpt, 'text', '--kind', 'text')
    text = build_export_module(model, 'text')
    session = onnx_session(out)
    for texts in (['a dog'], ['a photo of a cat.'] * 3 + ['x ' * 70]):
        tokens = model.tokenize(texts)
        tokens = tokens[:, :int((tokens > 0).sum(1).max())]
        assert compare_onnx(session, text, (tokens, ))['text_feats'] <= 1e-5


def test_image_tower_matches_the_model_pipeline(tiny_clip, tmp_path):
    """RGB in [0, 255] through the graph gives the model's features of the
    same images through its own data preprocessor (BGR in)."""
    config, ckpt = tiny_clip['config'], tiny_clip['ckpt']
    out = export(tmp_path, config, ckpt, 'image', '--kind', 'image')
    model = get_model(config, pretrained=ckpt)
    module = build_export_module(model, 'image')
    images = module.example_inputs(2)[0].round()
    data = model.data_preprocessor(
        dict(inputs=list(images.flip(1).to(torch.uint8))), False)
    with torch.no_grad():
        expected = model.extract_image_feat(data['inputs'])
    got = run_onnx(onnx_session(out), module, (images, ))[0]
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_bad_input(tiny_clip, tmp_path, capsys):
    config, ckpt = tiny_clip['config'], tiny_clip['ckpt']
    out = tmp_path / 'exists.onnx'
    out.write_bytes(b'keep')
    with pytest.raises(UserError, match='exists; pass --force'):
        TOOL.main([config, str(out), '--checkpoint', ckpt])
    assert out.read_bytes() == b'keep'
    with pytest.raises(UserError, match='must end with .onnx'):
        TOOL.main([config, str(tmp_path / 'x.pt'), '--checkpoint', ckpt])
    model = get_model(config, pretrained=ckpt)
    with pytest.raises(UserError, match="cannot export CLIPZeroShot as "
                       "'tagging': it needs a RAM"):
        build_export_module(model, 'tagging')
    # One line on stderr, exit status 2, through run_tool.
    from mmprompt.utils.errors import run_tool
    capsys.readouterr()  # get_model's progress line above is not the tool's
    with pytest.raises(SystemExit) as exit_info:
        run_tool(TOOL.main, [config, str(out), '--checkpoint', ckpt])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('error: ') and '\n' not in err


@pytest.mark.slow
@pytest.mark.parametrize(
    'name',
    [
        'ram',
        # Over 40 s of CPU (the export), too slow for every run; the
        # full-size RAM++ parity test runs with it (MMPROMPT_HEAVY=1).
        pytest.param('ram_plus', marks=pytest.mark.heavy)
    ])
def test_ram_tagging(name, ram_vectors_dir, tmp_path):
    """The tiny RAM / RAM++ checkpoints: probabilities within 1e-5, the
    thresholds as the second output, the same tags at batch 1 and 2; tag
    names in the metadata. RAM++ mixes its descriptions per image, inside
    the graph."""
    ckpt = ram_testing.convert_tiny(ram_vectors_dir, str(tmp_path), name)
    num_tags = len(ram_testing.expected(ram_vectors_dir, name)['tags_en'])
    config = ram_testing.write_tiny_config(
        str(tmp_path / f'{name}.py'), RAM_BASES[name], num_tags)
    out = export(tmp_path, config, ckpt, name, '--verify')
    model = get_model(config, pretrained=ckpt)
    module = build_export_module(model, 'tagging')
    session = onnx_session(out)
    for batch in (1, 2):
        images = module.example_inputs(batch)
        assert max(compare_onnx(session, module, images).values()) <= 1e-5
        probs, thr = run_onnx(session, module, images)
        assert torch.equal(thr, model.class_threshold)
        with torch.no_grad():
            expected = model.select_tags(
                model.compute_logits(module.normalise(images[0])).sigmoid())
        assert torch.equal(probs > thr, expected)
    assert json.loads(metadata(out)['tags']) == list(model.vocabulary.names)


def test_outputs_follow_the_output_rule(tiny_clip, tmp_path, monkeypatch):
    """An output inside an input folder is refused before the export; a
    full disk while saving is one line, the old file intact and no
    temporary folder left."""
    import errno
    import os
    config, ckpt = tiny_clip['config'], tiny_clip['ckpt']
    examples = tmp_path / 'examples'
    (examples / 'cat').mkdir(parents=True)
    with pytest.raises(UserError, match='inside the input folder'):
        TOOL.main([config, str(examples / 'm.onnx'), '--checkpoint', ckpt,
                   '--examples', str(examples)])
    out = tmp_path / 'image.onnx'
    out.write_bytes(b'keep')

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch.onnx.ONNXProgram, 'save', full)
    with pytest.raises(UserError) as info:
        TOOL.main([config, str(out), '--checkpoint', ckpt, '--kind', 'image',
                   '--force'])
    assert str(info.value) == (f'could not write {out}: no space left on '
                               'device; the old file is untouched')
    assert out.read_bytes() == b'keep'
    assert sorted(os.listdir(tmp_path)) == ['examples', 'image.onnx']


def one_line(capsys, argv) -> str:
    from mmprompt.utils.errors import run_tool
    capsys.readouterr()  # get_model's progress line above is not the tool's
    with pytest.raises(SystemExit) as exit_info:
        run_tool(TOOL.main, argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('error: '), err
    return err[0]


def test_bad_categories_and_opsets_write_nothing(tiny_clip, tmp_path,
                                                 capsys, monkeypatch):
    """Duplicate categories and an opset the exporter does not write are
    one line each, before the model is built."""
    from mmprompt.deployment.onnx import supported_opsets
    config, ckpt = tiny_clip['config'], tiny_clip['ckpt']
    out = tmp_path / 'x.onnx'
    line = one_line(capsys, [config, str(out), '--checkpoint', ckpt,
                             '--categories', 'cat', 'dog', 'Cat'])
    assert line == ("error: duplicate category names: 'cat' (#0) and 'Cat' "
                    "(#2) are the same to the tokenizer (read as 'cat'); "
                    'keep one of each')
    monkeypatch.setattr(TOOL, 'build_model', lambda args: 1 / 0)
    low, high = supported_opsets()
    assert (low, high) == (18, 23)  # torch 2.14's dynamo exporter
    for opset in (low - 1, high + 1, 9):
        line = one_line(capsys, [config, str(out), '--opset', str(opset)])
        assert line == (f'error: opset {opset} is not supported: torch '
                        f'{torch.__version__} exports opsets 18 to 23 '
                        '(default 18)')
    assert not list(tmp_path.iterdir())


def test_learned_prompt_export_as_documented(tiny_clip, tmp_path):
    """README's command (`pytorch2onnx.py clip_vit-base-p16 coop.onnx
    --learned learned.pth`), on the tiny CLIP config and weights: the
    graph's probabilities are the CoOp model's, at the opset asked for; a
    CoOp config without categories takes the file's."""
    from test_apis.test_learned_classifier import (write_coop_config,
                                                   write_learned)

    from mmprompt.apis import get_model
    readme = open(osp.join(REPO_ROOT, 'README.md')).read()
    assert ('python tools/deployment/pytorch2onnx.py clip_vit-base-p16 '
            'coop.onnx \\\n    --learned ') in readme
    config, ckpt = tiny_clip['config'], tiny_clip['ckpt']
    coop_config = write_coop_config(tmp_path, ckpt)
    names = ['cat', 'dog', 'car']
    learned = write_learned(coop_config, str(tmp_path / 'learned.pth'), 3,
                            names)
    out = export(tmp_path, config, ckpt, 'coop', '--learned', learned,
                 '--opset', '19', '--verify')
    assert onnx.load(out).opset_import[0].version == 19
    assert json.loads(metadata(out)['categories']) == names
    model = get_model(config, ckpt, learned=learned)
    module = build_export_module(model, 'classifier')
    assert compare_onnx(onnx_session(out), module,
                        module.example_inputs(2))['probs'] <= 1e-5
    # The method's own config (no categories in it), CLIP from init_cfg.
    out = str(tmp_path / 'coop_cfg.onnx')
    assert TOOL.main([coop_config, out, '--learned', learned]) == 0
    assert json.loads(metadata(out)['categories']) == names
