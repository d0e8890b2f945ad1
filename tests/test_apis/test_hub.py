# Copyright (c) mmprompt contributors. All rights reserved.
"""Official weights by zoo name: download from a local server (127.0.0.1),
verify, convert, cache as safetensors; what goes wrong leaves nothing."""
import dataclasses
import os
import os.path as osp
import socket
import stat

import pytest
import torch
from testing_utils import clip as H
from testing_utils import ram as R

from mmprompt.apis import ImageTagger, builder, hub, model_zoo
from mmprompt.utils.checkpoint import META_KEY, read_checkpoint
from mmprompt.utils.errors import UserError

NAME = 'clip_vit-base-p16'
RAM_NAME = 'ram_swin-large-p4-w12_384px_normal'
NORMAL = 'ram/ram_swin-large-p4-w12_384px_normal.py'


@pytest.fixture(scope='module')
def payload():
    pytest.importorskip('open_clip')
    data = H.openai_checkpoint_bytes(seed=3)
    return data, H.sha256(data)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv('MMPROMPT_HOME', str(tmp_path / 'home'))
    return tmp_path / 'home'


def patch_zoo(monkeypatch, name, **changes):
    """Replace fields of a zoo entry for one test."""
    zoo = model_zoo.load_zoo()
    monkeypatch.setitem(zoo, name.lower(),
                        dataclasses.replace(zoo[name.lower()], **changes))


def all_files(root):
    return sorted(
        osp.relpath(osp.join(d, f), root) for d, _, files in os.walk(root)
        for f in files)


def cached_name(url, sha):
    return 'checkpoints/' + osp.splitext(
        url.split('/')[-1])[0] + f'_{sha[:8]}.safetensors'


def closed_port_url(path):
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    return f'http://127.0.0.1:{port}{path}'


def test_home(monkeypatch):
    monkeypatch.setenv('MMPROMPT_HOME', '/some/where')
    assert hub.get_home() == '/some/where'
    monkeypatch.delenv('MMPROMPT_HOME')
    assert hub.get_home() == osp.join(
        osp.expanduser('~'), '.cache', 'mmprompt')


def test_clip_download_verify_convert_cache(payload, home, monkeypatch):
    data, sha = payload
    with H.FileServer({'/m/ViT-B-16.pt': data}) as server:
        url = server.url('/m/ViT-B-16.pt')
        patch_zoo(monkeypatch, NAME, weights=url, sha256=sha)
        old_umask = os.umask(0o022)
        try:
            path = hub.get_checkpoint(NAME, progress=False)
        finally:
            os.umask(old_umask)
        # Only the converted checkpoint is kept, as safetensors, 0644.
        assert all_files(home) == [
            cached_name(url, sha),
            cached_name(url, sha) + '.stamp.json'
        ]
        assert path == str(home / cached_name(url, sha))
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
        from safetensors import safe_open
        with safe_open(path, framework='pt') as f:
            assert META_KEY in f.metadata()
        state_dict, meta = read_checkpoint(path)
        assert meta['source_sha256'] == sha
        assert meta['source'] == 'openai_clip'
        assert meta['zoo_name'] == NAME
        assert 'visual.cls_token' in state_dict
        assert server.requests == ['/m/ViT-B-16.pt']
        # The second call reads the cache: no request.
        assert hub.get_checkpoint(NAME, progress=False) == path
        assert server.requests == ['/m/ViT-B-16.pt']


