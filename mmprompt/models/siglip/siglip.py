# Copyright (c) mmprompt contributors. All rights reserved.
"""SigLIP and SigLIP 2: CLIP's interface with a sigmoid's scores.

`SigLIP <https://arxiv.org/abs/2303.15343>`_ (Zhai et al., 2023) and
`SigLIP 2 <https://arxiv.org/abs/2502.14786>`_ (Tschannen et al., 2025) are
trained with a per-pair sigmoid loss, so an image-text pair gets the
probability ``sigmoid(logit_scale.exp() * cos + logit_bias)``. The image
tower is :class:`~mmprompt.models.siglip.MAPVisionTransformer`, the text
tower :class:`~mmprompt.models.clip.CLIPTextTransformer` with SigLIP's
options and the tokenizer :class:`~mmprompt.models.siglip.SigLIPTokenizer`.
"""
from mmprompt.models.clip.clip import CLIP, CLIPZeroShot
from mmprompt.registry import MODELS

# SigLIP's normalisation: mean and std 0.5 of RGB in [0, 1].
SIGLIP_MEAN = (127.5, 127.5, 127.5)
SIGLIP_STD = (127.5, 127.5, 127.5)


@MODELS.register_module()
class SigLIP(CLIP):
    """SigLIP / SigLIP 2 image and text encoders.

    :class:`~mmprompt.models.clip.CLIP` with SigLIP's defaults: images
    normalised with mean and std 0.5, the image tower's pooled feature
    already in the joint space (no ``visual_proj``), a learned
    ``logit_bias`` in :meth:`compute_logits`, and no default tokenizer (the
    model's own ``tokenizer.json`` comes with its weights). Arguments are
    :class:`~mmprompt.models.clip.CLIP`'s; ``proj_dims`` is the width of
    the image tower.
    """

    # open_clip's preprocessing of every SigLIP model: the whole image
    # squashed to a square, bicubic.
    default_image_preprocess = dict(
        resize_mode='squash', interpolation='bicubic')
    image_mean = SIGLIP_MEAN
    image_std = SIGLIP_STD
    default_tokenizer = None
    project_image = False
    logit_bias_init = -10.0


@MODELS.register_module()
class SigLIPZeroShot(SigLIP, CLIPZeroShot):
    """Zero-shot classification with SigLIP / SigLIP 2.

    :class:`~mmprompt.models.clip.CLIPZeroShot` (same arguments) on
    :class:`SigLIP`'s towers; the class logits carry ``logit_bias``.

    ``pred_label`` is the largest logit. ``pred_score`` is
    ``sigmoid(logits)``, the model's own probability that the image shows
    each category: it does not sum to 1 over the categories (a softmax
    would hide that no category fits). Being monotone, it keeps top-k
    accuracy equal to that of the logits.

    Prototypes are built from full-length rows (the text tower is
    bidirectional; see
    :func:`~mmprompt.models.clip.zero_shot.encode_token_ids`).
    """

    score_activation = 'sigmoid'
