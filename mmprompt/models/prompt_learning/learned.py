# Copyright (c) mmprompt contributors. All rights reserved.
"""Learned-prompt files: a prompt-learning model's state dict without the
frozen CLIP, and a meta of its settings and of the CLIP it was learned on
(``clip_arch``, ``clip_fingerprint``), which loading checks.
"""
import hashlib
import logging
from typing import Dict

import torch
import torch.nn as nn
from mmengine.logging import print_log

from mmprompt.utils.checkpoint import (read_checkpoint, save_checkpoint,
                                       tensors_fingerprint)
from mmprompt.utils.errors import CheckpointError

FORMAT = 1


def clip_arch(clip: nn.Module) -> str:
    """A digest of the names and shapes of CLIP's tensors."""
    h = hashlib.sha256()
    for name, t in clip.state_dict().items():
        h.update(f'{name}:{tuple(t.shape)};'.encode())
    return h.hexdigest()[:16]


def clip_fingerprint(clip: nn.Module) -> str:
    """A digest of CLIP's weights (:func:`tensors_fingerprint`)."""
    return tensors_fingerprint(list(clip.state_dict().items()))[:16]


def save_learned(model: nn.Module, path: str, force: bool = False) -> None:
    """Write ``model``'s learned parameters and meta to ``path``.

    Args:
        model (nn.Module): A prompt-learning model.
        path (str): ``.pth`` or ``.safetensors``.
        force (bool): Replace an existing file. Defaults to False.
    """
    meta = dict(model.learned_meta(), format=FORMAT,
                clip_arch=clip_arch(model.clip),
                clip_fingerprint=clip_fingerprint(model.clip))
    # The model's state dict has no CLIP keys.
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    save_checkpoint(state, dict(mmprompt_learned=meta), path, force)


def is_learned_file(path: str) -> bool:
    """Whether ``path`` is a learned-prompt file."""
    try:
        return 'mmprompt_learned' in read_checkpoint(path)[1]
    except CheckpointError:
        return False


def load_learned(model: nn.Module,
                 path: str,
                 allow_other_weights: bool = False) -> Dict:
    """Load a learned-prompt file into a model built from its config, its
    CLIP weights in place; the file's meta is returned.

    Args:
        model (nn.Module): The prompt-learning model.
        path (str): The file.
        allow_other_weights (bool): Only warn on other CLIP weights of the
            same architecture. Defaults to False.
    """
    sd, meta = read_checkpoint(path)
    meta = _learned_meta(path, meta)
    expected = model.learned_meta()
    if meta.get('method') != expected['method']:
        raise CheckpointError(f"{path}: learned with {meta.get('method')}, "
                              f"not {expected['method']}")
    if meta.get('clip_arch') != clip_arch(model.clip):
        raise CheckpointError(
            f'{path}: learned on a CLIP of another architecture than this '
            "config's; use the config it was trained with")
    for key in ('n_ctx', 'csc', 'class_token_position', 'templates'):
        if key in expected and meta.get(key) != expected[key]:
            raise CheckpointError(
                f'{path}: learned with {key}={meta.get(key)!r}, the config '
                f'has {expected[key]!r}')
    check_clip_weights(model.clip, path, meta, allow_other_weights)
    prepare = getattr(model, 'prepare_learned', None)
    if prepare is not None:
        # Tensors sized by what was learned (Tip-Adapter-F's cache).
        prepare(sd, meta)
    own = set(model.state_dict())
    if set(sd) != own:
        missing, extra = sorted(own - set(sd)), sorted(set(sd) - own)
        raise CheckpointError(f'{path}: keys differ from the model: missing '
                              f'{missing[:3]}, unexpected {extra[:3]}')
    learner = getattr(model, 'prompt_learner', None)
    csc = learner is not None and learner.csc
    if csc:
        learner.trained_categories = list(meta['categories'])
    shapes = [k for k, v in model.state_dict().items()
              if v.shape != sd[k].shape]
    if shapes:
        raise CheckpointError(f'{path}: tensors of another shape: {shapes}'
                              ' (another number of categories for csc?)')
    model.load_state_dict(sd, strict=True)
    if csc:
        learner.set_categories(learner.categories)
    return meta


def check_clip_weights(clip: nn.Module, path: str, meta: Dict,
                       allow_other_weights: bool = False) -> None:
    """Refuse a file learned on other weights of ``clip``'s architecture,
    or warn when allowed."""
    if meta.get('clip_fingerprint') == clip_fingerprint(clip):
        return
    message = (f'{path}: learned on other CLIP weights of the same '
               'architecture; the prompts were tuned for other features')
    if not allow_other_weights:
        raise CheckpointError(
            f'{message}: load the CLIP it was learned on, or pass '
            'allow_other_weights=True (--allow-other-clip-weights) to use '
            'it anyway')
    print_log(message, logger='current', level=logging.WARNING)


def read_learned_meta(path: str) -> Dict:
    """The meta dict of a learned-prompt file, or a one-line error."""
    return _learned_meta(path, read_checkpoint(path)[1])


def _learned_meta(path: str, meta: Dict) -> Dict:
    meta = meta.get('mmprompt_learned')
    if not isinstance(meta, dict):
        raise CheckpointError(f'{path}: not a learned-prompt file (no '
                              'mmprompt_learned meta); tools/train.py '
                              'writes them')
    return meta


def build_learned_model(clip: nn.Module,
                        path: str,
                        allow_other_weights: bool = False) -> nn.Module:
    """The prompt-learning model of a learned-prompt file, built from its
    meta (the method's ``from_learned_meta``) on a loaded CLIP's device.

    Args:
        clip (nn.Module): A :class:`~mmprompt.models.clip.CLIP`, loaded.
        path (str): The learned-prompt file.
        allow_other_weights (bool): See :func:`load_learned`.
            Defaults to False.
    """
    from mmprompt.registry import MODELS
    meta = read_learned_meta(path)
    if meta.get('clip_arch') != clip_arch(clip):
        raise CheckpointError(
            f'{path}: learned on a CLIP of another architecture than this '
            "one; use the CLIP it was trained on")
    cls = MODELS.get(str(meta.get('method')))
    if cls is None or not hasattr(cls, 'from_learned_meta'):
        raise CheckpointError(
            f"{path}: a {meta.get('method')} file cannot be built from its "
            'meta alone; give its config (tools/test.py CONFIG FILE)')
    device = next(clip.parameters()).device
    # The initial context is replaced: keep the caller's random stream.
    with torch.random.fork_rng(devices=[]):
        model = cls.from_learned_meta(clip, meta)
    model.to(device)
    load_learned(model, path, allow_other_weights)
    return model
