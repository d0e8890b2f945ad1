# Copyright (c) mmprompt contributors. All rights reserved.
"""SigLIP / SigLIP 2 zoo rows: what open_clip loads, fetched by hand (no
SHA-256 is published), converted, with the model's tokenizer kept."""
import os
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from testing_utils import siglip

from mmprompt.apis import hub, list_models
from mmprompt.apis.builder import use_zoo_tokenizer
from mmprompt.apis.model_zoo import get_model_info, url_file_name
from mmprompt.utils.checkpoint import read_checkpoint


def test_siglip_rows_are_open_clips_models():
    """Each row's weights are open_clip's hf_hub file for the model, its
    tokenizer the one open_clip's config names, its config's shapes and
    image size open_clip's."""
    pretrained = pytest.importorskip('open_clip.pretrained')
    factory = pytest.importorskip('open_clip.factory')
    names = list_models('siglip*')
    assert len(names) == 21  # 7 models: weights, in1k, cifar100
    for name in names:
        info = get_model_info(name)
        repo = info.weights.split('/')[4]
        assert info.weights == ('https://huggingface.co/timm/'
                                f'{repo}/resolve/main/'
                                'open_clip_pytorch_model.bin')
        assert pretrained.get_pretrained_cfg(repo, 'webli')['hf_hub'] == \
            f'timm/{repo}/'
        oc = factory.get_model_config(repo)
        text = oc['text_cfg']
        tokenizer_url = info.data_files['tokenizer']['URL']
        assert tokenizer_url == ('https://huggingface.co/'
                                 f"{text['hf_tokenizer_name']}/resolve/main/"
                                 'tokenizer.json')
        assert info.sha256 is None and info.converter == 'siglip'
        model = Config.fromfile(info.config).model
        assert model.text_backbone.vocab_size == text['vocab_size']
        assert model.tokenizer.vocab_size == text['vocab_size']
        assert model.text_backbone.context_length == \
            text['context_length'] == model.tokenizer.context_length == 64
        assert model.vision_backbone.img_size == oc['vision_cfg'][
            'image_size']
        assert model.tokenizer.pad_token == (
            '</s>' if text['vocab_size'] == 32000 else '<pad>')
    # Hugging Face's shared file names get the repository's name.
    info = get_model_info('siglip2_vit-so400m-p16-384px')
    tokenizer_url = info.data_files['tokenizer']['URL']
    assert url_file_name(info.weights) == \
        'ViT-SO400M-16-SigLIP2-384_open_clip_pytorch_model.bin'
    assert url_file_name(tokenizer_url) == \
        'ViT-SO400M-16-SigLIP2-384_tokenizer.json'


def test_siglip_by_hand_converts_and_keeps_the_tokenizer(tmp_path,
                                                         monkeypatch):
    """No SHA-256 published: offline, one line says where to put the files
    and how to convert; put there, they are converted and the tokenizer
    is cached beside the checkpoint."""
    home = tmp_path / 'home'
    monkeypatch.setenv('MMPROMPT_HOME', str(home))
    name = 'siglip2_vit-base-p16_zeroshot-cls_in1k'
    with pytest.raises(hub.DownloadError) as e:
        hub.get_checkpoint(name, progress=False)
    message = str(e.value)
    assert 'has no published SHA-256 in the zoo, so mmprompt does not ' \
        'download it' in message
    assert osp.join(str(home), 'downloads') in message
    assert 'tools/model_converters/siglip_to_mmprompt.py ' + osp.join(
        str(home), 'downloads',
        'ViT-B-16-SigLIP2_open_clip_pytorch_model.bin') in message
    downloads = home / 'downloads'
    os.makedirs(downloads, exist_ok=True)
    source = siglip.randomize_(siglip.TinyReference().state_dict())
    torch.save(source,
               downloads / 'ViT-B-16-SigLIP2_open_clip_pytorch_model.bin')
    tokenizer = siglip.train_tokenizer(str(tmp_path))
    os.replace(tokenizer, downloads / 'ViT-B-16-SigLIP2_tokenizer.json')
    path = hub.get_checkpoint(name, progress=False)
    state_dict, meta = read_checkpoint(path)
    assert meta['source'] == 'siglip' and meta['zoo_name'] == name
    assert torch.equal(state_dict['logit_bias'], source['logit_bias'])
    cached = hub.tokenizer_path(name)
    assert cached == osp.splitext(path)[0] + '.tokenizer.json'
    with open(cached, 'rb') as a, open(
            downloads / 'ViT-B-16-SigLIP2_tokenizer.json', 'rb') as b:
        assert a.read() == b.read()
    # get_model and tools/test.py point the config at it.
    cfg = Config.fromfile(get_model_info(name).config)
    use_zoo_tokenizer(cfg, name)
    assert cfg.model.tokenizer.tokenizer_file == cached
    # Cached: the files by hand are no longer needed.
    for f in os.listdir(downloads):
        os.remove(downloads / f)
    assert hub.get_checkpoint(name, progress=False) == path
    assert hub.tokenizer_path('clip_vit-base-p16') is None
