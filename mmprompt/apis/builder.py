# Copyright (c) mmprompt contributors. All rights reserved.
"""The one way a model is made ready, with weights, in eval mode:
:func:`get_model` (on the zoo table and the downloads of the hub)."""
import copy
import logging
import os.path as osp
from typing import List, Optional, Tuple, Union

import torch
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.model import BaseModel
from mmengine.registry import DefaultScope

# Registers its checkpoint describer (what a refused file is).
import mmprompt.converters.families  # noqa: F401,I100
from mmprompt.utils.config import config_errors
from mmprompt.utils.errors import InvalidInputError
from . import hub
from .model_zoo import ModelInfo, check_task, load_config, load_zoo


def build_from_config(cfg: Config,
                      model_cfg: Optional[dict] = None) -> BaseModel:
    """Build ``cfg.model`` in the mmprompt scope, with ``_config`` set to
    ``cfg``.

    Args:
        cfg (Config): A config with a ``model`` dict.
        model_cfg (dict, optional): What to build instead of ``cfg.model``.
            Defaults to None.
    """
    from mmprompt.registry import MODELS
    from mmprompt.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    with DefaultScope.overwrite_default_scope('mmprompt'), config_errors(
            cfg, cfg.filename or 'the config'):
        model = MODELS.build(cfg.model if model_cfg is None else model_cfg)
    model._config = cfg
    return model


def ready_for_inference(
        model: BaseModel,
        device: Optional[Union[str, torch.device]] = None) -> BaseModel:
    """Give ``model`` the ``_config`` MMPreTrain's inferencers read, move
    it to ``device`` and switch it to eval mode; return it.

    Args:
        model (BaseModel): A built model.
        device (str | torch.device, optional): Defaults to None (where it
            is).
    """
    if not hasattr(model, '_config'):
        model._config = Config(dict(model=dict(type=type(model).__name__)))
    if device is not None:
        model.to(device)
    return model.eval()


def is_tagger(model: torch.nn.Module) -> bool:
    return hasattr(model, 'select_tags')


def load_weights(model: BaseModel, checkpoint: str) -> dict:
    """Load a converted checkpoint into a CLIP or RAM model, strictly;
    return its ``state_dict`` and ``meta``."""
    if is_tagger(model):
        from mmprompt.models.ram import load_ram_checkpoint
        return load_ram_checkpoint(model, checkpoint)
    from mmprompt.utils.checkpoint import load_checkpoint
    return load_checkpoint(model, checkpoint)


def _checkpoint_arg(pretrained: str) -> str:
    """A checkpoint file as it is; a zoo name's cached official weights."""
    if not osp.isfile(pretrained) and pretrained.lower() in load_zoo():
        return hub.get_checkpoint(pretrained)
    return pretrained


def use_zoo_tokenizer(cfg: Config, name: str) -> None:
    """Point a config's tokenizer at the tokenizer file fetched with the
    weights of zoo model ``name``, if there is one.

    Args:
        cfg (Config): The config, changed in place.
        name (str): A zoo name (or anything else).
    """
    if name.lower() not in load_zoo() or not cfg.model.get('tokenizer'):
        return
    tokenizer = hub.tokenizer_path(name)
    if tokenizer is not None:
        cfg.model.tokenizer.tokenizer_file = tokenizer


def _use_text_encoder(cfg: Config, checkpoint: str) -> None:
    """Point an open-set config's text tower at a CLIP checkpoint."""
    text_encoder = cfg.model.get('text_encoder')
    if text_encoder is None:
        return
    init_cfg = dict(text_encoder.get('init_cfg') or {})
    init_cfg.update(
        type='Pretrained', checkpoint=checkpoint, prefix='text_encoder.')
    text_encoder['init_cfg'] = init_cfg


def _weights(
        cfg: Config, info: Optional[ModelInfo],
        pretrained: Union[bool, str, None]
) -> Tuple[Optional[str], Optional[str]]:
    """The checkpoints :func:`get_model` loads: the model's and an
    open-set RAM's text tower's."""
    if isinstance(pretrained, str) and pretrained:
        return _checkpoint_arg(pretrained), None
    if pretrained is not True:
        return None, None
    if info is None:
        return cfg.get('load_from') or None, None
    checkpoint, text_encoder = hub.get_checkpoint(info.name), None
    if info.text_encoder and cfg.model.get('text_encoder'):
        text_encoder = hub.get_checkpoint(info.text_encoder)
    return checkpoint, text_encoder


