# Copyright (c) mmprompt contributors. All rights reserved.
"""The model zoo table: metafiles in OpenMMLab's form, one list_models /
get_model for CLIP and RAM, close names for unknown ones, mmprompt::
config names."""
import glob
import hashlib
import os.path as osp

import pytest
import yaml
from testing_utils import REPO_ROOT
from testing_utils import clip as H

from mmprompt.apis import (ImageTagger, ZeroShotClassifier, get_model,
                           get_model_info, list_models, model_zoo)
from mmprompt.converters import converter_command
from mmprompt.utils.errors import UserError

PROMPT_LEARNING = ('CoOp', 'CoCoOp', 'Tip-Adapter-F')
OPEN_CLIP = ('OpenCLIP LAION-2B', 'DataComp CLIP', 'DFN CLIP', 'MetaCLIP')

RAM_WEIGHTS = {
    'RAM': ('https://huggingface.co/xinyu1205/recognize_anything_model/'
            'resolve/main/ram_swin_large_14m.pth'),
    'RAM++': ('https://huggingface.co/xinyu1205/recognize-anything-plus-'
              'model/resolve/main/ram_plus_swin_large_14m.pth'),
}


def test_every_config_is_in_the_zoo_once():
    # Every config of a family with a metafile: CLIP, RAM, ... and the
    # prompt learners, whose rows have no weights (trained by the user).
    families = [
        osp.dirname(p) for p in glob.glob(
            osp.join(REPO_ROOT, 'configs', '*', 'metafile.yml'))
    ]
    assert sorted(osp.basename(f) for f in families) == [
        'clip', 'cocoop', 'coop', 'open_clip', 'pe_core', 'ram', 'siglip',
        'tip_adapter'
    ]
    configs = sorted(
        osp.relpath(p, REPO_ROOT) for f in families
        for p in glob.glob(osp.join(f, '*.py')))
    zoo = model_zoo.load_zoo().values()
    assert sorted(
        osp.relpath(i.config, REPO_ROOT) for i in zoo
        if '_base_' not in i.config) == configs
    for info in zoo:
        assert osp.isfile(info.config), info.name
        if info.collection in PROMPT_LEARNING:
            assert (info.weights, info.sha256, info.converter) == (None,
                                                                   None, '')
            continue
        # open_clip's and PE-Core's files have no published SHA-256 (see
        # the metafiles).
        unpublished = info.sha256 is None and info.collection in (
            OPEN_CLIP + ('PE-Core', 'SigLIP', 'SigLIP2'))
        assert unpublished or (len(info.sha256) == 64
                               and int(info.sha256, 16) >= 0)
        script = converter_command(info.converter)[0]
        assert osp.isfile(osp.join(REPO_ROOT, script)), info.converter


def test_metafiles_name_converters_by_key():
    """A row's ``Converter:`` is a key of CONVERTERS (and options), never
    a script path the hub would have to parse."""
    from mmprompt.converters import CONVERTERS
    rows = {
        info.name: info.converter.split()
        for info in model_zoo.load_zoo().values() if info.weights
    }
    assert {n: w for n, w in rows.items() if w[0] not in CONVERTERS} == {}
    assert rows['ram_swin-large-p4-w12_384px_normal'] == [
        'ram', '--model', 'ram'
    ]
    assert rows['clip_vit-base-p16'] == ['openai_clip']


def test_clip_weights_are_openai_releases():
    open_clip = pytest.importorskip('open_clip')
    theirs = {
        'clip_vit-base-p32': 'ViT-B-32',
        'clip_vit-base-p16': 'ViT-B-16',
        'clip_vit-large-p14': 'ViT-L-14',
        'clip_vit-large-p14-336px': 'ViT-L-14-336'
    }
    for name in list_models('clip'):
        info = get_model_info(name)
        if info.collection != 'CLIP':
            continue  # open_clip's weights: tests/test_models/test_open_clip
        base = name.split('_zeroshot')[0] + (
            '-336px' if name.endswith('in1k-336px') or
            name.endswith('cifar100-336px') else '')
        assert info.weights == open_clip.get_pretrained_url(
            theirs[base], 'openai')
        # OpenAI's URLs embed the SHA-256 of the file.
        assert info.weights.split('/')[-2] == info.sha256
        assert info.task == 'Zero-shot Image Classification'


