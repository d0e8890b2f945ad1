# Copyright (c) mmprompt contributors. All rights reserved.
"""`Tip-Adapter-F <https://arxiv.org/abs/2207.09519>`_ on a frozen CLIP
(gaopengcuhk/Tip-Adapter): ``s f W^T + alpha exp(-beta (1 - f K^T)) L``, the
keys ``K`` learned. The original chose alpha, beta and the epoch on the test
set; here the search reads the validation split and the last epoch is kept.
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.logging import print_log

from mmprompt.registry import MODELS
from mmprompt.utils.errors import CheckpointError, InvalidInputError
from ..clip.prompts import resolve_categories, resolve_templates
from ..clip.vocabulary import ClassVocabulary
from ..clip.zero_shot import build_text_prototypes, cache_logits
from .base import FrozenCLIPModel


def search_grid(scale: float, steps: int) -> List[float]:
    """Tip-Adapter's search values: ``steps`` points from 0.1 up to (not
    including) ``scale``, evenly spaced."""
    return [i * (scale - 0.1) / steps + 0.1 for i in range(steps)]


@MODELS.register_module()
class TipAdapterF(FrozenCLIPModel):
    """Tip-Adapter-F on a frozen CLIP; only the cache keys are learned.

    Args:
        clip (dict | nn.Module): See :class:`FrozenCLIPModel`.
        categories (str | Sequence[str]): The training classes, in order.
        templates (str | Sequence[str]): Templates of the text prototypes.
            Defaults to ``'simple'``.
        cache_size (int, optional): Rows of the cache, one per training
            image; None: the loaded file's. Defaults to None.
        alpha (float): Weight of the cache. Defaults to 1.0.
        beta (float): Sharpness of the affinities. Defaults to 1.0.
        text_batch_size (int): Prompts per text-tower pass. Defaults to 1024.
        data_preprocessor (dict, optional): Defaults to CLIP's.
        init_cfg (dict, optional): Unused. Defaults to None.
    """
    method = 'TipAdapterF'
    #: ``tools/train.py`` sets ``cache_size`` from the training set.
    cache_from_train_set = True

    def __init__(self,
                 clip: Union[dict, nn.Module],
                 categories: Optional[Union[str, Sequence[str]]] = None,
                 templates: Union[str, Sequence[str]] = 'simple',
                 cache_size: Optional[int] = None,
                 alpha: float = 1.0,
                 beta: float = 1.0,
                 text_batch_size: int = 1024,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if categories is None:
            raise InvalidInputError(
                'TipAdapterF needs categories (tools/train.py takes them '
                "from the training set's classes)")
        super().__init__(clip, data_preprocessor, init_cfg)
        self.templates = resolve_templates(templates)
        self.text_batch_size = text_batch_size
        self.trained_categories = list(resolve_categories(categories))
        self.categories = list(self.trained_categories)
        size = int(cache_size or 0)
        self.cache_keys = nn.Parameter(torch.zeros(size, self.clip.proj_dims))
        # -1: not built yet.
        self.register_buffer('cache_labels',
                             torch.full((size, ), -1, dtype=torch.long))
        self.register_buffer('alpha', torch.tensor(float(alpha)))
        self.register_buffer('beta', torch.tensor(float(beta)))
        self.register_buffer('text_prototypes', None, persistent=False)
        # Label of each key among the current categories, -1 for none.
        self.register_buffer('key_labels', None, persistent=False)
        self._kept_rows: Optional[torch.Tensor] = None
        self._map_labels()

    def set_categories(self, categories: Sequence[str]) -> None:
        """Classify among other names (an untrained name gets no cache
        term, only its prototype)."""
        self.categories = list(resolve_categories(list(categories)))
        self.text_prototypes = None
        self._map_labels()

    def _key_labels(
        self, categories: Sequence[str]
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """The label of each key among ``categories`` (-1 for none) and the
        rows of the keys that have one (None: all of them)."""
        index = {n: i for i, n in enumerate(categories)}
        table = torch.tensor(
            [index.get(n, -1) for n in self.trained_categories] + [-1],
            device=self.cache_labels.device)
        # A label of -1 (not built) reads the table's last entry, -1.
        key_labels = table[self.cache_labels]
        kept = key_labels >= 0
        return key_labels, None if bool(kept.all()) else torch.nonzero(
            kept)[:, 0]

    def _map_labels(self) -> None:
        self.key_labels, self._kept_rows = self._key_labels(self.categories)

    def build_vocabulary(self,
                         categories: Sequence[str]) -> ClassVocabulary:
        """The vocabulary of ``categories``: their text prototypes and the
        cache of those trained; the model is not changed."""
        categories = list(resolve_categories(list(categories)))
        labels, rows = self._key_labels(categories)
        keys = self.cache_keys.detach()
        if rows is not None:
            keys, labels = keys[rows], labels[rows]
        return ClassVocabulary(
            self._text_prototypes(categories), tuple(categories),
            example_feats=keys, example_labels=labels,
            cache_alpha=float(self.alpha), cache_beta=float(self.beta))

    def init_weights(self) -> None:
        """Load CLIP's weights; the prototypes are built from them."""
        super().init_weights()
        self.text_prototypes = None

    def get_prototypes(self) -> torch.Tensor:
        """The text prototypes ``(C, D)`` of the current categories, built
        on first use after they or CLIP's weights change."""
        if self.text_prototypes is None:
            self.text_prototypes = self._text_prototypes(self.categories)
        return self.text_prototypes

    def _text_prototypes(self, categories: Sequence[str]) -> torch.Tensor:
        """``_`` reads as a space, as in Tip-Adapter's ``clip_classifier``."""
        print_log(
            f'Building text prototypes: {len(categories)} '
            f'categories x {len(self.templates)} templates',
            logger='current')
        return build_text_prototypes(
            self.clip.extract_text_feat, self.clip.tokenize,
            [name.replace('_', ' ') for name in categories], self.templates,
            batch_size=self.text_batch_size,
            device=self.clip.logit_scale.device)

    @property
    def cache_ready(self) -> bool:
        """bool: Whether the cache was built (or loaded)."""
        return self.cache_labels.numel() > 0 and bool(
            (self.cache_labels >= 0).all())

    def set_cache(self, keys: torch.Tensor, labels: torch.Tensor) -> None:
        """Set the cache in place (the optimizer holds the keys).

        Args:
            keys (torch.Tensor): ``(cache_size, D)`` normalised features of
                the training images.
            labels (torch.Tensor): Their labels in ``trained_categories``.
        """
        if keys.shape != self.cache_keys.shape:
            raise InvalidInputError(
                f'the cache has {self.cache_keys.size(0)} rows (cache_size) '
                f'for {keys.size(0)} training images: set model.cache_size '
                'to the size of the training set (tools/train.py does)')
        num = len(self.trained_categories)
        if labels.numel() and not 0 <= int(labels.min()) <= int(
                labels.max()) < num:
            raise InvalidInputError(f'cache labels must be in [0, {num})')
        with torch.no_grad():
            self.cache_keys.copy_(keys)
            self.cache_labels.copy_(labels)
        self._map_labels()

    def _cache_rows(self) -> Tuple[torch.Tensor, torch.Tensor]:
        if self._kept_rows is None:
            return self.cache_keys, self.key_labels
        return (self.cache_keys[self._kept_rows],
                self.key_labels[self._kept_rows])

    def compute_logits(self,
                       image_feats: torch.Tensor,
                       alpha: Optional[float] = None,
                       beta: Optional[float] = None) -> torch.Tensor:
        """Logits ``(N, C)`` of normalised image features.

        Args:
            image_feats (torch.Tensor): ``(N, D)``, unit rows.
            alpha (float, optional): Defaults to the model's.
            beta (float, optional): Defaults to the model's.
        """
        prototypes = self.get_prototypes()
        logits = self.clip.scale_similarity(image_feats @ prototypes.t())
        keys, labels = self._cache_rows()
        alpha = self.alpha if alpha is None else alpha
        beta = self.beta if beta is None else beta
        return logits + alpha * cache_logits(image_feats, keys, labels,
                                             len(self.categories), beta)

    def search_alpha_beta(
            self,
            image_feats: torch.Tensor,
            labels: torch.Tensor,
            search_scale: Sequence[float] = (7, 3),
            search_step: Sequence[int] = (200, 20)) -> Dict[str, float]:
        """Set ``alpha`` and ``beta`` to the first best pair of
        Tip-Adapter's grid (:func:`search_grid`; beta outer, alpha inner);
        returns them and the top-1 accuracies (%) ``accuracy``,
        ``zero_shot`` and ``initial``.

        Args:
            image_feats (torch.Tensor): ``(N, D)`` normalised features of
                the validation images.
            labels (torch.Tensor): ``(N, )`` their labels.
            search_scale (Sequence[float]): Largest beta and alpha.
                Defaults to (7, 3).
            search_step (Sequence[int]): Number of betas and alphas.
                Defaults to (200, 20).
        """
        betas = search_grid(search_scale[0], search_step[0])
        alphas = search_grid(search_scale[1], search_step[1])
        labels = labels.to(image_feats.device)
        with torch.no_grad():
            text = self.clip.scale_similarity(
                image_feats @ self.get_prototypes().t())
            keys, key_labels = self._cache_rows()

            def correct(logits):
                return (logits.argmax(-1) == labels).sum()

            initial = int(correct(self.compute_logits(image_feats)))
            best = (-1, 0.0, 0.0)
            for beta in betas:
                cache = cache_logits(image_feats, keys, key_labels,
                                     len(self.categories), beta)
                counts = torch.stack(
                    [correct(text + alpha * cache) for alpha in alphas])
                for alpha, count in zip(alphas, counts.tolist()):
                    if count > best[0]:
                        best = (count, alpha, beta)
            zero_shot = int(correct(text))
        self.alpha.fill_(best[1])
        self.beta.fill_(best[2])
        n = max(labels.numel(), 1)
        return dict(alpha=best[1], beta=best[2], accuracy=100 * best[0] / n,
                    zero_shot=100 * zero_shot / n, initial=100 * initial / n)

    def learned_meta(self) -> Dict:
        """The meta of a learned file (see :mod:`.learned`)."""
        return dict(
            method=self.method,
            templates=list(self.templates),
            categories=list(self.trained_categories),
            cache_size=int(self.cache_keys.size(0)),
            alpha=float(self.alpha),
            beta=float(self.beta))

    @classmethod
    def from_learned_meta(cls, clip: nn.Module, meta: Dict) -> 'TipAdapterF':
        """A model with the settings of a learned file's meta, over a
        built CLIP (:func:`.learned.build_learned_model`)."""
        return cls(
            clip=clip,
            categories=list(meta['categories']),
            templates=list(meta['templates']),
            cache_size=int(meta['cache_size']),
            alpha=float(meta['alpha']),
            beta=float(meta['beta']))

    def prepare_learned(self, state_dict: Dict[str, torch.Tensor],
                        meta: Dict) -> None:
        """Before a learned file is loaded: take its training classes and,
        without ``cache_size``, its number of keys."""
        keys = state_dict.get('cache_keys')
        if keys is None or keys.dim() != 2:
            return  # load_learned names the missing key
        size, dim = keys.shape
        if dim != self.clip.proj_dims:
            raise CheckpointError(
                f'the learned cache has {dim}-dim keys, this CLIP '
                f'{self.clip.proj_dims}-dim ones')
        if self.cache_keys.size(0) not in (0, size):
            raise CheckpointError(
                f'the learned cache has {size} keys, the config sets '
                f'cache_size={self.cache_keys.size(0)}')
        if self.cache_keys.size(0) == 0:
            device = self.cache_keys.device
            self.cache_keys = nn.Parameter(
                torch.zeros(size, dim, device=device))
            self.cache_labels = torch.full((size, ), -1, dtype=torch.long,
                                           device=device)
        self.trained_categories = list(meta.get('categories') or ())
        self.set_categories(self.categories)

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        # New labels (a checkpoint resumed, a learned file) map anew.
        self._map_labels()
