# Copyright (c) mmprompt contributors. All rights reserved.
"""`RAM++ <https://arxiv.org/abs/2310.15200>`_ on :class:`~.ram.RAM`
(``xinyu1205/recognize-anything``, Apache-2.0)."""
import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmprompt.registry import MODELS
from .ram import RAM, with_category_encoder
from .vocabulary import TagVocabulary


@MODELS.register_module()
class RAMPlus(RAM):
    """RAM++: per image, a softmax over each tag's description embeddings
    of ``exp(reweight_scale) * <unit image token 0, description>`` mixes
    them into one label embedding; the rest is RAM.

    Args:
        num_descriptions (int): Descriptions per own tag. Defaults to 51.
        **kwargs: The arguments of :class:`RAM`.
    """
    takes_descriptions = True

    def __init__(self, num_descriptions: int = 51, **kwargs) -> None:
        super().__init__(**kwargs)
        self.num_descriptions = num_descriptions
        self.label_embed = nn.Parameter(
            torch.zeros(self.num_classes * num_descriptions, self.embed_dims))
        self.reweight_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def description_weights(
            self, image_embeds: torch.Tensor,
            vocabulary: Optional[TagVocabulary] = None) -> torch.Tensor:
        """Softmax weights ``(B, K, D)`` of each tag's descriptions.

        Args:
            image_embeds (torch.Tensor): ``image_proj`` output, ``(B, N, C)``.
            vocabulary (TagVocabulary, optional): Defaults to
                :attr:`vocabulary`.
        """
        vocabulary = vocabulary or self.vocabulary
        image = image_embeds[:, 0]
        image = image / image.norm(dim=-1, keepdim=True)
        sim = self.reweight_scale.exp() * image @ vocabulary.label_embed.t()
        return sim.view(image.size(0), vocabulary.num_tags, -1).softmax(dim=-1)

    def reweight_label_embed(
            self, image_embeds: torch.Tensor,
            vocabulary: Optional[TagVocabulary] = None) -> torch.Tensor:
        """Per-image label embeddings ``(B, K, C)``: descriptions mixed by
        their weights.

        Args:
            image_embeds (torch.Tensor): ``image_proj`` output, ``(B, N, C)``.
            vocabulary (TagVocabulary, optional): Defaults to
                :attr:`vocabulary`.
        """
        vocabulary = vocabulary or self.vocabulary
        weights = self.description_weights(image_embeds, vocabulary)
        label_embed = vocabulary.label_embed.view(*weights.shape[1:], -1)
        return torch.einsum('bkd,kdc->bkc', weights, label_embed)

    def compute_label_queries(
            self, image_embeds: torch.Tensor,
            vocabulary: Optional[TagVocabulary] = None) -> torch.Tensor:
        """The tagging head's queries ``(B, K, H)``, one set per image.

        Args:
            image_embeds (torch.Tensor): ``image_proj`` output, ``(B, N, C)``.
            vocabulary (TagVocabulary, optional): Defaults to
                :attr:`vocabulary`.
        """
        return F.relu(
            self.wordvec_proj(
                self.reweight_label_embed(image_embeds, vocabulary)))


RAMPlusOpenset = MODELS.register_module(module=with_category_encoder(RAMPlus))