def test_damaged_cache_is_fetched_again(payload, home, monkeypatch):
    """Issue 12, s.6: a corrupted cached checkpoint was returned as is."""
    data, sha = payload
    with H.FileServer({'/m/ViT-B-16.pt': data}) as server:
        url = server.url('/m/ViT-B-16.pt')
        patch_zoo(monkeypatch, NAME, weights=url, sha256=sha)
        path = hub.get_checkpoint(NAME, progress=False)
        good = open(path, 'rb').read()
        # Same size, one byte changed: the hash catches it.
        with open(path, 'r+b') as f:
            f.seek(len(good) // 2)
            f.write(bytes([good[len(good) // 2] ^ 1]))
        assert hub.get_checkpoint(NAME, progress=False) == path
        assert open(path, 'rb').read() == good
        # Cut short: the size catches it.
        with open(path, 'r+b') as f:
            f.truncate(len(good) // 3)
        assert hub.get_checkpoint(NAME, progress=False) == path
        assert open(path, 'rb').read() == good
        assert len(server.requests) == 3
        # No stamp (an older cache): read once, stamped, no download.
        os.remove(path + '.stamp.json')
        assert hub.get_checkpoint(NAME, progress=False) == path
        assert osp.exists(path + '.stamp.json')
        assert len(server.requests) == 3


def test_names_sharing_weights_share_the_cache(payload, home, monkeypatch):
    data, sha = payload
    with H.FileServer({'/m/ViT-B-16.pt': data}) as server:
        url = server.url('/m/ViT-B-16.pt')
        for name in (NAME, 'clip_vit-base-p16_zeroshot-cls_in1k'):
            patch_zoo(monkeypatch, name, weights=url, sha256=sha)
        a = hub.get_checkpoint(NAME, progress=False)
        b = hub.get_checkpoint(
            'clip_vit-base-p16_zeroshot-cls_in1k', progress=False)
        assert a == b and len(server.requests) == 1


def test_wrong_checksum_caches_nothing(payload, home, monkeypatch):
    data, sha = payload
    wrong = '0' * 64
    with H.FileServer({'/m/ViT-B-16.pt': data}) as server:
        patch_zoo(
            monkeypatch,
            NAME,
            weights=server.url('/m/ViT-B-16.pt'),
            sha256=wrong)
        with pytest.raises(hub.ChecksumError, match=f'{sha}.*{wrong}'):
            hub.get_checkpoint(NAME, progress=False)
    assert all_files(home) == []


def test_cut_short_download_caches_nothing(payload, home, monkeypatch):
    data, sha = payload
    files = {'/m/ViT-B-16.pt': data}
    with H.FileServer(
            files, truncate={'/m/ViT-B-16.pt': len(data) // 2}) as server:
        patch_zoo(
            monkeypatch,
            NAME,
            weights=server.url('/m/ViT-B-16.pt'),
            sha256=sha)
        with pytest.raises(hub.DownloadError, match='stopped after') as e:
            hub.get_checkpoint(NAME, progress=False)
        assert '\n' not in str(e.value)
        assert all_files(home) == []
        # A later, complete download works and uses nothing of the first.
        server.truncate.clear()
        path = hub.get_checkpoint(NAME, progress=False)
        assert all_files(home) == [
            osp.relpath(path, home),
            osp.relpath(path, home) + '.stamp.json'
        ]
        assert len(server.requests) == 2


def test_offline_is_one_line_with_what_to_do(payload, home, monkeypatch):
    data, sha = payload
    url = closed_port_url('/m/ViT-B-16.pt')
    patch_zoo(monkeypatch, NAME, weights=url, sha256=sha)
    with pytest.raises(hub.DownloadError) as e:
        hub.get_checkpoint(NAME, progress=False)
    message = str(e.value)
    assert '\n' not in message
    assert f'cannot download {url}' in message
    downloads = str(home / 'downloads')
    assert f'download it by hand to {downloads}/' in message
    assert ('tools/model_converters/openai_clip_to_mmprompt.py '
            f'{downloads}/ViT-B-16.pt') in message
    assert all_files(home) == []
    # Done by hand: the file in downloads/ is checked and converted.
    os.makedirs(downloads, exist_ok=True)
    with open(osp.join(downloads, 'ViT-B-16.pt'), 'wb') as f:
        f.write(data)
    path = hub.get_checkpoint(NAME, progress=False)
    assert read_checkpoint(path)[1]['source_sha256'] == sha
    # A file by hand with another SHA-256 is refused, naming it.
    patch_zoo(monkeypatch, NAME, weights=url, sha256='1' * 64)
    with pytest.raises(hub.ChecksumError, match='ViT-B-16.pt: SHA-256'):
        hub.get_checkpoint(NAME, progress=False)


def test_offline_tools_print_one_line(payload, home, monkeypatch, capsys):
    """tools/test.py with a zoo name, offline: one line on stderr, exit 2."""
    from testing_utils import REPO_ROOT, load_module
    from mmprompt.utils.errors import run_tool
    data, sha = payload
    url = closed_port_url('/m/ViT-B-16.pt')
    patch_zoo(monkeypatch, NAME, weights=url, sha256=sha)
    tool = load_module('_mmprompt_tools_test',
                       osp.join(REPO_ROOT, 'tools', 'test.py'))
    with pytest.raises(SystemExit) as e:
        run_tool(tool.main, [
            'mmprompt::clip/clip_vit-base-p16_zeroshot-cls_cifar100.py', NAME
        ])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('error: cannot download')
    assert url in err[0] and 'convert it yourself' in err[0]


def test_download_helper(tmp_path):
    data = b'x' * 3000
    with H.FileServer({'/f': data}) as server:
        dst = str(tmp_path / 'sub' / 'f.bin')
        assert hub.download(
            server.url('/f'), dst, H.sha256(data), progress=False) == dst
        assert open(dst, 'rb').read() == data
        with pytest.raises(hub.DownloadError, match='404'):
            hub.download(
                server.url('/missing'),
                str(tmp_path / 'g'),
                H.sha256(data),
                progress=False)
    assert sorted(os.listdir(tmp_path / 'sub')) == ['f.bin']
    assert not osp.exists(tmp_path / 'g')


# -- RAM / RAM++ by name ------------------------------------------------------
@pytest.fixture(scope='module')
def ram_release(ram_vectors_dir, tmp_path_factory):
    """The tiny reference RAM as recognize-anything releases it (a raw
    checkpoint) and its tag lists and thresholds as files."""
    root = tmp_path_factory.mktemp('ram_release')
    meta = R.expected(ram_vectors_dir)

    def text(lines):
        return ('\n'.join(str(x) for x in lines) + '\n').encode('utf-8')

    files = {
        '/hf/ram_swin_large_14m.pth':
        open(osp.join(ram_vectors_dir, 'ram_tiny_state_dict.pth'),
             'rb').read(),
        '/gh/ram_tag_list.txt':
        text(meta['tags_en']),
        '/gh/ram_tag_list_chinese.txt':
        text(meta['tags_zh']),
        '/gh/ram_tag_list_threshold.txt':
        text(meta['thresholds']),
    }
    config = R.write_tiny_config(str(root / 'normal.py'), NORMAL, 20)
    return dict(files=files, config=config, meta=meta)


def patch_ram(monkeypatch, server, release, **wrong):
    f = release['files']
    keys = dict(
        tag_list='/gh/ram_tag_list.txt',
        tag_list_chinese='/gh/ram_tag_list_chinese.txt',
        thresholds='/gh/ram_tag_list_threshold.txt')
    data_files = {
        k: dict(URL=server.url(p), SHA256=wrong.get(k, H.sha256(f[p])))
        for k, p in keys.items()
    }
    patch_zoo(
        monkeypatch,
        RAM_NAME,
        weights=server.url('/hf/ram_swin_large_14m.pth'),
        sha256=H.sha256(f['/hf/ram_swin_large_14m.pth']),
        data_files=data_files,
        config=release['config'])


def test_ram_by_name_downloads_converts_and_tags(ram_release, ram_vectors_dir,
                                                 home, monkeypatch):
    with H.FileServer(ram_release['files']) as server:
        patch_ram(monkeypatch, server, ram_release)
        tagger = ImageTagger(RAM_NAME)  # pretrained=True: the zoo's weights
        assert len(server.requests) == 4
        path, = [
            osp.join(home, p) for p in all_files(home)
            if not p.endswith('.stamp.json')
        ]
        assert path.endswith('.safetensors')
        state_dict, meta = read_checkpoint(path)
        assert meta['tag_list'] == ram_release['meta']['tags_en']
        assert meta['tag_list_chinese'] == ram_release['meta']['tags_zh']
        torch.testing.assert_close(
            state_dict['class_threshold'],
            torch.tensor(
                ram_release['meta']['thresholds'], dtype=torch.float32))
        # Cached: a second tagger makes no request.
        ImageTagger(RAM_NAME)
        assert len(server.requests) == 4
    images = [osp.join(ram_vectors_dir, 'images', name) for name in R.IMAGES]
    results = tagger(images, batch_size=2)
    expected = ram_release['meta']['expected']
    for i, result in enumerate(results):
        assert ' | '.join(result['tags']) == expected['tags_en'][i]
        zh = expected['tags_zh'][i]
        assert result['tags_chinese'] == (
            [t.strip() for t in zh.split(' | ')] if zh else [])


def test_ram_offline_lists_all_four_files(ram_release, home, monkeypatch):
    """Offline, RAM's message names the weights, both tag lists and the
    thresholds, each with its URL and destination; putting each file
    where it says converts without a network."""
    import re

    class Closed:
        base = closed_port_url('')

        def url(self, path):
            return self.base + path

    closed = Closed()
    patch_ram(monkeypatch, closed, ram_release)
    with pytest.raises(hub.DownloadError) as e:
        hub.get_checkpoint(RAM_NAME, progress=False)
    message = str(e.value)
    assert '\n' not in message
    pairs = re.findall(r'(http://\S+) to (\S+?),', message)
    downloads = home / 'downloads'
    assert pairs == [(closed.url(p), str(downloads / osp.basename(p)))
                     for p in ('/hf/ram_swin_large_14m.pth',
                               '/gh/ram_tag_list.txt',
                               '/gh/ram_tag_list_chinese.txt',
                               '/gh/ram_tag_list_threshold.txt')]
    for url, dst in pairs:
        with open(dst, 'wb') as f:
            f.write(ram_release['files'][url[len(closed.base):]])
    path = hub.get_checkpoint(RAM_NAME, progress=False)
    assert read_checkpoint(path)[1]['tag_list'] == \
        ram_release['meta']['tags_en']


def test_ram_bad_tag_list_checksum_caches_nothing(ram_release, home,
                                                  monkeypatch):
    with H.FileServer(ram_release['files']) as server:
        patch_ram(monkeypatch, server, ram_release, thresholds='2' * 64)
        with pytest.raises(
                hub.ChecksumError,
                match='ram_tag_list_threshold.txt: SHA-256'):
            ImageTagger(RAM_NAME)
    assert all_files(home) == []


def clip_with_tiny_text_bytes(seed=0):
    """An OpenAI-layout CLIP whose text tower has testing_utils.ram's
    TINY_TEXT shapes (32 wide, 2 layers, 4 heads, 512-d output)."""
    import io

    import open_clip
    torch.manual_seed(seed)
    model = open_clip.model.CLIP(
        embed_dim=512,
        vision_cfg=dict(
            layers=2, width=64, head_width=64, patch_size=32, image_size=64),
        text_cfg=dict(
            context_length=77, vocab_size=49408, width=32, heads=4, layers=2),
        quick_gelu=True)
    buffer = io.BytesIO()
    torch.save({
        k: v.detach().clone()
        for k, v in model.state_dict().items()
    }, buffer)
    return buffer.getvalue()


def test_openset_ram_by_name_gets_its_text_tower(ram_release, ram_vectors_dir,
                                                 home, monkeypatch, tmp_path):
    pytest.importorskip('open_clip')
    name = 'ram_swin-large-p4-w12_384px_openset'
    clip_bytes = clip_with_tiny_text_bytes(seed=4)
    files = dict(ram_release['files'], **{'/oa/ViT-B-16.pt': clip_bytes})
    config = R.write_tiny_config(
        str(tmp_path / 'openset.py'),
        'ram/ram_swin-large-p4-w12_384px_openset.py',
        20,
        text_encoder=R.tiny_text_encoder())
    with H.FileServer(files) as server:
        patch_ram(monkeypatch, server, ram_release)
        ram_entry = model_zoo.get_model_info(RAM_NAME)
        patch_zoo(
            monkeypatch,
            name,
            weights=ram_entry.weights,
            sha256=ram_entry.sha256,
            data_files=ram_entry.data_files,
            config=config)
        patch_zoo(
            monkeypatch,
            'clip_vit-base-p16',
            weights=server.url('/oa/ViT-B-16.pt'),
            sha256=H.sha256(clip_bytes))
        tagger = ImageTagger(name)
        assert sorted(server.requests)[0] == '/gh/ram_tag_list.txt'
        assert '/oa/ViT-B-16.pt' in server.requests
    # The text tower is the converted CLIP's, loaded from safetensors.
    clip_sd, _ = read_checkpoint(hub.get_checkpoint('clip_vit-base-p16'))
    for k, v in tagger.model.text_encoder.state_dict().items():
        assert torch.equal(v, clip_sd[f'text_encoder.{k}']), k
    images = [osp.join(ram_vectors_dir, 'images', n) for n in R.IMAGES]
    categories = ['apple', 'umbrella stand', 'Ale']
    results = tagger(images, categories=categories, batch_size=2)
    assert all(r['tags_chinese'] is None for r in results)
    assert len(results) == 2


def test_offline_demo_classify_prints_one_line(payload, home, monkeypatch,
                                               capsys, tmp_path):
    """demo/classify.py with a zoo name, offline: one line, no traceback."""
    import runpy
    import sys

    from PIL import Image

    from testing_utils import REPO_ROOT
    data, sha = payload
    url = closed_port_url('/m/ViT-B-16.pt')
    patch_zoo(monkeypatch, NAME, weights=url, sha256=sha)
    image = str(tmp_path / 'a.png')
    Image.new('RGB', (8, 8)).save(image)
    monkeypatch.setattr(
        sys, 'argv',
        ['classify.py', image, '--model', NAME, '--categories', 'cat', 'dog'])
    with pytest.raises(SystemExit) as e:
        runpy.run_path(
            osp.join(REPO_ROOT, 'demo', 'classify.py'), run_name='__main__')
    assert e.value.code not in (0, None)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('error: cannot download')
    assert url in err[0]


def test_download_weights_tool(payload, home, monkeypatch, capsys):
    from testing_utils import REPO_ROOT, load_module
    from mmprompt.utils.errors import run_tool
    tool = load_module(
        '_mmprompt_download_weights',
        osp.join(REPO_ROOT, 'tools', 'misc', 'download_weights.py'))
    data, sha = payload
    with H.FileServer({'/m/ViT-B-16.pt': data}) as server:
        for name in (NAME, 'clip_vit-base-p16_zeroshot-cls_in1k'):
            patch_zoo(
                monkeypatch,
                name,
                weights=server.url('/m/ViT-B-16.pt'),
                sha256=sha)
        assert tool.main([NAME, 'clip_vit-base-p16_zeroshot-cls_in1k']) == 0
        assert len(server.requests) == 1
    # The results, beside MMEngine's log lines (also on stdout).
    out = [
        line for line in capsys.readouterr().out.strip().splitlines()
        if ' - mmengine - ' not in line
    ]
    cached = home / cached_name(server.url('/m/ViT-B-16.pt'), sha)
    assert out == [f'{NAME}: {cached}']
    with pytest.raises(SystemExit) as e:
        run_tool(tool.main, ['clip_vit-base-p61'])
    assert e.value.code == 2
    assert 'close names: clip_vit-base-p16' in capsys.readouterr().err
    # A config of one's own with a zoo name as its weights.
    from mmprompt.apis import get_model
    config = H.write_tiny_config(
        str(home / 'tiny.py'),
        'clip/clip_vit-base-p16_zeroshot-cls_cifar100.py')
    model = get_model(config, pretrained=NAME)
    sd, _ = read_checkpoint(hub.get_checkpoint(NAME))
    assert torch.equal(model.state_dict()['visual.cls_token'],
                       sd['visual.cls_token'])


def test_mirror_url(monkeypatch):
    url = 'https://huggingface.co/a/b/resolve/main/w.pth?download=true'
    monkeypatch.delenv(hub.ENV_ENDPOINT, raising=False)
    assert hub.mirror_url(url) == url
    assert hub.mirror_url(url, 'http://10.0.0.1:8080/zoo/') == (
        'http://10.0.0.1:8080/zoo/a/b/resolve/main/w.pth?download=true')
    monkeypatch.setenv(hub.ENV_ENDPOINT, 'https://m.example.com/{host}')
    assert hub.mirror_url(url) == (
        'https://m.example.com/huggingface.co/a/b/resolve/main/w.pth'
        '?download=true')
    assert hub.mirror_url(url, '') == url  # the argument wins
    monkeypatch.setenv(hub.ENV_ENDPOINT, 'm.example.com')
    with pytest.raises(
            UserError,
            match=r"^mirror endpoint 'm.example.com' \(MMPROMPT_ENDPOINT\) "
            'is not an http'):
        hub.mirror_url(url)


def test_download_from_mirror_is_checked(payload, home, monkeypatch):
    """The official host is unreachable; the mirror serves the file under
    the same path; a wrong file on the mirror is refused as before."""
    data, sha = payload
    official = closed_port_url('/m/ViT-B-16.pt')
    host = official.split('/')[2]
    files = {
        f'/zoo/{host}/m/ViT-B-16.pt': data,
        '/bad/m/ViT-B-16.pt': data[:-1] + b'!'
    }
    patch_zoo(monkeypatch, NAME, weights=official, sha256=sha)
    with H.FileServer(files) as server:
        monkeypatch.setenv(hub.ENV_ENDPOINT, server.url('/bad'))
        with pytest.raises(
                hub.ChecksumError,
                match=rf'^{server.url("/bad/m/ViT-B-16.pt")}: SHA-256 .* '
                f'differs from the published {sha}'):
            hub.get_checkpoint(NAME, progress=False)
        assert all_files(home) == []
        monkeypatch.setenv(hub.ENV_ENDPOINT, server.url('/zoo/{host}'))
        path = hub.get_checkpoint(NAME, progress=False)
        assert server.requests == [
            '/bad/m/ViT-B-16.pt', f'/zoo/{host}/m/ViT-B-16.pt'
        ]
    assert path == str(home / cached_name(official, sha))
    assert read_checkpoint(path)[1]['source_url'] == official


def test_weight_files_are_those_get_model_loads(payload, home, monkeypatch,
                                                tmp_path):
    """What tools/infer.py's manifest digests: the zoo's cached file for a
    name, the file given, nothing for random weights."""
    data, sha = payload
    with H.FileServer({'/m/ViT-B-16.pt': data}) as server:
        url = server.url('/m/ViT-B-16.pt')
        patch_zoo(monkeypatch, NAME, weights=url, sha256=sha)
        cached = str(home / cached_name(url, sha))
        assert builder.weight_files(NAME) == [cached]
        assert builder.weight_files(NAME, pretrained=NAME) == [cached]
    other = tmp_path / 'other.pth'
    other.write_bytes(b'x')
    link = tmp_path / 'link.pth'
    link.symlink_to(other)
    assert builder.weight_files(NAME, pretrained=str(link)) == [str(other)]
    assert builder.weight_files(NAME, pretrained=False) == []
