# Copyright (c) mmprompt contributors. All rights reserved.
"""Tell what a checkpoint is from its keys, for the one-line refusals of
converters and :func:`mmprompt.utils.checkpoint.load_checkpoint` (whose
describer this module registers on import)."""
import re
from typing import Dict, Optional, Tuple

import torch

from mmprompt.utils.checkpoint import config_phrase, set_checkpoint_describer
from .common import ConverterError

StateDict = Dict[str, torch.Tensor]

SCRIPT_DIR = 'tools/model_converters'


def converter_script(key: str) -> str:
    """The command line of the converter of ``key``."""
    return f'{SCRIPT_DIR}/{key}_to_mmprompt.py'


#: ``(family, what it is, a key only it has (a prefix if it ends in '.'),
#: the converter that takes it or None)``, most specific first; the
#: open_clip keys are checked on open_clip 3.x's state dicts.
FAMILIES: Tuple[Tuple[str, str, str, Optional[str]], ...] = (
    ('mmprompt', 'an mmprompt checkpoint (already converted)',
     'visual_proj.weight', None),
    ('ram', 'a recognize-anything RAM / RAM++ checkpoint', 'label_embed',
     'ram'),
    ('siglip', 'an open_clip SigLIP / SigLIP 2 checkpoint', 'logit_bias',
     'siglip'),
    ('pe_core', 'an open_clip PE-Core checkpoint',
     'visual.trunk.attn_pool.latent', 'pe_core'),
    ('open_clip_timm', 'an open_clip CLIP with a timm image tower (SigLIP, '
     'ConvNeXt, EVA, ...)', 'visual.trunk.', None),
    ('open_clip_coca', 'an open_clip CoCa captioner', 'text_decoder.', None),
    ('open_clip_hf_text', 'an open_clip CLIP with a Hugging Face text tower '
     '(XLM-RoBERTa, ...)', 'text.transformer.', None),
    ('openai_resnet', 'an OpenAI ResNet CLIP (ModifiedResNet image tower)',
     'visual.layer1.', None),
    ('hf_clip', "a Hugging Face transformers CLIPModel (use the original "
     "release's open_clip_pytorch_model.bin / .pt file)", 'vision_model.',
     None),
    ('clip_vit', 'a CLIP ViT in OpenAI / open_clip layout',
     'visual.transformer.resblocks.', 'open_clip'),
)


def identify_checkpoint(
        state_dict: Dict[str, object]) -> Optional[Tuple[str, str, str]]:
    """The family of a state dict from its keys.

    Args:
        state_dict (dict): Keys to tensors (already unwrapped).

    Returns:
        tuple | None: ``(family, what it is in words, the converter that
        takes it or '')``, or None for an unknown layout.
    """
    keys = set(state_dict)
    for family, what, signature, converter in FAMILIES:
        if signature in keys or signature.endswith('.') and any(
                k.startswith(signature) for k in keys):
            return family, what, converter or ''
    return None


def check_family(state_dict: Dict[str, object], family: str,
                 model_name: str) -> None:
    """Refuse, in one line naming what it is, a file of another family.

    A file of no known family passes: the rule engine names its keys.

    Args:
        state_dict (dict): Unwrapped keys to tensors.
        family (str): The family the converter takes (see :data:`FAMILIES`).
        model_name (str): What the converter takes, for the message.

    Raises:
        ConverterError: If the keys are another known family's.
    """
    found = identify_checkpoint(state_dict)
    if found is None or found[0] == family:
        return
    _, what, converter = found
    hint = (f'; convert it with {converter_script(converter)}'
            if converter else '; mmprompt has no converter for it')
    raise ConverterError(f'not a {model_name} checkpoint: it is {what}'
                         f'{hint}')


