# Copyright (c) mmprompt contributors. All rights reserved.
"""Tell what a checkpoint is from its keys, for one-line refusals.

A converter given another family's file says what the file is and which
converter takes it, instead of listing unknown keys. The signatures are
keys every file of the family has; the open_clip ones are checked on open_clip
3.x's state dicts (``tests/test_converters/test_open_clip.py``: RN50,
ConvNeXt and SigLIP (timm towers; PE-Core is one too), CoCa, the ViTs).
"""
from typing import Dict, Iterable, Optional, Tuple

from .common import ConverterError

#: ``(family, what it is, a key only it has (a prefix if it ends in '.'),
#: the converter that takes it or None)``, most specific first.
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


def _has(keys: Iterable[str], signature: str) -> bool:
    if signature.endswith('.'):
        return any(k.startswith(signature) for k in keys)
    return signature in keys


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
        if _has(keys, signature):
            return family, what, converter or ''
    return None


def check_family(state_dict: Dict[str, object], family: str,
                 model_name: str) -> None:
    """Refuse, in one line naming what it is, a file of another family.

    Args:
        state_dict (dict): Unwrapped keys to tensors.
        family (str): The family the converter takes (a first item of
            :data:`FAMILIES`).
        model_name (str): What the converter takes, for the message.

    Raises:
        ConverterError: If the keys are another known family's. A file of
            no known family passes: the rule engine then names the keys it
            does not know.
    """
    found = identify_checkpoint(state_dict)
    if found is None or found[0] == family:
        return
    _, what, converter = found
    hint = (f'; convert it with tools/model_converters/'
            f'{converter}_to_mmprompt.py' if converter else
            '; mmprompt has no converter for it')
    raise ConverterError(f'not a {model_name} checkpoint: it is {what}'
                         f'{hint}')
