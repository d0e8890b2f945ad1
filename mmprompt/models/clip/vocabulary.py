# Copyright (c) mmprompt contributors. All rights reserved.
"""What a zero-shot classifier recognises, as a value passed to
``predict(..., vocabulary=...)``, so callers share a model, not state."""
import dataclasses
from typing import Callable, Optional, Tuple

import torch

from .zero_shot import cache_logits


@dataclasses.dataclass(frozen=True, eq=False)
class ClassVocabulary:
    """Categories and how an image feature is scored against them.

    ``logits = to_logits(f @ prototypes.T)
    + cache_alpha * exp(-cache_beta * (1 - f @ example_feats.T)) @ L``

    with ``f`` the normalised image features, ``to_logits`` the model's
    ``scale_similarity`` and ``L`` the one-hot ``example_labels``
    (Tip-Adapter's cache, only with examples).

    Attributes:
        prototypes (torch.Tensor): ``(C, D)`` unit rows.
        names (tuple[str], optional): The ``C`` category names, if known.
        example_feats (torch.Tensor, optional): ``(M, D)`` unit rows of
            example images. Defaults to None.
        example_labels (torch.Tensor, optional): ``(M, )`` their labels in
            ``[0, C)``. Defaults to None.
        cache_alpha (float, optional): Weight of the example cache.
            Defaults to None (the model's).
        cache_beta (float, optional): Sharpness of the example affinities.
            Defaults to None (the model's).
        from_names (bool): Whether new weights can rebuild the prototypes
            from the names. Defaults to True.
        templates (tuple[str], optional): The templates they were built
            with. Defaults to None.
        descriptions (tuple, optional): The descriptions they were built
            with, ``((label, texts), ...)``. Defaults to None.
    """
    prototypes: torch.Tensor
    names: Optional[Tuple[str, ...]] = None
    example_feats: Optional[torch.Tensor] = None
    example_labels: Optional[torch.Tensor] = None
    cache_alpha: Optional[float] = None
    cache_beta: Optional[float] = None
    from_names: bool = True
    templates: Optional[Tuple[str, ...]] = None
    descriptions: Optional[tuple] = None

    def __post_init__(self) -> None:
        if self.prototypes.dim() != 2:
            raise ValueError('prototypes must be (C, D), got '
                             f'{tuple(self.prototypes.shape)}')
        if self.names is not None and len(self.names) != len(self):
            raise ValueError(f'{len(self.names)} categories for '
                             f'{len(self)} prototypes')
        if (self.example_feats is None) != (self.example_labels is None):
            raise ValueError('example features and labels go together')

    def __len__(self) -> int:
        return self.prototypes.size(0)

    def with_examples(self, feats: Optional[torch.Tensor],
                      labels: Optional[torch.Tensor]) -> 'ClassVocabulary':
        """The same categories with these example features (or none).

        Args:
            feats (torch.Tensor, optional): ``(M, D)`` unit rows.
            labels (torch.Tensor, optional): ``(M, )`` labels in ``[0, C)``.
        """
        if feats is not None and (labels.numel() != feats.size(0) or
                                  labels.min() < 0 or
                                  labels.max() >= len(self)):
            raise ValueError(f'example labels must be {feats.size(0)} '
                             f'values in [0, {len(self)})')
        return dataclasses.replace(
            self, example_feats=feats, example_labels=labels)

    def logits(self,
               image_feats: torch.Tensor,
               to_logits: Callable[[torch.Tensor], torch.Tensor],
               cache_alpha: float = 1.0,
               cache_beta: float = 5.5) -> torch.Tensor:
        """Logits of normalised image features, ``(N, C)``.

        Args:
            image_feats (torch.Tensor): ``(N, D)``, unit rows.
            to_logits (Callable): The model's ``scale_similarity``.
            cache_alpha (float): The model's cache weight (used unless the
                vocabulary has one). Defaults to 1.0.
            cache_beta (float): Likewise, its sharpness. Defaults to 5.5.
        """
        logits = to_logits(image_feats @ self.prototypes.t())
        if self.example_feats is None:
            return logits
        alpha = cache_alpha if self.cache_alpha is None else self.cache_alpha
        beta = cache_beta if self.cache_beta is None else self.cache_beta
        if alpha != 0:
            logits = logits + alpha * cache_logits(
                image_feats, self.example_feats, self.example_labels,
                len(self), beta)
        return logits
