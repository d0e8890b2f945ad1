# Copyright (c) mmprompt contributors. All rights reserved.
"""Category names the tokenizer cannot tell apart are one name: refused
wherever a category set enters, naming the pair. Byte-order marks are not
part of names; a RAM++ JSON object of descriptions is read as one."""
import json
import re
import unicodedata

import pytest

from mmprompt.models.clip.prompts import (resolve_categories,
                                          resolve_descriptions)
from mmprompt.models.clip.tokenizer import CLIPTokenizer, pre_tokens
from mmprompt.models.ram.label_embedding import (load_categories,
                                                 split_categories)
from mmprompt.utils.errors import InvalidInputError
from mmprompt.utils.io import read_lines

NFC = unicodedata.normalize('NFC', 'café')
NFD = unicodedata.normalize('NFD', 'café')
# (name, another spelling, what the tokenizer reads, how the message shows
# the other spelling)
PAIRS = [
    ('cat', '\uff43\uff41\uff54', 'cat', "'\uff43\uff41\uff54'"),
    ('fish & chips', 'fish &amp; chips', 'fish & chips',
     "'fish &amp; chips'"),
    (NFC, NFD, NFC, "'cafe\\u0301'"),
]


@pytest.fixture(scope='module')
def tokenizer():
    return CLIPTokenizer()


@pytest.mark.parametrize('name,other,read,shown', PAIRS,
                         ids=['full-width', 'html', 'nfc-nfd'])
def test_names_the_tokenizer_reads_alike_are_refused(tokenizer, name, other,
                                                     read, shown):
    """Each pair gets the very same token ids (so each name would tie with
    the other and get half its probability), and is refused naming it."""
    assert name != other
    assert tokenizer.encode(name) == tokenizer.encode(other)
    assert pre_tokens(name) == pre_tokens(other)
    message = (f'duplicate category names: {name!r} (#0) and {shown} (#2) '
               f'are the same to the tokenizer (read as {read!r}); keep one '
               'of each')
    with pytest.raises(InvalidInputError, match=f'^{re.escape(message)}$'):
        resolve_categories([name, 'dog', other])
    # RAM's and RAM++'s open sets, description keys included.
    with pytest.raises(InvalidInputError, match=re.escape(message)):
        split_categories([{name: ['a photo of it']}, 'dog', other])
    with pytest.raises(InvalidInputError, match=re.escape(message)):
        split_categories({name: 'one', 'dog': 'two', other: 'three'})


def test_names_the_tokenizer_tells_apart_are_kept(tokenizer):
    """Only the tokenizer's own cleaning decides: an accent or a plural is
    another name, with other ids."""
    names = ['café', 'cafe', 'cat', 'cats', 'fish and chips']
    assert len({tuple(tokenizer.encode(n)) for n in names}) == 5
    assert resolve_categories(names) == tuple(names)


def test_byte_order_mark_is_not_part_of_a_name(tmp_path):
    """A file saved with a UTF-8 byte-order mark (Windows editors) gives
    'cat', not '\\ufeffcat', for line lists and JSON files alike."""
    listing = tmp_path / 'names.txt'
    listing.write_bytes('\ufeffcat\ndog\n'.encode('utf-8'))
    assert read_lines(str(listing)) == ['cat', 'dog']
    assert resolve_categories(str(listing)) == ('cat', 'dog')
    assert load_categories(str(listing)) == ['cat', 'dog']
    described = tmp_path / 'descriptions.json'
    described.write_bytes(
        b'\xef\xbb\xbf' + json.dumps({'cat': 'a small cat'}).encode())
    assert resolve_descriptions(str(described),
                                ['cat', 'dog']) == {0: ('a small cat', )}
    listed = tmp_path / 'categories.json'
    listed.write_bytes(b'\xef\xbb\xbf' + json.dumps(['cat', 'dog']).encode())
    assert split_categories(load_categories(str(listed))) == (('cat', 'dog'),
                                                              {})


def test_ram_plus_json_object_is_read_as_descriptions(tmp_path):
    """A JSON object ``{name: [descriptions]}`` is what ImageTagger takes as
    a dict: names are its keys, and its descriptions are kept."""
    path = tmp_path / 'descriptions.json'
    path.write_text(
        json.dumps({
            'cat': ['a cat, small', 'a cat, furry'],
            'dog': ['a dog, loyal', 'a dog, barking'],
            'owl': 'an owl at night'
        }))
    names, descriptions = split_categories(load_categories(str(path)))
    assert names == ('cat', 'dog', 'owl')
    assert descriptions == {
        0: ('a cat, small', 'a cat, furry'),
        1: ('a dog, loyal', 'a dog, barking'),
        2: ('an owl at night', )
    }


def test_ram_open_set_names_that_make_one_prompt_are_refused():
    """RAM's open-set prompts read '_' as a space and '/' as 'or': such
    names make one prompt and would split its probability."""
    for other in ('red_fox', 'Red fox.'):
        with pytest.raises(
                InvalidInputError,
                match=rf"^duplicate category names: 'red fox' \(#0\) and "
                rf"{re.escape(repr(other))} \(#1\)"):
            split_categories(['red fox', other])
    with pytest.raises(InvalidInputError, match='make one prompt'):
        split_categories(['cat or dog', 'cat/dog'])
    names = split_categories(['red fox', 'red_panda'])[0]
    assert names == ('red fox', 'red_panda')


def test_a_tool_refuses_them_in_one_line(tmp_path, capsys):
    """tools/infer.py classify: exit 2, the pair named, nothing written."""
    pytest.importorskip('open_clip')
    import os.path as osp

    from PIL import Image
    from testing_utils import REPO_ROOT, load_module
    from testing_utils import clip as H

    from mmprompt.utils.errors import run_tool
    infer = load_module('_mmprompt_tools_infer_names',
                        osp.join(REPO_ROOT, 'tools', 'infer.py'))
    config = H.write_tiny_config(
        str(tmp_path / 'cfg.py'),
        'clip/clip_vit-base-p16_zeroshot-cls_in1k.py',
        model=dict(templates='simple'))
    image = str(tmp_path / 'a.png')
    Image.new('RGB', (32, 32)).save(image)
    out = tmp_path / 'classes.jsonl'
    with pytest.raises(SystemExit) as info:
        run_tool(infer.main, [
            'classify', image, '--model', config, '--checkpoint',
            H.write_converted_checkpoint(str(tmp_path / 'clip.pth')),
            '--categories', 'cat', 'dog', '\uff43\uff41\uff54', '--out',
            str(out), '--no-progress', '--num-workers', '0'
        ])
    assert info.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "error: duplicate category names: 'cat' (#0) and "
        "'\uff43\uff41\uff54' (#2) are the same to the tokenizer (read as "
        "'cat'); keep one of each")
    assert not out.exists()
