# Copyright (c) mmprompt contributors. All rights reserved.
"""The model zoo: OpenMMLab's ``model-index.yml`` and per-family metafiles,
plus mmprompt's ``SHA256``, ``Converter``, ``Data Files`` and ``Text
Encoder`` fields. Imports nothing else of ``mmprompt.apis``."""
import copy
import difflib
import fnmatch
import functools
import os.path as osp
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple, Union

from mmengine.config import Config
from mmengine.model import BaseModel

from mmprompt.utils.errors import InvalidInputError, UserError

#: The prefix of config names inside the package: ``mmprompt::clip/x.py``.
CONFIG_PREFIX = 'mmprompt::'


class UnknownModelError(InvalidInputError):
    """A name that is neither in the zoo nor a config file."""


class NoWeightsError(InvalidInputError):
    """A zoo model with no released weights (a recipe the user trains)."""


#: The names open_clip gives every weights file on the Hugging Face Hub.
GENERIC_FILE_NAMES = ('open_clip_pytorch_model.bin',
                      'open_clip_model.safetensors',
                      'open_clip_pytorch_model.safetensors', 'tokenizer.json')


@dataclass(frozen=True)
class ModelInfo:
    """One model of the zoo, as its metafile describes it.

    Attributes:
        name (str): The zoo name, e.g. ``'clip_vit-base-p16'``.
        collection (str): ``'CLIP'``, ``'RAM'`` or ``'RAM++'``.
        task (str): E.g. ``'Zero-shot Image Classification'``.
        architecture (str): In words, e.g. ``'CLIP ViT-B/16'``.
        config (str): Absolute path of the config file.
        weights (str, optional): URL of the official weights, if any.
        sha256 (str, optional): Its published SHA-256; None if unknown.
        converter (str): The converter's key and options, see
            :func:`mmprompt.converters.parse_converter`.
        data_files (dict): ``{key: {'URL': ..., 'SHA256': ...}}`` embedded
            by the conversion (RAM's tag lists and thresholds).
        text_encoder (str, optional): Zoo name of the CLIP whose text tower
            an open-set model uses.
        results (tuple): Published ``dict(task, dataset, metrics)``.
        license (str, optional): The weights' licence, if given.
        metafile (str): The metafile it comes from.
    """
    name: str
    collection: str
    task: str
    architecture: str
    config: str
    weights: Optional[str]
    sha256: Optional[str]
    converter: str
    data_files: Dict[str, Dict[str, str]] = field(default_factory=dict)
    text_encoder: Optional[str] = None
    results: Tuple[dict, ...] = ()
    metafile: str = ''
    license: Optional[str] = None

    @property
    def weights_file(self) -> str:
        """str: The local file name of the official weights."""
        return url_file_name(self.require_weights())

    def require_weights(self) -> str:
        """The weights' URL, or :class:`NoWeightsError` saying how to
        train the model."""
        if self.weights:
            return self.weights
        config = osp.relpath(self.config, get_zoo_root())
        raise NoWeightsError(
            f'{self.name} has no released weights ({self.collection} is '
            f'trained on your data): python tools/train.py {config}')


def url_file_name(url: str) -> str:
    """The local name of the file at ``url``: its last part, prefixed by
    the Hugging Face repository for :data:`GENERIC_FILE_NAMES`."""
    parts = url.split('?')[0].rstrip('/').split('/')
    if parts[-1] in GENERIC_FILE_NAMES and 'resolve' in parts:
        return f"{parts[parts.index('resolve') - 1]}_{parts[-1]}"
    return parts[-1]


def get_zoo_root() -> str:
    """The folder holding ``model-index.yml`` and ``configs/``:
    ``mmprompt/.mim`` in an installed wheel, else the source checkout."""
    package = osp.dirname(osp.dirname(osp.abspath(__file__)))
    for root in (osp.join(package, '.mim'), osp.dirname(package)):
        if osp.isfile(osp.join(root, 'model-index.yml')) and osp.isdir(
                osp.join(root, 'configs')):
            return root
    raise UserError(
        f'mmprompt installed at {package} has no model-index.yml / configs; '
        'reinstall it (pip install mmprompt, or pip install -e . in a '
        'checkout)')


def get_configs_dir() -> str:
    """The ``configs`` folder of the zoo."""
    return osp.join(get_zoo_root(), 'configs')


def _read_yaml(path: str) -> dict:
    import yaml
    with open(path, encoding='utf-8') as f:
        return yaml.safe_load(f) or {}


