# Copyright (c) mmprompt contributors. All rights reserved.
"""`SigLIP <https://arxiv.org/abs/2303.15343>`_ and `SigLIP 2
<https://arxiv.org/abs/2502.14786>`_: CLIP's interface, scored by a sigmoid
(``sigmoid(logit_scale.exp() * cos + logit_bias)``)."""
from typing import List, Mapping, Optional, Sequence, Union

import torch
from mmpretrain.structures import DataSample

from mmprompt.models.clip.clip import CLIP, CLIPZeroShot
from mmprompt.models.clip.vocabulary import ClassVocabulary
from mmprompt.models.ram.vocabulary import TagVocabulary, check_threshold
from mmprompt.registry import MODELS


@MODELS.register_module()
class SigLIP(CLIP):
    """SigLIP / SigLIP 2 image and text encoders.

    :class:`~mmprompt.models.clip.CLIP` (same arguments; ``proj_dims`` is
    the image tower's width) without ``visual_proj``, with a learned
    ``logit_bias`` and no default tokenizer (each model has its own).
    """

    # open_clip's preprocessing of every SigLIP model.
    default_image_preprocess = dict(
        resize_mode='squash', interpolation='bicubic')
    # Mean and std 0.5 of RGB in [0, 1].
    image_mean = image_std = (127.5, 127.5, 127.5)
    default_tokenizer = None
    project_image = False
    logit_bias_init = -10.0
    #: Rows are always 64 tokens: one compiled graph per batch size.
    text_compile_modules = ('text_encoder', )


@MODELS.register_module()
class SigLIPZeroShot(SigLIP, CLIPZeroShot):
    """Zero-shot classification with SigLIP / SigLIP 2.

    :class:`~mmprompt.models.clip.CLIPZeroShot` (same arguments) on
    :class:`SigLIP`'s towers. ``pred_score`` is ``sigmoid(logits)``, the
    model's own probability per category: unlike a softmax it can say that
    no category fits.
    """

    score_activation = 'sigmoid'

    def build_tag_vocabulary(
        self,
        categories: Sequence[str],
        templates: Optional[Union[str, Sequence[str]]] = None,
        thresholds: Union[float, Mapping[str, float]] = 0.5
    ) -> TagVocabulary:
        """An open set of tags: :meth:`build_vocabulary` of ``categories``
        with a threshold each on their sigmoid scores.

        Args:
            categories (Sequence[str]): Tag names.
            templates (str | Sequence[str], optional): Defaults to the model's.
            thresholds (float | Mapping[str, float]): One threshold, or
                per-tag ones (missing tags get 0.5). Defaults to 0.5.

        Returns:
            TagVocabulary: ``label_embed`` the ``(K, D)`` prototypes.
        """
        classes = self.build_vocabulary(list(categories), templates)
        if not isinstance(thresholds, Mapping):
            thresholds = dict.fromkeys(classes.names, thresholds)
        values = [
            check_threshold(thresholds.get(n, 0.5)) for n in classes.names
        ]
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
            data_samples (List[DataSample], optional): Samples to fill.
                Defaults to None (new ones).
            vocabulary (ClassVocabulary | TagVocabulary, optional): Classes,
                or tags. Defaults to the model's categories.

        Returns:
            List[DataSample]: ``pred_score``, the sigmoid scores ``(K, )``,
            and ``pred_label`` the best category or, tagged, as RAM's: the
            tags over their threshold, and ``pred_tags`` their names.
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
