# Copyright (c) mmprompt contributors. All rights reserved.
import copy
import pickle
from unittest import mock

from mmengine.config import Config

from mmprompt.utils.config import format_once


def test_pretty_text_is_formatted_once_per_content():
    cfg = format_once(Config(dict(model=dict(type='CLIP', width=64),
                                  work_dir='w')))
    want = Config(cfg.to_dict()).pretty_text
    with mock.patch('mmengine.config.config.FormatCode',
                    return_value=(want, None)) as fmt:
        first = cfg.pretty_text
        # Copies (the Runner deep-copies its config) and pickles (DataLoader
        # workers) keep the memo.
        again = [copy.deepcopy(cfg).pretty_text, copy.copy(cfg).pretty_text,
                 pickle.loads(pickle.dumps(cfg)).pretty_text]
        calls = fmt.call_count
        cfg.model.width = 128  # new content: formatted again
        changed = cfg.pretty_text
    assert first == want and again == [want] * 3
    assert calls <= 1  # 0 when an earlier test formatted the same content
    assert fmt.call_count == calls + 1
    assert 'width=128' in Config(cfg.to_dict()).pretty_text
    assert changed == want  # what the mocked formatter returned
