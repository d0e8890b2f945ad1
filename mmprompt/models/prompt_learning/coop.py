# Copyright (c) mmprompt contributors. All rights reserved.
"""`CoOp <https://arxiv.org/abs/2109.01134>`_ and `CoCoOp
<https://arxiv.org/abs/2203.05557>`_ on a frozen CLIP (semantics of
KaiyangZhou/CoOp's ``CustomCLIP``, MIT licence).
"""
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmprompt.registry import MODELS
from mmprompt.utils.errors import InvalidInputError
from ..clip.prompts import resolve_categories
from ..clip.vocabulary import ClassVocabulary
from ..clip.zero_shot import is_causal
from .base import FrozenCLIPModel
from .prompt_learner import PromptLayout, PromptLearner


@MODELS.register_module()
class CoOp(FrozenCLIPModel):
    """Context Optimization: a learned prompt context on a frozen CLIP.

    Args:
        clip (dict | nn.Module): See :class:`FrozenCLIPModel`.
        categories (str | Sequence[str]): A set name, a text file or names
            (``tools/train.py`` fills them). Defaults to None.
        n_ctx (int): See :class:`PromptLearner`. Defaults to 16.
        ctx_init (str, optional): Initial words. Defaults to None.
        csc (bool): Class-specific contexts. Defaults to False.
        class_token_position (str): Where the name goes.
            Defaults to ``'end'``.
        share_prefix (bool): Encode the prompts' shared start once (exact
            under the causal mask). Defaults to True.
        data_preprocessor (dict, optional): Defaults to CLIP's.
        init_cfg (dict, optional): Unused. Defaults to None.
    """
    method = 'CoOp'

    def __init__(self,
                 clip: Union[dict, nn.Module],
                 categories: Optional[Union[str, Sequence[str]]] = None,
                 n_ctx: int = 16,
                 ctx_init: Optional[str] = None,
                 csc: bool = False,
                 class_token_position: str = 'end',
                 share_prefix: bool = True,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if categories is None:
            raise InvalidInputError(
                f'{type(self).__name__} needs categories (tools/train.py '
                "takes them from the training set's classes)")
        super().__init__(clip, data_preprocessor, init_cfg)
        if not is_causal(self.clip.text_encoder):
            raise InvalidInputError(
                f'{type(self).__name__} needs a causal text tower (CLIP): its '
                'learned context is cut and shared as a prefix, exact only '
                f'under a causal mask, and {type(self.clip).__name__} has a '
                'bidirectional one; use zero-shot or Tip-Adapter-F instead')
        self.share_prefix = share_prefix
        text = self.clip.text_encoder
        self.prompt_learner = PromptLearner(
            text.token_embedding, self.clip.tokenizer,
            list(resolve_categories(categories)), n_ctx=n_ctx,
            ctx_init=ctx_init, csc=csc,
            class_token_position=class_token_position,
            context_length=text.context_length)

    def init_weights(self) -> None:
        """Load CLIP's weights, then start a ``ctx_init`` context from the
        loaded token embedding."""
        super().init_weights()
        self.prompt_learner.init_context(
            self.clip.text_encoder.token_embedding)

    @property
    def categories(self) -> List[str]:
        """list[str]: The current category names."""
        return self.prompt_learner.categories

    @property
    def trained_categories(self) -> List[str]:
        """list[str]: The category names it was trained on."""
        return self.prompt_learner.trained_categories

    def set_categories(self, categories: Sequence[str]) -> None:
        """Classify among other names (a unified context takes any)."""
        self.prompt_learner.set_categories(list(categories))

    def build_vocabulary(self,
                         categories: Sequence[str]) -> ClassVocabulary:
        """The vocabulary of ``categories``: their learned prompts' text
        features; the model is not changed.

        Args:
            categories (Sequence[str]): Category names.
        """
        layout = self.prompt_learner.layout(
            list(resolve_categories(categories)))
        with torch.no_grad():
            prototypes = self.extract_text_feat(layout)
        return ClassVocabulary(prototypes, layout.names)

    def extract_text_feat(
            self, layout: Optional[PromptLayout] = None) -> torch.Tensor:
        """Normalised features of every category's prompt, ``(C, D)``.

        Args:
            layout (PromptLayout, optional): Defaults to the current
                categories'.
        """
        learner = self.prompt_learner
        layout = layout or learner.default_layout()
        text = self.clip.text_encoder
        embed = text.token_embedding
        if self.share_prefix and learner.shares_prefix:
            n = learner.n_ctx
            ids = layout.token_ids
            head = torch.cat([embed(ids[:1, :1]), learner.ctx[None]], dim=1)
            prefix = text.encode_prefix(head)
            feats = text.forward_embeddings(
                embed(ids[:, 1 + n:]), layout.eot - 1 - n, prefix)
        else:
            embeds, eot = learner(embed, layout=layout)
            feats = text.forward_embeddings(embeds, eot)
        return F.normalize(feats, dim=-1)

    def compute_logits(self, image_feats: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, C)`` of normalised image features."""
        text_feats = self.extract_text_feat()
        return self.clip.logit_scale.exp() * image_feats @ text_feats.t()

    def learned_meta(self) -> Dict:
        """The meta of a learned-prompt file (see :mod:`.learned`)."""
        learner = self.prompt_learner
        return dict(
            method=self.method,
            n_ctx=learner.n_ctx,
            ctx_init=learner.ctx_init,
            csc=learner.csc,
            class_token_position=learner.class_token_position,
            categories=list(learner.trained_categories))

    @classmethod
    def from_learned_meta(cls, clip: nn.Module, meta: Dict) -> 'CoOp':
        """A model with the settings of a learned-prompt file's meta, over
        a built CLIP (:func:`.learned.build_learned_model`)."""
        return cls(
            clip=clip,
            categories=list(meta['categories']),
            n_ctx=int(meta['n_ctx']),
            ctx_init=meta.get('ctx_init'),
            csc=bool(meta['csc']),
            class_token_position=meta['class_token_position'])


@MODELS.register_module()
class CoCoOp(CoOp):
    """Conditional CoOp: each image's ``meta_net`` output shifts every
    context vector (a unified context at the end).

    Args:
        **kwargs: Arguments of :class:`CoOp` (``ctx_init`` defaults to
            ``'a photo of a'``).
    """
    method = 'CoCoOp'

    def __init__(self, ctx_init: Optional[str] = 'a photo of a', **kwargs):
        if kwargs.get('csc') or kwargs.get('class_token_position',
                                           'end') != 'end':
            raise InvalidInputError(
                'CoCoOp uses a unified context at the end position')
        super().__init__(ctx_init=ctx_init, **kwargs)
        dim = self.clip.proj_dims
        width = self.clip.text_encoder.embed_dims
        self.meta_net = nn.Sequential(
            nn.Linear(dim, dim // 16), nn.ReLU(inplace=True),
            nn.Linear(dim // 16, width))

    def build_vocabulary(self, categories: Sequence[str]) -> PromptLayout:
        """The vocabulary of ``categories``: their prompts' layout (text
        features are made per image)."""
        return self.prompt_learner.layout(
            list(resolve_categories(categories)))

    def vocabulary_logits(self, image_feats: torch.Tensor,
                          vocabulary: PromptLayout) -> torch.Tensor:
        """Logits ``(N, C)`` over a vocabulary of :meth:`build_vocabulary`."""
        return self.compute_logits(image_feats, vocabulary)

    def compute_logits(
            self, image_feats: torch.Tensor,
            layout: Optional[PromptLayout] = None) -> torch.Tensor:
        """Logits ``(N, C)``; each image with its own shifted context.

        Args:
            image_feats (torch.Tensor): ``(N, D)``, unit rows.
            layout (PromptLayout, optional): Defaults to the current
                categories'.
        """
        learner = self.prompt_learner
        layout = layout or learner.default_layout()
        text = self.clip.text_encoder
        embed = text.token_embedding
        n, num_cls = learner.n_ctx, len(layout.names)
        batch = image_feats.size(0)
        ctx = learner.ctx[None] + self.meta_net(image_feats)[:, None]
        ids = layout.token_ids
        if self.share_prefix:
            head = torch.cat([embed(ids[:1, :1]).expand(batch, -1, -1), ctx],
                             dim=1)
            prefix = text.encode_prefix(head)
            prefix = prefix._replace(keys_values=[
                tuple(t.repeat_interleave(num_cls, dim=0) for t in kv)
                for kv in prefix.keys_values
            ])
            suffix = embed(ids[:, 1 + n:]).repeat(batch, 1, 1)
            eot = (layout.eot - 1 - n).repeat(batch)
            feats = text.forward_embeddings(suffix, eot, prefix)
        else:
            embeds, eots = zip(*[
                learner(embed, c[None].expand(num_cls, -1, -1), layout)
                for c in ctx])
            feats = text.forward_embeddings(torch.cat(embeds), torch.cat(eots))
        feats = F.normalize(feats, dim=-1).view(batch, num_cls, -1)
        scale = self.clip.logit_scale.exp()
        return scale * torch.einsum('nd,ncd->nc', image_feats, feats)