def test_ram_weights_and_data_files(ram_data_dir):
    for name in list_models('ram'):
        info = get_model_info(name)
        assert info.weights == RAM_WEIGHTS[info.collection]
        assert set(info.data_files) == {
            'tag_list', 'tag_list_chinese', 'thresholds'
        }
        for key, entry in info.data_files.items():
            assert entry['URL'].startswith(
                'https://raw.githubusercontent.com/xinyu1205/'
                'recognize-anything/7cb804a8609e9f4b1a50b7f31436d2df40bb9481/'
                'ram/data/')
            # The table's SHA-256 is that of the official file in shared/.
            local = osp.join(ram_data_dir, entry['URL'].split('/')[-1])
            with open(local, 'rb') as f:
                assert hashlib.sha256(f.read()).hexdigest() == \
                    entry['SHA256'], key
        assert (info.text_encoder == 'clip_vit-base-p16') == (
            'openset' in name)
    assert get_model_info('ram_swin-large-p4-w12_384px_normal').sha256 == \
        '15c729c793af28b9d107c69f85836a1356d76ea830d4714699fb62e55fcc08ed'
    assert get_model_info(
        'ram-plus_swin-large-p4-w12_384px_normal').sha256 == \
        '497c178836ba66698ca226c7895317e6e800034be986452dbd2593298d50e87d'


def test_model_index_is_what_mmpretrain_and_mim_read():
    modelhub = pytest.importorskip('mmpretrain.apis.model').ModelHub
    hub = type('Hub', (modelhub, ), {'_models_dict': {}})
    hub.register_model_index(
        osp.join(REPO_ROOT, 'model-index.yml'), config_prefix=REPO_ROOT)
    assert sorted(hub._models_dict) == sorted(
        n.lower() for n in list_models())
    info = hub._models_dict['clip_vit-base-p16_zeroshot-cls_in1k']
    assert info.in_collection == 'CLIP'
    assert info.results[0].metrics == {'Top 1 Accuracy': 68.6}
    assert osp.isfile(info.config)
    with open(osp.join(REPO_ROOT, 'model-index.yml')) as f:
        assert yaml.safe_load(f) == {
            'Import': [
                'configs/clip/metafile.yml', 'configs/cocoop/metafile.yml',
                'configs/coop/metafile.yml', 'configs/open_clip/metafile.yml',
                'configs/pe_core/metafile.yml', 'configs/ram/metafile.yml',
                'configs/siglip/metafile.yml',
                'configs/tip_adapter/metafile.yml'
            ]
        }


def test_list_models_pattern_and_task():
    everything = list_models()
    assert len(everything) == 94 and everything == sorted(everything)
    assert list_models('*in1k*') == list_models('in1k') == [
        'clip_vit-base-p16_zeroshot-cls_in1k',
        'clip_vit-base-p32_zeroshot-cls_in1k',
        'clip_vit-gigantic-p14_laion2b_zeroshot-cls_in1k',
        'clip_vit-huge-p14_dfn5b_zeroshot-cls_in1k',
        'clip_vit-huge-p14_dfn5b_zeroshot-cls_in1k-378px',
        'clip_vit-huge-p14_laion2b_zeroshot-cls_in1k',
        'clip_vit-huge-p14_metaclip-2.5b_zeroshot-cls_in1k',
        'clip_vit-large-p14_datacomp-xl_zeroshot-cls_in1k',
        'clip_vit-large-p14_dfn2b_zeroshot-cls_in1k',
        'clip_vit-large-p14_laion2b_zeroshot-cls_in1k',
        'clip_vit-large-p14_metaclip-2.5b_zeroshot-cls_in1k',
        'clip_vit-large-p14_zeroshot-cls_in1k',
        'clip_vit-large-p14_zeroshot-cls_in1k-336px',
        'cocoop_vit-base-p16_16shots_base2novel_in1k',
        'cocoop_vit-base-p16_16shots_in1k',
        'coop_vit-base-p16_16shots_base2novel_in1k',
        'coop_vit-base-p16_16shots_in1k',
        'pe-core_vit-base-p16_zeroshot-cls_in1k',
        'pe-core_vit-large-p14_zeroshot-cls_in1k-336px',
        'siglip2_vit-base-p16_zeroshot-cls_in1k',
        'siglip2_vit-base-p16_zeroshot-cls_in1k-384px',
        'siglip2_vit-large-p16_zeroshot-cls_in1k-384px',
        'siglip2_vit-so400m-p16_zeroshot-cls_in1k-384px',
        'siglip_vit-base-p16_zeroshot-cls_in1k',
        'siglip_vit-base-p16_zeroshot-cls_in1k-384px',
        'siglip_vit-so400m-p14_zeroshot-cls_in1k-384px',
        'tip-adapter-f_vit-base-p16_16shots_in1k'
    ]
    assert list_models('siglip*cifar100*') == [
        'siglip2_vit-base-p16_zeroshot-cls_cifar100',
        'siglip2_vit-base-p16_zeroshot-cls_cifar100-384px',
        'siglip2_vit-large-p16_zeroshot-cls_cifar100-384px',
        'siglip2_vit-so400m-p16_zeroshot-cls_cifar100-384px',
        'siglip_vit-base-p16_zeroshot-cls_cifar100',
        'siglip_vit-base-p16_zeroshot-cls_cifar100-384px',
        'siglip_vit-so400m-p14_zeroshot-cls_cifar100-384px'
    ]
    assert len(list_models(task='few-shot image classification')) == 17
    assert list_models('RAM-PLUS*', task='open-set image tagging') == [
        'ram-plus_swin-large-p4-w12_384px_openset',
        'ram-plus_swin-large-p4-w12_384px_openset_openimages-rare'
    ]
    assert len(list_models(task='Zero-shot Image Classification')) == 69
    assert ZeroShotClassifier.list_models() == list_models(
        task='Zero-shot Image Classification')
    # RAM / RAM++, and SigLIP (sigmoid scores: a probability per tag).
    assert ImageTagger.list_models() == list_models('ram') + list_models(
        'siglip*')
    with pytest.raises(UserError, match='unknown task.*Image Tagging'):
        list_models(task='detection')


