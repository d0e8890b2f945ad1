# Copyright (c) mmprompt contributors. All rights reserved.
"""Reading configs with one-line errors, and a Config whose ``pretty_text``
is formatted once per content."""
import contextlib
import inspect
import re
from collections import OrderedDict
from typing import Iterator, List, Optional, Sequence, Tuple

from mmengine.config import Config

from .errors import UserError, did_you_mean

__all__ = ['format_once', 'parse_config', 'require_keys', 'config_errors']

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
    """``cfg`` itself, its ``pretty_text`` memoised: MMEngine runs yapf over
    the config at start-up and in every checkpoint, measured three quarters
    of a tiny training run's time."""
    if type(cfg) is Config:
        object.__setattr__(cfg, '__class__', _FormattedOnce)
    return cfg


def parse_config(path: str) -> Config:
    """``Config.fromfile(path)``, or a :class:`UserError` naming the file
    and the reason's first line if it does not parse.

    Args:
        path (str): A config file.
    """
    try:
        return Config.fromfile(path)
    except UserError:
        raise
    except (SyntaxError, KeyError, ValueError, NameError, OSError,
            ImportError, AttributeError, TypeError) as e:
        if isinstance(e, SyntaxError) and e.lineno:
            reason = f'{e.msg} at line {e.lineno}'
        else:
            reason = str(e).splitlines()[0] if str(e) else repr(e)
        raise UserError(f'{path}: cannot be read ({type(e).__name__}: '
                        f'{reason})') from None


def require_keys(cfg: Config, keys: Sequence[str], path: str) -> None:
    """Refuse a config without one of ``keys`` at its top level, naming the
    nearest key it has (a mistyped ``train_dataloder``).

    Args:
        cfg (Config): The config.
        keys (Sequence[str]): The top-level keys the tool reads.
        path (str): The config's name, for the message.
    """
    for key in keys:
        if cfg.get(key) is None:
            raise UserError(f'{path}: no {key!r} in the config'
                            f'{did_you_mean(key, list(cfg.keys()))}')


_UNEXPECTED = re.compile(r"(\w+)\.__init__\(\) got an unexpected keyword "
                         r"argument '(\w+)'")
_UNREGISTERED = re.compile(r'^(\S+) is not in the (\S+)::([\w ]+) registry')


def _dicts_with(node, key: str,
                prefix: str = '') -> Iterator[Tuple[str, dict]]:
    """``(dotted path, dict)`` of every dict under ``node`` holding
    ``key``."""
    if isinstance(node, dict):
        if key in node:
            yield prefix, node
        for k, v in node.items():
            yield from _dicts_with(v, key, f'{prefix}{k}.')
    elif isinstance(node, (list, tuple)):
        for i, v in enumerate(node):
            yield from _dicts_with(v, key, f'{prefix}{i}.')


def _find_class(name: str) -> Optional[type]:
    """The class registered as ``name`` in any of mmprompt's registries
    (or their parents)."""
    from mmprompt import registry
    for node in registry.__all__:
        try:
            cls = getattr(registry, node).get(name)
        except Exception:  # a registry that cannot import its locations
            cls = None
        if inspect.isclass(cls):
            return cls
    return None


def _init_arguments(cls: type) -> List[str]:
    """The keyword arguments ``cls(...)`` takes, through the ``**kwargs``
    its constructors pass on to their parents."""
    names = []
    for klass in cls.__mro__:
        init = klass.__dict__.get('__init__')
        if init is None:
            continue
        params = inspect.signature(init).parameters.values()
        names += [
            p.name for p in params if p.name != 'self' and p.kind in (
                p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        ]
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return list(dict.fromkeys(names))


def _unexpected_key(error: TypeError, cfg: Config,
                    path: str) -> Optional[UserError]:
    """One line for a config key no constructor takes, or None when the
    key is not in the config (then the error is a bug, not a typo)."""
    found = _UNEXPECTED.findall(str(error))
    if not found:
        return None
    cls_name, key = found[-1]
    where = [(p, d) for p, d in _dicts_with(cfg.to_dict(), key)
             if str(d.get('type', '')).split('.')[-1] == cls_name]
    where = where or list(_dicts_with(cfg.to_dict(), key))
    if not where:
        return None
    dotted, node = where[0]
    name = str(node.get('type', cls_name)).split('.')[-1]
    cls = _find_class(name)
    valid = _init_arguments(cls) if cls is not None else []
    return UserError(f'{path}: {dotted}{key} is not a setting of '
                     f'{name}{did_you_mean(key, valid)}')


def _unregistered_type(error: KeyError, path: str) -> Optional[UserError]:
    """One line for a ``type`` no registry holds, with the nearest name."""
    message = error.args[0] if error.args else ''
    found = _UNREGISTERED.match(str(message))
    if not found:
        return None
    name, _, kind = found.groups()
    from mmprompt import registry
    names: List[str] = []
    for node in registry.__all__:
        reg = getattr(registry, node)
        if reg.name == kind:
            while reg is not None:
                names += list(reg.module_dict)
                reg = reg.parent
    return UserError(f'{path}: type {name!r} is not a registered {kind}'
                     f'{did_you_mean(name.split(".")[-1], names)}')


@contextlib.contextmanager
def config_errors(cfg: Config, path: str) -> Iterator[None]:
    """Turn what a config typo raises while building from ``cfg`` into one
    line with the nearest valid name: a key no constructor takes, a ``type``
    no registry holds. Other errors pass unchanged.

    Args:
        cfg (Config): The config being built.
        path (str): Its name, for the message.
    """
    try:
        yield
    except (TypeError, KeyError) as e:
        line = (_unexpected_key(e, cfg, path) if isinstance(e, TypeError)
                else _unregistered_type(e, path))
        if line is None:
            raise
        raise line from None
