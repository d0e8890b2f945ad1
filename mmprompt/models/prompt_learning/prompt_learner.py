# Copyright (c) mmprompt contributors. All rights reserved.
"""The learnable context of CoOp and CoCoOp.

Semantics of CoOp's ``PromptLearner`` (`Zhou et al., 2022
<https://arxiv.org/abs/2109.01134>`_, KaiyangZhou/CoOp, MIT licence): the
prompt of a category is ``prefix + ' ' + name + '.'`` with ``_`` in names
read as spaces, the ``n_ctx`` tokens of the prefix replaced by learned
vectors, placed before the name (``'end'``), around it (``'middle'``) or
after it (``'front'``). The code is written for mmprompt.

Only the context is a parameter. The token ids of the prompts are
non-persistent buffers rebuilt from the category names, so a saved learner
holds the context alone, and a unified context can be used with names it
never saw.
"""
from typing import Callable, List, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from mmprompt.utils.errors import InvalidInputError
from ..clip.prompts import check_categories, check_prompt_names

POSITIONS = ('end', 'middle', 'front')


class PromptLayout(NamedTuple):
    """The token layout of the prompts of one category set: a value
    (:meth:`PromptLearner.layout`), the vocabulary of an image-conditioned
    learner (CoCoOp).

    Attributes:
        names (tuple[str]): The category names, in label order.
        token_ids (torch.Tensor): ``(C, L)`` ids, the context's places
            held by the prefix's tokens, cut to the longest prompt.
        name_lens (torch.Tensor): ``(C, )`` tokens of each name.
        ctx_rows (torch.Tensor): ``(C, )`` row of the context each
            category uses (a class-specific context's trained row).
    """
    names: Tuple[str, ...]
    token_ids: torch.Tensor
    name_lens: torch.Tensor
    ctx_rows: torch.Tensor

    @property
    def eot(self) -> torch.Tensor:
        """torch.Tensor: ``(C, )`` end-of-text position of each prompt."""
        return self.token_ids.argmax(dim=-1)