def _parse_model(raw: dict, root: str, metafile: str) -> ModelInfo:
    meta = raw.get('Metadata') or {}
    for key in ('Name', 'Config', 'In Collection'):
        if not raw.get(key):
            raise ValueError(f'{metafile}: model {raw.get("Name")!r} has no '
                             f'{key!r}')
    return ModelInfo(
        name=raw['Name'],
        collection=raw['In Collection'],
        task=meta.get('Task', ''),
        architecture=meta.get('Architecture', ''),
        config=osp.join(root, raw['Config']),
        weights=raw.get('Weights') or None,
        sha256=(raw.get('SHA256') or None),
        converter=raw.get('Converter', ''),
        data_files=copy.deepcopy(raw.get('Data Files') or {}),
        text_encoder=raw.get('Text Encoder'),
        results=tuple(
            dict(
                task=r.get('Task'),
                dataset=r.get('Dataset'),
                metrics=dict(r.get('Metrics') or {}))
            for r in raw.get('Results') or ()),
        metafile=metafile,
        license=meta.get('License'))


@functools.lru_cache(maxsize=None)
def _load(root: str) -> Dict[str, ModelInfo]:
    index = _read_yaml(osp.join(root, 'model-index.yml'))
    zoo: Dict[str, ModelInfo] = {}
    for metafile in index.get('Import') or ():
        for raw in _read_yaml(osp.join(root, metafile)).get('Models') or ():
            info = _parse_model(raw, root, metafile)
            if info.name.lower() in zoo:
                raise ValueError(f'{metafile}: model name {info.name!r} is '
                                 'used twice in the zoo')
            zoo[info.name.lower()] = info
    return zoo


def load_zoo() -> Dict[str, ModelInfo]:
    """The whole table, read once (the cached dict, which tests may patch):
    lower-cased name -> :class:`ModelInfo`."""
    return _load(get_zoo_root())


def list_models(pattern: Optional[str] = None,
                task: Optional[str] = None) -> List[str]:
    """Names of the zoo's models, sorted.

    Args:
        pattern (str, optional): A shell-style pattern (``'clip*in1k'``),
            case-insensitive; without ``*``, ``?`` or ``[`` it matches
            names containing it. Defaults to None (all).
        task (str, optional): Keep models of this task (case-insensitive).
            Defaults to None (all).
    """
    infos = load_zoo().values()
    if task is not None:
        tasks = sorted({i.task for i in infos})
        if task.lower() not in {t.lower() for t in tasks}:
            raise InvalidInputError(
                f'unknown task {task!r}; the zoo has {", ".join(tasks)}')
        infos = [i for i in infos if i.task.lower() == task.lower()]
    names = sorted(i.name for i in infos)
    if pattern:
        pat = pattern.lower()
        if not any(c in pat for c in '*?['):
            pat = f'*{pat}*'
        names = [n for n in names if fnmatch.fnmatchcase(n.lower(), pat)]
    return names


def close_names(name: str, names: List[str]) -> str:
    """``"close names: a, b"``: the ``names`` closest to ``name``."""
    close = difflib.get_close_matches(name, names, n=5, cutoff=0.5)
    if not close:
        close = [n for n in names if name.lower() in n.lower()][:5]
    return (f'close names: {", ".join(close)}'
            if close else 'see mmprompt.apis.list_models()')


def get_model_info(name: str) -> ModelInfo:
    """The zoo entry of ``name`` (case-insensitive), or
    :class:`UnknownModelError` listing close names."""
    info = load_zoo().get(str(name).lower())
    if info is None:
        raise UnknownModelError(
            f'{name!r} is not a model of the zoo; '
            f'{close_names(str(name), list_models())}')
    return info


def _config_names() -> List[str]:
    root = get_configs_dir()
    import glob
    return sorted(
        osp.relpath(p, root)
        for p in glob.glob(osp.join(root, '**', '*.py'), recursive=True))


def resolve_config(config: str) -> Tuple[str, Optional[ModelInfo]]:
    """The config file of a zoo name, a ``mmprompt::`` name or a path.

    Args:
        config (str): A zoo name, ``mmprompt::<path under configs>`` (as
            ``mim`` names them) or a config file.

    Returns:
        tuple: The config path and the zoo entry (or None).

    Raises:
        UnknownModelError: If it is none of these (close names listed).
    """
    if config.startswith(CONFIG_PREFIX):
        rel = config[len(CONFIG_PREFIX):].lstrip('/')
        path = osp.join(get_configs_dir(), rel)
        if not osp.isfile(path):
            raise UnknownModelError(
                f'{config!r}: no such config in mmprompt; '
                f'{close_names(rel, _config_names())}')
        return path, None
    if str(config).lower() in load_zoo():
        info = get_model_info(config)
        return info.config, info
    if osp.isfile(config):
        return config, None
    if config.endswith('.py') or osp.sep in config:
        raise UnknownModelError(f'{config}: no such config file')
    raise UnknownModelError(
        f'{config!r} is neither a model of the zoo nor a config file; '
        f'{close_names(config, list_models())}')


