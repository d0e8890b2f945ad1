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
from typing import List, Mapping, Optional, Sequence, Union

import torch
from mmpretrain.structures import DataSample

from mmprompt.models.clip.clip import CLIP, CLIPZeroShot
from mmprompt.models.clip.vocabulary import ClassVocabulary
from mmprompt.models.ram.vocabulary import TagVocabulary, check_threshold
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
    #: Prompts are always rows of 64 tokens: the text tower compiles to one
    #: graph per batch size (``compile_model(..., text=True)``).
    text_compile_modules = ('text_encoder', )


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
    bidirectional), identical rows once, the last block at the pooled
    token only; see
    :func:`~mmprompt.models.clip.zero_shot.encode_token_ids`.
    """

    score_activation = 'sigmoid'

    def build_tag_vocabulary(
        self,
        categories: Sequence[str],
        templates: Optional[Union[str, Sequence[str]]] = None,
        thresholds: Union[float, Mapping[str, float]] = 0.5
    ) -> TagVocabulary:
        """An open set of tags: the prototypes of ``categories`` (see
        :meth:`build_vocabulary`) with a threshold each on their sigmoid
        scores; the model is not changed.

        Args:
            categories (Sequence[str]): Tag names.
            templates (str | Sequence[str], optional): Defaults to the
                model's templates.
            thresholds (float | Mapping[str, float]): One threshold, or
                per-tag ones (calibrated, e.g. by
                ``tools/calibrate_thresholds.py``); tags missing from the
                mapping get 0.5, the model's own even odds.
                Defaults to 0.5.

        Returns:
            TagVocabulary: ``label_embed`` the ``(K, D)`` prototypes.
        """
        classes = self.build_vocabulary(list(categories), templates)
        if isinstance(thresholds, Mapping):
            values = [
                check_threshold(thresholds.get(name, 0.5))
                for name in classes.names
            ]
        else:
            values = [check_threshold(thresholds)] * len(classes)
        return TagVocabulary(
            classes.prototypes,
            torch.tensor(values, device=classes.prototypes.device),
            names=classes.names)

    def predict(
        self,
        inputs: torch.Tensor,
        data_samples: Optional[List[DataSample]] = None,
        vocabulary: Optional[Union[ClassVocabulary, TagVocabulary]] = None
    ) -> List[DataSample]:
        """Classify images, or tag them with a :class:`TagVocabulary`.

        Args:
            inputs (torch.Tensor): Preprocessed images, ``(N, 3, H, W)``.
            data_samples (List[DataSample], optional): Samples to fill;
                new ones are made if None. Defaults to None.
            vocabulary (ClassVocabulary | TagVocabulary, optional): What to
                classify into, or the tags of :meth:`build_tag_vocabulary`.
                Defaults to the model's categories, classified.

        Returns:
            List[DataSample]: ``pred_score``, the sigmoid scores ``(K, )``;
            classified, ``pred_label`` the best category; tagged, as RAM's
            predictions: ``pred_label`` the tags whose score is above their
            threshold (ascending) and ``pred_tags`` their names.
        """
        if not isinstance(vocabulary, TagVocabulary):
            return super().predict(inputs, data_samples, vocabulary)
        samples = super().predict(
            inputs, data_samples,
            ClassVocabulary(vocabulary.label_embed, vocabulary.names))
        scores = torch.stack([s.pred_score for s in samples])
        selected = vocabulary.select(scores)
        for sample, row in zip(samples, selected):
            labels = row.nonzero()[:, 0]
            sample.set_pred_label(labels)
            names = vocabulary.names_of(labels.tolist())[0]
            if names is not None:
                sample.set_field(names, 'pred_tags')
        return samples