def _clip_arch(sd: StateDict) -> Optional[str]:
    """``'ViT-B/16'`` (``'ViT-L/14@336px'``) of a converted CLIP state dict."""
    cls = sd.get('visual.cls_token')
    proj = sd.get('visual.patch_embed.projection.weight')
    pos = sd.get('visual.pos_embed')
    if cls is None or proj is None:
        return None
    width, patch = cls.shape[-1], proj.shape[-1]
    size = {768: 'B', 1024: 'L', 1280: 'H', 1664: 'bigG'}.get(width)
    name = f'ViT-{size}/{patch}' if size else f'ViT ({width} wide)/{patch}'
    if pos is not None:
        side = round((pos.shape[1] - 1)**0.5) * patch
        if side != 224:
            name += f'@{side}px'
    layers = {
        int(m.group(1))
        for k in sd
        for m in [re.match(r'visual\.layers\.(\d+)\.', k)] if m
    }
    standard = {'B': 12, 'L': 24, 'H': 32, 'bigG': 48}.get(size)
    if layers and (standard is None or len(layers) != standard):
        name += f' ({len(layers)} layers)'
    return name


def describe_checkpoint(sd: StateDict, meta: Optional[dict] = None) -> str:
    """What a state dict is, e.g. ``'a CLIP ViT-B/16 checkpoint'``.

    Args:
        sd (dict): Key to tensor.
        meta (dict, optional): The checkpoint's meta.

    Returns:
        str: A noun phrase, or ``''`` if unknown.
    """
    meta = meta or {}
    keys = set(sd)
    if 'visual.class_embedding' in keys or 'token_embedding.weight' in keys:
        return 'an OpenAI CLIP checkpoint'
    if 'label_embed' in keys:
        plus = 'reweight_scale' in keys or meta.get('source') == 'ram_plus'
        name = 'RAM++' if plus else 'RAM'
        if 'class_threshold' not in keys:
            return f'an unconverted {name} checkpoint'
        return f"a {name} checkpoint ({sd['class_threshold'].shape[0]} tags)"
    if 'visual.trunk.attn_pool.latent' in keys and \
            'text.token_embedding.weight' in keys:
        return 'an unconverted PE-Core checkpoint (open_clip layout)'
    if 'text_encoder.token_embedding.weight' in keys or \
            'visual.cls_token' in keys:
        family = 'PE-Core' if 'visual.attn_pool.latent' in keys else 'CLIP'
        arch = _clip_arch(sd)
        return f'a {family} {arch} checkpoint' if arch else \
            f'a {family} checkpoint'
    return ''


def mismatch_message(name: str, sd: StateDict, meta: dict,
                     model_sd: StateDict) -> Optional[str]:
    """One line for a checkpoint of the wrong family or size, or None.

    Args:
        name (str): The file, for the message.
        sd (dict): The checkpoint's state dict.
        meta (dict): Its meta.
        model_sd (dict): The model's state dict.
    """
    what, want = describe_checkpoint(sd, meta), config_phrase(model_sd)
    if what == 'an OpenAI CLIP checkpoint':
        return (f'{name}: an OpenAI / open_clip CLIP checkpoint, not '
                f"converted; convert it with {converter_script('openai_clip')}"
                " (OpenAI's release) or "
                f"{converter_script('open_clip')} (open_clip's)")
    for kind, key in (('RAM', 'ram'), ('PE-Core', 'pe_core')):
        if what.startswith(f'an unconverted {kind}'):
            return (f'{name}: {what[3:]}; convert it with '
                    f'{converter_script(key)}')
    if not what:
        return None
    family = what.split()[1]  # CLIP, PE-Core, RAM, RAM++
    want_family = want.split()[0] if want else ''
    if family != want_family:
        return f'{name}: {what}, but this config is {want}'
    if family in ('CLIP', 'PE-Core') and (describe_checkpoint(sd)
                                          != describe_checkpoint(model_sd)):
        got = what[len(f'a {family} '):-len(' checkpoint')]
        return (f'{name}: a {got} checkpoint for a '
                f'{want[len(family) + 1:]} config')
    return None


def torchscript_hint() -> str:
    """What to do with a TorchScript archive (OpenAI's CLIP release)."""
    return ('it is an OpenAI CLIP release: convert it with '
            f"{converter_script('openai_clip')}")


set_checkpoint_describer(describe_checkpoint, mismatch_message,
                         torchscript_hint)