def test_prompt_learning_rows_have_no_weights_and_say_how_to_train():
    """CoOp / CoCoOp / Tip-Adapter-F rows: a config and the papers'
    numbers, no weights; asking for their weights says, in one line, the
    training command."""
    info = get_model_info('cocoop_vit-base-p16_16shots_base2novel_in1k')
    assert info.weights is None and info.collection == 'CoCoOp'
    assert info.results[0]['metrics'] == {
        'Base Top 1 Accuracy': 75.98,
        'Novel Top 1 Accuracy': 70.43,
        'Harmonic Mean': 73.1
    }
    assert get_model_info('coop_vit-base-p16_16shots_in1k').results[0][
        'metrics'] == {'Top 1 Accuracy': 71.92}
    tip = get_model_info('tip-adapter-f_vit-base-p16_16shots_in1k')
    assert tip.results[0]['dataset'] == 'ImageNet-1k (CLIP ResNet-50)'
    message = ('coop_vit-base-p16_16shots_custom has no released weights '
               '(CoOp is trained on your data): python tools/train.py '
               'configs/coop/coop_vit-base-p16_16shots_custom.py')
    with pytest.raises(model_zoo.NoWeightsError) as e:
        get_model('coop_vit-base-p16_16shots_custom')
    assert str(e.value) == message
    with pytest.raises(model_zoo.NoWeightsError, match='^tip-adapter-f'):
        tip.weights_file


def test_download_weights_skips_and_names_rows_without_weights(capsys):
    from testing_utils import load_module

    from mmprompt.utils.errors import run_tool
    tool = load_module(
        '_mmprompt_download_weights_zoo',
        osp.join(REPO_ROOT, 'tools', 'misc', 'download_weights.py'))
    assert tool.main(['--list']) == 0
    assert ('coop_vit-base-p16_16shots_in1k  (Few-shot Image '
            'Classification; no released weights: tools/train.py)'
            ) in capsys.readouterr().out.splitlines()
    with pytest.raises(SystemExit) as e:
        run_tool(tool.main, ['cocoop*'])
    assert e.value.code == 2
    assert ('cocoop_vit-base-p16_16shots_base2novel_cifar100 has no released '
            'weights') in capsys.readouterr().err


def test_unknown_name_lists_close_names():
    with pytest.raises(model_zoo.UnknownModelError) as e:
        get_model_info('clip_vit-base-p61')
    assert 'close names: clip_vit-base-p16' in str(e.value)
    with pytest.raises(ValueError, match='close names: ram_swin-large'):
        ImageTagger('ram_swin-large-p4-w12_384_normal')
    with pytest.raises(UserError, match='close names: clip_vit-base-p16'):
        ZeroShotClassifier('clip-vit-base-p16')
    with pytest.raises(UserError, match='no such config file'):
        get_model('configs/clip/nothing.py')
    # A name of the other task is refused before any download.
    with pytest.raises(UserError,
                       match='is a model for Image Tagging, not for '
                       'ZeroShotClassifier; use one of clip_vit'):
        ZeroShotClassifier('ram_swin-large-p4-w12_384px_normal')
    with pytest.raises(UserError, match='scores with a softmax over its '
                       'categories, not a probability per tag'):
        ImageTagger('clip_vit-base-p16')


