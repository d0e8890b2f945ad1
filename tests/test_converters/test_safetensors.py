# Copyright (c) mmprompt contributors. All rights reserved.
"""Converters write .safetensors by extension (or --format) with the meta in
its metadata; every load reads both formats; a .pth that needs code to
unpickle is refused."""
import json
import os
import os.path as osp
import stat

import pytest
import torch
from mmengine.runner import load_checkpoint as mmengine_load_checkpoint
from testing_utils import REPO_ROOT, load_module, same_results
from testing_utils import clip as C
from testing_utils import ram as R

from mmprompt.apis import ImageTagger, get_model
from mmprompt.converters import ConverterError, load_source_checkpoint
from mmprompt.converters.common import output_format
from mmprompt.utils.checkpoint import META_KEY, read_checkpoint

CLIP_CLI = load_module(
    '_mmprompt_openai_clip_to_mmprompt',
    osp.join(REPO_ROOT, 'tools', 'model_converters',
             'openai_clip_to_mmprompt.py'))
NORMAL = 'ram/ram_swin-large-p4-w12_384px_normal.py'


@pytest.fixture(scope='module')
def clip_files(tmp_path_factory):
    pytest.importorskip('open_clip')
    root = tmp_path_factory.mktemp('st_clip')
    src = root / 'openai.pt'
    torch.save(C.openai_state_dict(seed=7), src)
    config = C.write_tiny_config(
        str(root / 'tiny.py'), 'clip/clip_vit-base-p16_zeroshot-cls_cifar100.py')
    return dict(root=root, src=str(src), config=config)


def metadata(path):
    from safetensors import safe_open
    with safe_open(path, framework='pt') as f:
        return f.metadata()


def test_clip_converter_writes_safetensors_by_extension(clip_files):
    root = clip_files['root']
    pth, st = str(root / 'a.pth'), str(root / 'a.safetensors')
    old = os.umask(0o022)
    try:
        assert CLIP_CLI.main([clip_files['src'], pth]) == 0
        assert CLIP_CLI.main([clip_files['src'], st]) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(st).st_mode) == 0o644
    # The meta is JSON under 'mmprompt_meta'; the tensors are the .pth's.
    meta = json.loads(metadata(st)[META_KEY])
    assert meta['source'] == 'openai_clip' and meta['arch']
    sd_pth, meta_pth = read_checkpoint(pth)
    sd_st, meta_st = read_checkpoint(st)
    assert meta_st == json.loads(json.dumps(meta_pth))
    assert sd_pth.keys() == sd_st.keys()
    for k in sd_pth:
        assert torch.equal(sd_pth[k], sd_st[k]), k
    # Both load into the model, through the library and through MMEngine
    # (a Runner's load_from, init_cfg Pretrained).
    a = get_model(clip_files['config'], pretrained=pth)
    b = get_model(clip_files['config'], pretrained=st)
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k
    c = get_model(clip_files['config'], pretrained=False)
    mmengine_load_checkpoint(c, st, map_location='cpu', strict=False)
    assert torch.equal(c.state_dict()['visual.cls_token'],
                       a.state_dict()['visual.cls_token'])


def test_format_option(clip_files, capsys):
    root = clip_files['root']
    dst = str(root / 'b.safetensors')
    assert CLIP_CLI.main([clip_files['src'], dst, '--format',
                          'safetensors']) == 0
    assert META_KEY in metadata(dst)
    # --format and the extension disagree: refused before any work.
    bad = str(root / 'c.pth')
    assert CLIP_CLI.main([clip_files['src'], bad, '--format',
                          'safetensors']) == 2
    assert 'needs .safetensors' in capsys.readouterr().err
    assert not osp.exists(bad)
    assert output_format('x.safetensors') == 'safetensors'
    assert output_format('x.pth') == output_format('x', 'pth') == 'pth'
    with pytest.raises(ConverterError, match='needs a name not ending'):
        output_format('x.safetensors', 'pth')


def test_converted_safetensors_is_not_converted_again(clip_files, capsys):
    root = clip_files['root']
    st = str(root / 'd.safetensors')
    assert CLIP_CLI.main([clip_files['src'], st]) == 0
    assert CLIP_CLI.main([st, str(root / 'e.safetensors')]) == 2
    assert 'already an mmprompt checkpoint' in capsys.readouterr().err


class Payload:
    """Unpickling this needs code (a global that is not a tensor type)."""

    def __init__(self):
        self.weight = torch.zeros(2)


def test_pth_that_needs_code_is_refused(tmp_path, capsys):
    path = str(tmp_path / 'objects.pth')
    torch.save(dict(state_dict=dict(w=torch.zeros(1)), obj=Payload()), path)
    with pytest.raises(ConverterError, match='pickled Python objects'):
        load_source_checkpoint(path)
    assert CLIP_CLI.main([path, str(tmp_path / 'out.safetensors')]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'never does' in err[0]
    from mmprompt.utils.errors import CheckpointError
    with pytest.raises(CheckpointError, match='refuses to run'):
        read_checkpoint(path)


def test_ram_converter_safetensors_embeds_tags(ram_vectors_dir, tmp_path):
    pth = R.convert_tiny(ram_vectors_dir, str(tmp_path))
    cli = load_module(
        '_mmprompt_ram_to_mmprompt',
        osp.join(REPO_ROOT, 'tools', 'model_converters', 'ram_to_mmprompt.py'))
    meta = R.expected(ram_vectors_dir)
    st = str(tmp_path / 'ram.safetensors')
    assert cli.main([
        osp.join(ram_vectors_dir, 'ram_tiny_state_dict.pth'), st,
        '--tag-list', str(tmp_path / 'ram_tags.txt'), '--tag-list-chinese',
        str(tmp_path / 'ram_tags_zh.txt'), '--thresholds',
        str(tmp_path / 'ram_thr.txt')
    ]) == 0
    stored = json.loads(metadata(st)[META_KEY])
    assert stored['tag_list'] == meta['tags_en']
    assert stored['tag_list_chinese'] == meta['tags_zh']
    assert stored['model'] == 'RAMNormal'
    config = R.write_tiny_config(str(tmp_path / 'normal.py'), NORMAL, 20)
    images = [osp.join(ram_vectors_dir, 'images', n) for n in R.IMAGES]
    a = ImageTagger(config, pretrained=pth)(images, batch_size=2)
    b = ImageTagger(config, pretrained=st)(images, batch_size=2)
    assert same_results(a, b)
    assert ' | '.join(b[0]['tags']) == meta['expected']['tags_en'][0]


def test_init_cfg_pretrained_reads_safetensors(tmp_path):
    """An open-set RAM's text tower (init_cfg Pretrained, with a prefix)
    from a .safetensors file."""
    from mmprompt.registry import MODELS
    from mmprompt.utils.checkpoint import save_checkpoint
    pth = R.save_text_encoder(str(tmp_path / 'text.pth'), seed=3)
    sd, _ = read_checkpoint(pth)
    st = str(tmp_path / 'text.safetensors')
    save_checkpoint(sd, {}, st)
    encoder = MODELS.build(R.tiny_text_encoder(st))
    encoder.init_weights()
    for k, v in encoder.state_dict().items():
        assert torch.equal(v, sd[f'text_encoder.{k}']), k
