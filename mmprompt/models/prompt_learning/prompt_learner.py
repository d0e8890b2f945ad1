# Copyright (c) mmprompt contributors. All rights reserved.
"""The learnable context of CoOp and CoCoOp (semantics of KaiyangZhou/CoOp's
``PromptLearner``, MIT licence). Only the context is saved: the token ids are
rebuilt from the names, so a unified context takes names it never saw.
"""
from typing import Callable, List, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from torch.nn.utils.rnn import pad_sequence

from mmprompt.utils.errors import InvalidInputError
from ..clip.prompts import check_categories, check_prompt_names

POSITIONS = ('end', 'middle', 'front')


class PromptLayout(NamedTuple):
    """The token layout of the prompts of one category set.

    Attributes:
        names (tuple[str]): The category names, in label order.
        token_ids (torch.Tensor): ``(C, L)`` ids, context placeholders.
        name_lens (torch.Tensor): ``(C, )`` tokens of each name.
        ctx_rows (torch.Tensor): ``(C, )`` context row of each category.
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
        token_embedding (nn.Embedding): The text tower's frozen token
            embedding, read to start the context from ``ctx_init`` (call
            :meth:`init_context` again once weights are loaded).
        tokenizer: CLIP's tokenizer (``encode``, ``sot_token_id``,
            ``eot_token_id``).
        categories (Sequence[str]): Category names in label order.
        n_ctx (int): Number of context vectors; with ``ctx_init``, the most
            BPE tokens it may have, one vector per token (CoOp counts words
            and keeps extra tokens fixed: ``'itap of a'`` is 4 tokens, 3
            words). Defaults to 16.
        ctx_init (str, optional): Words the context starts from, e.g.
            ``'a photo of a'``. Defaults to None: N(0, 0.02).
        csc (bool): A context per category. Defaults to False.
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
            self.prefix_text = self.ctx_init
        elif n_ctx < 1 or n_ctx + 2 > context_length:
            raise InvalidInputError(
                f'n_ctx must be in [1, {context_length - 2}], got {n_ctx}')
        else:
            self.prefix_text = ' '.join(['X'] * n_ctx)
        shape = (len(categories), n_ctx, width) if self.csc else (n_ctx, width)
        vectors = torch.empty(shape, dtype=token_embedding.weight.dtype)
        if not self.ctx_init:
            vectors.normal_(std=0.02)
        self.n_ctx = n_ctx
        self.ctx = nn.Parameter(vectors.to(token_embedding.weight.device))
        self.init_context(token_embedding)
        self.trained_categories: List[str] = list(categories)
        self.set_categories(categories)

    def init_context(self, token_embedding: nn.Embedding) -> None:
        """Start the context from ``ctx_init``'s token embeddings (a
        random context is left as is).

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

    def layout(self, categories: Sequence[str]) -> PromptLayout:
        """The :class:`PromptLayout` of the prompts of ``categories`` (a
        class-specific context takes only its trained names).

        Args:
            categories (Sequence[str]): Category names in label order.
        """
        categories = list(categories)
        if not categories:
            raise InvalidInputError('no categories given')
        categories = list(check_categories(categories))
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
            text = f'{self.prefix_text} {name}.'
            ids = [tok.sot_token_id, *tok.encode(text), tok.eot_token_id]
            if len(ids) > self.context_length:
                too_long.append(name)
            id_rows.append(ids)
            name_lens.append(len(tok.encode(name)))
        if too_long:
            raise InvalidInputError(
                f'{len(too_long)} prompt(s) exceed the {self.context_length}'
                f'-token context with n_ctx={self.n_ctx}: {too_long[:5]}')
        ids = pad_sequence([torch.tensor(r) for r in id_rows],
                           batch_first=True)
        device = self.ctx.device
        return PromptLayout(
            tuple(categories), ids.to(device),
            torch.tensor(name_lens, device=device),
            torch.tensor(rows, device=device))

    def set_categories(self, categories: Sequence[str]) -> None:
        """Make the layout of ``categories`` the default one."""
        layout = self.layout(categories)
        self.categories = list(layout.names)
        self.register_buffer('token_ids', layout.token_ids, persistent=False)
        self.register_buffer('name_lens', layout.name_lens, persistent=False)
        self.register_buffer('ctx_rows', layout.ctx_rows, persistent=False)

    def default_layout(self) -> PromptLayout:
        """PromptLayout: The layout of the current categories."""
        return PromptLayout(tuple(self.categories), self.token_ids,
                            self.name_lens, self.ctx_rows)

    @property
    def shares_prefix(self) -> bool:
        """bool: Whether every prompt starts alike (a unified context at
        the end)."""
        return not self.csc and self.class_token_position == 'end'

    def class_context(self,
                      layout: Optional[PromptLayout] = None) -> torch.Tensor:
        """``(C, n_ctx, width)``, each category's context (of ``layout``,
        default: the current one)."""
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
        """Token embeddings ``(C, L, width)`` of every prompt, context
        inserted, and their end-of-text positions ``(C, )``.

        Args:
            embed (Callable): The frozen token embedding, ids -> vectors.
            ctx (torch.Tensor, optional): ``(C, n_ctx, width)`` context
                instead of the learned one. Defaults to None.
            layout (PromptLayout, optional): Defaults to the current one.
        """
        layout = layout or self.default_layout()
        ctx = self.class_context(layout) if ctx is None else ctx
        tokens = embed(layout.token_ids)
        n = self.n_ctx
        prefix, suffix = tokens[:, :1], tokens[:, 1 + n:]
        if self.class_token_position == 'end':
            return torch.cat([prefix, ctx, suffix], dim=1), layout.eot
        # The name (the suffix's first name_len tokens) moves into the
        # context; the row length and eot stay.
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