def weight_files(model: Union[str, Config],
                 pretrained: Union[bool, str, None] = True) -> List[str]:
    """The weight files :func:`get_model` loads for these arguments,
    ``init_cfg`` checkpoints included: real paths, sorted, once each.

    Args:
        model (str | Config): As for :func:`get_model`.
        pretrained (bool | str, optional): As for :func:`get_model`.
            Defaults to True.
    """
    cfg, info = load_config(model)
    files = [f for f in _weights(cfg, info, pretrained) if f]

    def walk(node) -> None:
        if isinstance(node, dict):
            init_cfg = node.get('init_cfg')
            if isinstance(init_cfg, dict) and isinstance(
                    init_cfg.get('checkpoint'), str):
                files.append(init_cfg['checkpoint'])
            for value in node.values():
                walk(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                walk(value)

    walk(cfg.get('model'))
    return sorted({osp.realpath(f) for f in files if osp.isfile(f)})


def get_model(model: Union[str, Config, BaseModel],
              pretrained: Union[bool, str, None] = True,
              device: Union[str, torch.device, None] = None,
              learned: Optional[str] = None,
              allow_other_weights: bool = False,
              **kwargs) -> BaseModel:
    """Build a model of the zoo, a config or a built model, with weights.

    Args:
        model (str | Config | BaseModel): A name of :func:`list_models`, a
            ``mmprompt::`` config name, a config file, a :class:`Config`
            or a built model.
        pretrained (bool | str, optional): True: a zoo name's official
            weights (and an open-set RAM's text tower), fetched once by
            :func:`~mmprompt.apis.hub.get_checkpoint`, or a config's
            ``load_from``; a converted checkpoint or a zoo name: those
            weights; False or None: random weights, with a warning.
            Defaults to True.
        device (str | torch.device, optional): Where to run. Defaults to
            None (CPU, or the model's current device).
        learned (str, optional): A learned-prompt file; ``model`` is then
            the CLIP it was learned on, or the method's own config (its
            categories default to the file's). Defaults to None.
        allow_other_weights (bool): Use ``learned`` over other CLIP weights
            than it was learned on (see ``load_learned``). Defaults to
            False.
        **kwargs: Overrides of the config's ``model`` dict, e.g.
            ``categories=...``.

    Returns:
        BaseModel: The model in eval mode, with ``_config`` set.

    Raises:
        UnknownModelError: For an unknown name (close names listed).
        UserError: If a download or a checkpoint fails (one line).
    """
    if learned is not None:
        return _learned_model(model, learned, pretrained, device,
                              allow_other_weights, kwargs)
    if isinstance(model, BaseModel):
        if kwargs:
            raise InvalidInputError(
                'model overrides need a config, not a built model')
        if isinstance(pretrained, str) and pretrained:
            load_weights(model, _checkpoint_arg(pretrained))
        return ready_for_inference(model, device)
    cfg, info = load_config(model)
    if kwargs:
        cfg.merge_from_dict(dict(model=copy.deepcopy(kwargs)))
    checkpoint, text_encoder = _weights(cfg, info, pretrained)
    if text_encoder:
        _use_text_encoder(cfg, text_encoder)
    if pretrained is True and info is not None:
        use_zoo_tokenizer(cfg, info.name)
    from mmprompt.engine.hooks import pop_zero_shot_inputs, prepare_zero_shot
    model_cfg = copy.deepcopy(cfg.model)
    zero_shot = pop_zero_shot_inputs(model_cfg)
    built = build_from_config(cfg, model_cfg)
    if checkpoint:
        load_weights(built, checkpoint)
    else:
        print_log(
            'No checkpoint: the model keeps random weights',
            logger='current',
            level=logging.WARNING)
    built = ready_for_inference(built, device)
    if zero_shot:
        # Example images and the prototype cache need the weights.
        with torch.no_grad():
            prepare_zero_shot(built, **zero_shot)
    return built


def is_learned_method(cfg: Config) -> bool:
    """Whether ``cfg.model`` is a prompt-learning method."""
    from mmprompt.registry import MODELS
    from mmprompt.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    return hasattr(MODELS.get(str(cfg.model.get('type'))),
                   'from_learned_meta')


def learned_config(cfg: Config, learned: str) -> Config:
    """``cfg``, its categories defaulting to the learned file's (in place).

    Args:
        cfg (Config): A prompt-learning method's config (e.g. CoOp's).
        learned (str): The learned-prompt file.
    """
    from mmprompt.models.prompt_learning.learned import read_learned_meta
    if cfg.model.get('categories') is None:
        cfg.model.categories = read_learned_meta(learned)['categories']
    return cfg


def load_learned_weights(model: BaseModel,
                         learned: str,
                         pretrained: Union[bool, str, None] = None,
                         allow_other_weights: bool = False) -> BaseModel:
    """Load a method built from :func:`learned_config`: CLIP's weights
    (``init_cfg`` or ``pretrained``), then the learned prompts.

    Args:
        model (BaseModel): The method (e.g. CoOp), as built.
        learned (str): The learned-prompt file.
        pretrained (bool | str, optional): CLIP's weights instead of the
            config's; only a path or a zoo name counts. Defaults to None.
        allow_other_weights (bool): See :func:`get_model`. Defaults to
            False.
    """
    from mmprompt.models.prompt_learning.learned import load_learned
    from mmprompt.utils.checkpoint import load_checkpoint
    model.init_weights()
    if isinstance(pretrained, str) and pretrained:
        load_checkpoint(model.clip, _checkpoint_arg(pretrained))
    load_learned(model, learned, allow_other_weights)
    return model


def _learned_model(model: Union[str, Config, BaseModel], learned: str,
                   pretrained: Union[bool, str, None],
                   device: Union[str, torch.device, None],
                   allow_other_weights: bool, overrides: dict) -> BaseModel:
    """:func:`get_model` with ``learned``."""
    from mmprompt.models.prompt_learning.learned import build_learned_model
    if not isinstance(model, BaseModel):
        cfg = load_config(model)[0]
        if is_learned_method(cfg):
            if overrides:
                cfg.merge_from_dict(dict(model=copy.deepcopy(overrides)))
            built = build_from_config(learned_config(cfg, learned))
            load_learned_weights(built, learned, pretrained,
                                 allow_other_weights)
            return ready_for_inference(built, device)
    check_task(model, ('Zero-shot Image Classification', ),
               'learned prompts')
    clip = get_model(model, pretrained, device, **overrides)
    return ready_for_inference(
        build_learned_model(clip, learned, allow_other_weights), device)
