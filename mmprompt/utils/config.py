# Copyright (c) mmprompt contributors. All rights reserved.
"""A Config whose ``pretty_text`` is formatted once per content.

MMEngine's ``Config.pretty_text`` runs yapf over the whole config on every
call, and a Runner calls it at start-up, in the runtime-info hook and in
every checkpoint it saves: measured, three quarters of a tiny training
run's time. :func:`format_once` makes the text be formatted once for a
given content (the key is the unformatted dict), so a run logs and saves
the same pretty text as before, without paying for it again.
"""
from collections import OrderedDict

from mmengine.config import Config

__all__ = ['format_once']

_FORMATTED: 'OrderedDict[str, str]' = OrderedDict()
_KEEP = 8


class _FormattedOnce(Config):
    """``Config`` with a memoised ``pretty_text``; everything else is
    MMEngine's (copies and pickles keep the class)."""

    @property
    def pretty_text(self) -> str:
        key = repr((self.to_dict(), self._format_python_code))
        text = _FORMATTED.get(key)
        if text is None:
            text = Config.pretty_text.fget(self)
            _FORMATTED[key] = text
            while len(_FORMATTED) > _KEEP:
                _FORMATTED.popitem(last=False)
        else:
            _FORMATTED.move_to_end(key)
        return text


def format_once(cfg: Config) -> Config:
    """``cfg`` itself, its ``pretty_text`` memoised (see the module)."""
    if type(cfg) is Config:
        object.__setattr__(cfg, '__class__', _FormattedOnce)
    return cfg
