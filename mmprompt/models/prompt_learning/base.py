# Copyright (c) mmprompt contributors. All rights reserved.
"""The base of the prompt-learning models: a frozen CLIP in eval mode,
loaded from its own ``init_cfg`` and left out of the state dict."""
import copy
from typing import Any, List, Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModel
from mmpretrain.structures import DataSample

from mmprompt.models.utils.data_preprocessor import build_cls_preprocessor
from mmprompt.registry import MODELS
from ..clip.clip import CLIP_MEAN, CLIP_STD, logits_to_samples
from ..clip.vocabulary import ClassVocabulary


class FrozenCLIPModel(BaseModel):
    """A frozen CLIP and the entry points; subclasses implement
    :meth:`compute_logits`.

    Args:
        clip (dict | nn.Module): Config of a
            :class:`~mmprompt.models.clip.CLIP` (or a built one); its
            ``Pretrained`` ``init_cfg`` loads strictly in :meth:`init_weights`.
        data_preprocessor (dict, optional): Defaults to CLIP's.
        init_cfg (dict, optional): Unused. Defaults to None.
    """

    def __init__(self,
                 clip: Union[dict, nn.Module],
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if isinstance(clip, nn.Module):
            clip_init = None
            data_preprocessor = data_preprocessor or clip.data_preprocessor
        else:
            clip = copy.deepcopy(clip)
            clip_init = clip.pop('init_cfg', None)
            if data_preprocessor is None:
                data_preprocessor = copy.deepcopy(
                    clip.get('data_preprocessor'))
            clip = MODELS.build(clip)
        # The default normalisation is the model's own (SigLIP: 0.5).
        super().__init__(
            data_preprocessor=build_cls_preprocessor(
                data_preprocessor, getattr(clip, 'image_mean', CLIP_MEAN),
                getattr(clip, 'image_std', CLIP_STD)),
            init_cfg=init_cfg)
        self.clip_init = clip_init
        self.clip = clip
        self.clip.requires_grad_(False)
        self.clip.eval()
        self._register_state_dict_hook(_drop_clip_keys)
        self.register_load_state_dict_post_hook(_allow_missing_clip_keys)

    def train(self, mode: bool = True) -> 'FrozenCLIPModel':
        """Set the learned parts' mode; the frozen CLIP stays in eval."""
        super().train(mode)
        self.clip.eval()
        return self

    def init_weights(self) -> None:
        """Load CLIP's weights from its ``init_cfg`` (strictly)."""
        if self.clip_init and self.clip_init.get('checkpoint'):
            from mmprompt.utils.checkpoint import load_checkpoint
            load_checkpoint(self.clip, self.clip_init['checkpoint'])
        self._is_init = True

    @property
    def image_size(self) -> int:
        """int: Side of the square images CLIP's image tower takes."""
        return int(self.clip.visual.img_size[0])

    @property
    def preprocess_args(self) -> dict:
        """dict: The frozen CLIP's ``preprocess_args``."""
        return self.clip.preprocess_args

    def extract_image_feat(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised image features, ``(N, D)``, without gradients."""
        with torch.no_grad():
            return F.normalize(self.clip.extract_image_feat(images), dim=-1)

    def compute_logits(self, image_feats: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, C)`` of normalised image features."""
        raise NotImplementedError

    def vocabulary_logits(self, image_feats: torch.Tensor,
                          vocabulary: ClassVocabulary) -> torch.Tensor:
        """Logits ``(N, C)`` over a vocabulary of ``build_vocabulary``."""
        return vocabulary.logits(image_feats, self.clip.scale_similarity)

    def predict(self,
                inputs: torch.Tensor,
                data_samples: Optional[List[DataSample]] = None,
                vocabulary: Optional[Any] = None) -> List[DataSample]:
        """Classify images among the current categories, or those of
        ``vocabulary`` (of ``build_vocabulary``): data samples with
        ``pred_score`` (softmax of the logits) and ``pred_label``."""
        feats = self.extract_image_feat(inputs)
        logits = self.compute_logits(feats) if vocabulary is None else \
            self.vocabulary_logits(feats, vocabulary)
        return logits_to_samples(logits, data_samples)

    def forward(self,
                inputs: torch.Tensor,
                data_samples: Optional[List[DataSample]] = None,
                mode: str = 'tensor'):
        """``'loss'``: cross-entropy dict; ``'predict'``: data samples;
        ``'tensor'``: logits."""
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        logits = self.compute_logits(self.extract_image_feat(inputs))
        if mode == 'tensor':
            return logits
        if mode == 'loss':
            labels = torch.cat([s.gt_label for s in data_samples])
            return dict(loss=F.cross_entropy(logits, labels.to(logits.device)))
        raise ValueError(f"invalid mode {mode!r}: 'loss', 'predict' or "
                         "'tensor'")


def _drop_clip_keys(module, state_dict, prefix, local_metadata) -> None:
    """State-dict hook: the frozen CLIP is not part of what was learned."""
    for key in [k for k in state_dict if k.startswith(prefix + 'clip.')]:
        del state_dict[key]


def _allow_missing_clip_keys(module, incompatible_keys) -> None:
    """Strict loading of learned weights: CLIP's come from its own file."""
    missing = incompatible_keys.missing_keys
    for key in [k for k in missing if k.startswith('clip.')]:
        missing.remove(key)