def load_config(
        config: Union[str, Config]) -> Tuple[Config, Optional[ModelInfo]]:
    """:func:`resolve_config`, then read it (a copy of a :class:`Config`):
    the :class:`Config` and the zoo entry (or None)."""
    if isinstance(config, Config):
        return copy.deepcopy(config), None
    from mmprompt.utils.config import parse_config
    path, info = resolve_config(config)
    return parse_config(path), info


def check_task(model: Union[str, Config, BaseModel], tasks: Tuple[str, ...],
               user: str) -> None:
    """Refuse, before anything is downloaded, a zoo name of another task
    (naming the right names).

    Args:
        model: What was passed to an inferencer.
        tasks (tuple[str]): The tasks the inferencer serves.
        user (str): The inferencer's name, for the message.
    """
    if not isinstance(model, str) or model.lower() not in load_zoo():
        return
    info = get_model_info(model)
    if info.task in tasks:
        return
    names = [n for t in tasks for n in list_models(task=t)]
    raise InvalidInputError(
        f'{info.name} is a model for {info.task}, not for {user}; use one '
        f'of {", ".join(sorted(names)[:4])}, ... (list_models(task=...))')


#: The markers around the generated table in the README.
README_BEGIN = '<!-- model-zoo: generated by tools/misc/model_zoo_table.py -->'
README_END = '<!-- /model-zoo -->'
#: How the README names a row's data files.
DATA_FILE_LABELS = dict(
    tag_list='tag lists', thresholds='thresholds', tokenizer='tokenizer')


def _results_text(info: ModelInfo) -> str:
    parts = []
    for r in info.results:
        metrics = ', '.join(f'{k} {v}' for k, v in r['metrics'].items())
        parts.append(f"{r['dataset']}: {metrics}" if metrics else
                     str(r['dataset']))
    return '; '.join(parts) or '-'


def markdown_table() -> str:
    """The zoo as a Markdown table (the README's model-zoo section)."""
    rows = [
        '| name | task | config | official weights (SHA-256) | converter '
        '| published |', '| --- | --- | --- | --- | --- | --- |'
    ]
    root = get_zoo_root()
    for name in list_models():
        info = get_model_info(name)
        config = osp.relpath(info.config, root)
        sha = f' (`{info.sha256[:12]}…`)' if info.sha256 else \
            ' (no published SHA-256)'
        labels = [
            label for key, label in DATA_FILE_LABELS.items()
            if key in info.data_files
        ]
        extra = ' + ' + ', '.join(labels) if labels else ''
        extra += f' + text tower of `{info.text_encoder}`' \
            if info.text_encoder else ''
        extra += f'; licence: {info.license}' if info.license else ''
        if info.weights is None:
            weights = f'none: `python tools/train.py {config}`'
            converter = '-'
        else:
            weights = f'[{info.weights_file}]({info.weights}){sha}{extra}'
            converter = f'`{info.converter}`'
        rows.append(f'| `{info.name}` | {info.task} | `{config}` | '
                    f'{weights} | {converter} | {_results_text(info)} |')
    return '\n'.join(rows)


def update_readme(path: str, check: bool = False) -> bool:
    """Replace the README's table between :data:`README_BEGIN` and
    :data:`README_END` by :func:`markdown_table`.

    Args:
        path (str): The README.
        check (bool): Only report whether it is up to date.

    Returns:
        bool: Whether the file was (``check``: is) already up to date.
    """
    with open(path, encoding='utf-8') as f:
        text = f.read()
    begin, end = text.find(README_BEGIN), text.find(README_END)
    if begin < 0 or end < begin:
        raise UserError(f'{path}: no {README_BEGIN!r} ... {README_END!r} '
                        'section to fill')
    new = (text[:begin + len(README_BEGIN)] + '\n' + markdown_table() +
           '\n' + text[end:])
    if new == text or check:
        return new == text
    from mmprompt.utils.io import atomic_write
    with atomic_write(path, 'w') as f:
        f.write(new)
    return False