class PromptLearner(nn.Module):
    """Learned context vectors and the token layout of the prompts.

    Args:
        token_embedding (nn.Embedding): The frozen token embedding of the
            text tower, read (not kept) to start the context from
            ``ctx_init``. A CLIP whose weights are loaded later (the
            Runner's order: construct, then ``init_weights``) must call
            :meth:`init_context` again once they are in place.
        tokenizer: CLIP's tokenizer (``encode``, ``sot_token_id``,
            ``eot_token_id``).
        categories (Sequence[str]): Category names in label order.
        n_ctx (int): Number of context vectors. With ``ctx_init`` it is
            the most BPE tokens the words may have, and the context has one
            vector per BPE token of the words. This differs from CoOp,
            which counts words (``len(ctx_init.split(' '))``) and takes the
            embeddings of that many first tokens, leaving the rest of the
            words' tokens fixed in the prompt: for ``'a photo of a'`` (one
            token per word) both give the same 4 vectors; for
            ``'itap of a'`` (4 tokens, 3 words) CoOp learns 3 vectors and
            keeps the token ``'a'`` fixed, mmprompt learns all 4.
            Defaults to 16.
        ctx_init (str, optional): Words the context starts from, e.g.
            ``'a photo of a'``. Defaults to None: N(0, 0.02).
        csc (bool): A context per category, ``(C, n_ctx, width)``, instead
            of one shared ``(n_ctx, width)``. Defaults to False.
        class_token_position (str): ``'end'``, ``'middle'`` or ``'front'``.
            Defaults to ``'end'``.
        context_length (int): The text tower's context. Defaults to 77.
    """

    def __init__(self,
                 token_embedding: nn.Embedding,
                 tokenizer,
                 categories: Sequence[str],
                 n_ctx: int = 16,
                 ctx_init: Optional[str] = None,
                 csc: bool = False,
                 class_token_position: str = 'end',
                 context_length: int = 77) -> None:
        super().__init__()
        if class_token_position not in POSITIONS:
            raise InvalidInputError(
                f'class_token_position must be one of {POSITIONS}, got '
                f'{class_token_position!r}')
        self.tokenizer = tokenizer
        self.context_length = context_length
        self.csc = bool(csc)
        self.class_token_position = class_token_position
        self.ctx_init = ctx_init.replace('_', ' ') if ctx_init else None
        width = token_embedding.embedding_dim
        if self.ctx_init:
            ids = tokenizer.encode(self.ctx_init)
            if not ids or len(ids) + 2 > context_length:
                raise InvalidInputError(
                    f'ctx_init {ctx_init!r} is {len(ids)} tokens; it must '
                    f'have 1 to {context_length - 2}')
            if len(ids) > n_ctx:
                raise InvalidInputError(
                    f'ctx_init {ctx_init!r} is {len(ids)} tokens, more than '
                    f'n_ctx={n_ctx} allows; shorten it or raise n_ctx')
            n_ctx = len(ids)
            shape = (len(categories), n_ctx,
                     width) if self.csc else (n_ctx, width)
            vectors = torch.empty(shape, dtype=token_embedding.weight.dtype)
            self.prefix_text = self.ctx_init
        else:
            if n_ctx < 1 or n_ctx + 2 > context_length:
                raise InvalidInputError(
                    f'n_ctx must be in [1, {context_length - 2}], got {n_ctx}')
            shape = (len(categories), n_ctx,
                     width) if self.csc else (n_ctx, width)
            vectors = torch.empty(
                shape, dtype=token_embedding.weight.dtype).normal_(std=0.02)
            self.prefix_text = ' '.join(['X'] * n_ctx)
        self.n_ctx = n_ctx
        self.ctx = nn.Parameter(vectors.to(token_embedding.weight.device))
        self.init_context(token_embedding)
        self.trained_categories: List[str] = list(categories)
        self.set_categories(categories)

    def init_context(self, token_embedding: nn.Embedding) -> None:
        """Start the context from the embeddings of ``ctx_init``'s tokens
        in ``token_embedding`` (every category's row alike with ``csc``);
        nothing to do for a random context.

        Args:
            token_embedding (nn.Embedding): The text tower's token
                embedding, with the weights the prompts will be learned on.
        """
        if not self.ctx_init:
            return
        ids = torch.tensor(self.tokenizer.encode(self.ctx_init),
                           device=token_embedding.weight.device)
        with torch.no_grad():
            self.ctx.copy_(token_embedding.weight[ids].expand_as(self.ctx))

    # -- the prompts' token layout --------------------------------------
    def layout(self, categories: Sequence[str]) -> PromptLayout:
        """The token layout of the prompts of ``categories``; nothing is
        stored.

        A class-specific context keeps the row of each name it was trained
        with; names it has no row for are refused.

        Args:
            categories (Sequence[str]): Category names in label order.

        Raises:
            InvalidInputError: Unknown names for a class-specific context,
                names the tokenizer reads alike (see
                :func:`~mmprompt.models.clip.prompts.check_categories`), or
                prompts longer than the context (the names are listed).
        """
        categories = list(categories)
        if not categories:
            raise InvalidInputError('no categories given')
        categories = list(check_categories(categories))
        # The prompts read '_' as a space: 'red_fox' and 'red fox' are one
        # prompt, so they are duplicates here too.
        check_prompt_names(categories, lambda n: n.replace('_', ' '),
                           "'_' reads as a space")
        if self.csc:
            known = {n: i for i, n in enumerate(self.trained_categories)}
            unknown = [n for n in categories if n not in known]
            if unknown:
                raise InvalidInputError(
                    f'a class-specific context (csc=True) has no context for '
                    f'{len(unknown)} name(s) it was not trained on: '
                    f'{unknown[:5]}; use a unified context for new names')
            rows = [known[n] for n in categories]
        else:
            rows = list(range(len(categories)))
        tok = self.tokenizer
        id_rows, name_lens, too_long = [], [], []
        for name in categories:
            name = name.replace('_', ' ')
            ids = [tok.sot_token_id
                   ] + tok.encode(f'{self.prefix_text} {name}.') + [
                       tok.eot_token_id
                   ]
            if len(ids) > self.context_length:
                too_long.append(name)
            id_rows.append(ids)
            name_lens.append(len(tok.encode(name)))
        if too_long:
            raise InvalidInputError(
                f'{len(too_long)} prompt(s) exceed the {self.context_length}'
                f'-token context with n_ctx={self.n_ctx}: {too_long[:5]}')
        length = max(len(r) for r in id_rows)
        ids = torch.zeros(len(id_rows), length, dtype=torch.long)
        for i, r in enumerate(id_rows):
            ids[i, :len(r)] = torch.tensor(r)
        device = self.ctx.device
        return PromptLayout(
            tuple(categories), ids.to(device),
            torch.tensor(name_lens, device=device),
            torch.tensor(rows, device=device))

    def set_categories(self, categories: Sequence[str]) -> None:
        """Make the layout of ``categories`` (:meth:`layout`) the default
        one (no learned value changes)."""
        layout = self.layout(categories)
        self.categories = list(layout.names)
        self.register_buffer('token_ids', layout.token_ids, persistent=False)
        self.register_buffer('name_lens', layout.name_lens, persistent=False)
        self.register_buffer('ctx_rows', layout.ctx_rows, persistent=False)

    def default_layout(self) -> PromptLayout:
        """PromptLayout: The layout of the current categories."""
        return PromptLayout(
            tuple(self.categories), self.token_ids, self.name_lens,
            self.ctx_rows)

    @property
    def eot(self) -> torch.Tensor:
        """torch.Tensor: ``(C, )`` end-of-text position of each prompt."""
        return self.token_ids.argmax(dim=-1)

    @property
    def shares_prefix(self) -> bool:
        """bool: Whether every prompt starts with the same start token and
        context (a unified context at the end)."""
        return not self.csc and self.class_token_position == 'end'

    def class_context(self,
                      layout: Optional[PromptLayout] = None) -> torch.Tensor:
        """torch.Tensor: ``(C, n_ctx, width)``, the context of each
        category (of ``layout``, default: the current categories)."""
        layout = layout or self.default_layout()
        if self.csc:
            return self.ctx[layout.ctx_rows]
        return self.ctx.unsqueeze(0).expand(len(layout.names), -1, -1)

    def forward(
        self,
        embed: Callable[[torch.Tensor], torch.Tensor],
        ctx: Optional[torch.Tensor] = None,
        layout: Optional[PromptLayout] = None
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Token embeddings of every prompt, context inserted.

        Args:
            embed (Callable): The frozen token embedding, ids -> vectors.
            ctx (torch.Tensor, optional): ``(C, n_ctx, width)`` context to
                insert instead of the learned one (CoCoOp's shifted
                context). Defaults to None.
            layout (PromptLayout, optional): The prompts' layout. Defaults
                to the current categories'.

        Returns:
            tuple: ``(embeds, eot)``: ``(C, L, width)`` with ``L`` the
            longest prompt, and ``(C, )`` pooling positions.
        """
        layout = layout or self.default_layout()
        ctx = self.class_context(layout) if ctx is None else ctx
        tokens = embed(layout.token_ids)
        n = self.n_ctx
        prefix, suffix = tokens[:, :1], tokens[:, 1 + n:]
        if self.class_token_position == 'end':
            return torch.cat([prefix, ctx, suffix], dim=1), layout.eot
        # Middle and front move the name tokens, the first name_len of the
        # suffix, into the context; the row length and eot stay.
        rows = []
        half = n // 2
        for i, name_len in enumerate(layout.name_lens.tolist()):
            name, rest = suffix[i, :name_len], suffix[i, name_len:]
            if self.class_token_position == 'middle':
                parts = [prefix[i], ctx[i, :half], name, ctx[i, half:], rest]
            else:
                parts = [prefix[i], name, ctx[i], rest]
            rows.append(torch.cat(parts, dim=0))
        return torch.stack(rows), layout.eot