def test_config_names_of_the_package():
    path, info = model_zoo.resolve_config(
        'mmprompt::clip/clip_vit-base-p16_zeroshot-cls_in1k.py')
    assert path == osp.join(REPO_ROOT, 'configs', 'clip',
                            'clip_vit-base-p16_zeroshot-cls_in1k.py')
    assert info is None
    cfg, _ = model_zoo.load_config(
        'mmprompt::ram/ram_swin-large-p4-w12_384px_normal.py')
    assert cfg.model.type == 'RAMNormal'
    with pytest.raises(UserError, match='close names: clip/clip_vit-base-p16'):
        model_zoo.resolve_config('mmprompt::clip/clip_vit-base-p16_in1k.py')
    assert model_zoo.resolve_config('clip_vit-base-p16')[1].name == \
        'clip_vit-base-p16'


def test_pretrained_means_the_same_for_clip_and_ram(tmp_path, monkeypatch):
    pytest.importorskip('open_clip')
    config = H.write_tiny_config(
        str(tmp_path / 'tiny.py'),
        'clip/clip_vit-base-p16_zeroshot-cls_cifar100.py')
    ckpt = H.write_converted_checkpoint(str(tmp_path / 'tiny.pth'), seed=5)
    loaded = get_model(config, pretrained=ckpt)
    random = get_model(config, pretrained=False)
    assert not all(
        (a == b).all() for a, b in zip(loaded.state_dict().values(),
                                       random.state_dict().values()))
    # True with a config file: its load_from (none here: random weights).
    get_model(config, pretrained=True)
    # A mmprompt:: name with an override, and safetensors weights.
    from mmprompt.utils.checkpoint import read_checkpoint, save_checkpoint
    sd, meta = read_checkpoint(ckpt)
    save_checkpoint(sd, meta, str(tmp_path / 'tiny.safetensors'))
    again = ZeroShotClassifier(
        config, pretrained=str(tmp_path / 'tiny.safetensors')).model
    for k, v in loaded.state_dict().items():
        if k in again.state_dict():
            assert (again.state_dict()[k] == v).all(), k


def test_readme_table_is_generated_from_the_zoo():
    assert model_zoo.update_readme(
        osp.join(REPO_ROOT, 'README.md'), check=True), (
            'README.md is stale: run python tools/misc/model_zoo_table.py')
    table = model_zoo.markdown_table()
    assert table.count('\n') == 1 + len(list_models())
    assert '[ram_plus_swin_large_14m.pth](https://huggingface.co/' in table


def test_open_clip_models_with_their_published_top1():
    """open_clip's CLIP ViTs are listed with the published ImageNet top-1
    of their weights (the issue's figures; ViT-L/14 LAION-2B: open_clip's
    README and the model card), their licence in the row."""
    published = {
        'clip_vit-huge-p14_laion2b': 78.0,
        'clip_vit-gigantic-p14_laion2b': 80.1,
        'clip_vit-large-p14_laion2b': 75.3,
        'clip_vit-large-p14_datacomp-xl': 79.2,
        'clip_vit-large-p14_dfn2b': 81.4,
        'clip_vit-huge-p14_dfn5b': 83.4,
        'clip_vit-huge-p14_dfn5b-378px': 84.4,
        'clip_vit-large-p14_metaclip-2.5b': 79.2,
        'clip_vit-huge-p14_metaclip-2.5b': 80.5,
    }
    names = list_models('*', task='Zero-shot Image Classification')
    got = {}
    for base in published:
        core, px = base.split('-378px')[0], '-378px' * base.endswith('px')
        for name in (base, f'{core}_zeroshot-cls_cifar100{px}'):
            assert name in names
            assert get_model_info(name).results == ()
        info = get_model_info(f'{core}_zeroshot-cls_in1k{px}')
        got[base] = info.results[0]['metrics']['Top 1 Accuracy']
        assert info.collection in OPEN_CLIP
    assert got == published
    with open(osp.join(REPO_ROOT, 'configs', 'open_clip',
                       'metafile.yml')) as f:
        rows = {m['Name']: m for m in yaml.safe_load(f)['Models']}
    assert {rows[n]['Metadata']['License'] for n in rows
            if 'dfn' in n} == {'Apple Sample Code License'}
    assert {rows[n]['Metadata']['License'] for n in rows
            if 'metaclip' in n} == {'CC-BY-NC-4.0'}
    # A near miss lists the closest names.
    with pytest.raises(UserError) as e:
        get_model_info('clip_vit-huge-p14_dfn5')
    assert str(e.value).startswith(
        "'clip_vit-huge-p14_dfn5' is not a model of the zoo; close names: "
        'clip_vit-huge-p14_dfn5b')
