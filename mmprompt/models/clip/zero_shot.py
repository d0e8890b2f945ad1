# Copyright (c) mmprompt contributors. All rights reserved.
"""Pure builders of zero-shot classifiers: text prototypes (OpenAI's prompt
ensembling) and Tip-Adapter's example cache. They take callables and return
tensors; nothing here holds model state."""
import logging
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.dist import get_dist_info
from mmengine.logging import print_log

from mmprompt.utils.dist import all_gather_rows, shard_bounds
from mmprompt.utils.progress import Progress
from .text_encoder import eot_positions

TextEncoder = Callable[[torch.Tensor], torch.Tensor]
# Fewest rows a shared prefix serves (fewer would split ImageNet's 80
# templates x 1,000 names into thousands of small groups).
MIN_SHARED_ROWS = 8


def collect_prompts(
    categories: Sequence[str],
    templates: Sequence[str],
    descriptions: Optional[Dict[int, Sequence[str]]] = None,
    description_weight: float = 0.5,
) -> Tuple[List[str], List[int], List[bool]]:
    """List every prompt to encode, with its label and kind.

    Args:
        categories (Sequence[str]): Category names in label order.
        templates (Sequence[str]): Format strings with one ``{}``.
        descriptions (dict, optional): Label -> texts. Defaults to None.
        description_weight (float): With ``1`` the templates of described
            categories are skipped. Defaults to 0.5.

    Returns:
        tuple: Lists ``(texts, labels, is_description)``.
    """
    descriptions = descriptions or {}
    texts, labels, is_desc = [], [], []
    for label, name in enumerate(categories):
        if label not in descriptions or description_weight < 1:
            texts.extend(t.format(name) for t in templates)
            labels.extend([label] * len(templates))
            is_desc.extend([False] * len(templates))
        for text in descriptions.get(label, ()):
            texts.append(text)
            labels.append(label)
            is_desc.append(True)
    return texts, labels, is_desc


def tokenize_prompts(tokenizer: Callable[..., torch.Tensor],
                     texts: Sequence[str],
                     is_description: Sequence[bool]) -> torch.Tensor:
    """Tokenize prompts; over-long descriptions are truncated, with a warning
    (filled templates must fit).

    Args:
        tokenizer (Callable): ``tokenizer(texts, truncate=...)`` -> ids.
        texts (Sequence[str]): The prompts.
        is_description (Sequence[bool]): Which prompts are descriptions.

    Returns:
        torch.Tensor: ``(N, L)`` token ids.
    """
    desc_rows = [i for i, d in enumerate(is_description) if d]
    plain_rows = [i for i, d in enumerate(is_description) if not d]
    if not desc_rows:
        return tokenizer(list(texts))
    plain = tokenizer([texts[i] for i in plain_rows]) if plain_rows else None
    desc_texts = [texts[i] for i in desc_rows]
    desc = tokenizer(desc_texts, truncate=True)
    # A row that ends in padding was not cut (CLIP pads with 0, SigLIP with
    # its model's pad id, see CLIP.pad_id).
    pad_id = getattr(getattr(tokenizer, '__self__', None), 'pad_id', 0)
    cut = [t for t, row in zip(desc_texts, desc) if row[-1] != pad_id]
    if cut:
        print_log(f'{len(cut)} description(s) fill or exceed the '
                  f'{desc.shape[1]}-token context and were truncated to it, '
                  f'e.g. {cut[0][:80]!r}', logger='current',
                  level=logging.WARNING)
    ids = torch.zeros(len(texts), desc.shape[1], dtype=desc.dtype)
    ids[desc_rows] = desc
    if plain is not None:
        ids[plain_rows] = plain
    return ids


def shared_prefix_lengths(ids: torch.Tensor,
                          min_rows: int = MIN_SHARED_ROWS) -> torch.Tensor:
    """How many leading tokens of each row to encode once for its group:
    the longest ``p`` that at least ``min_rows`` rows start with, at most
    the row's end-of-text position (the pooled token stays in the rest).

    Args:
        ids (torch.Tensor): ``(N, L)`` zero-padded ids.
        min_rows (int): Fewest rows a shared prefix serves. Defaults to 8.

    Returns:
        torch.Tensor: ``(N, )`` int64 prefix lengths.
    """
    eot = eot_positions(ids).cpu()
    if len(ids) < min_rows:
        return torch.zeros_like(eot)
    rows = ids[:, :int(eot.max()) + 1].cpu()
    # Rows sorted lexicographically: those that share a prefix are a run.
    order = torch.from_numpy(np.lexsort(rows.numpy().T[::-1]))
    ranked = rows[order]
    common = (ranked[1:] == ranked[:-1]).long().cumprod(dim=1).sum(dim=1)
    share = torch.zeros_like(eot)
    for k in range(1, rows.size(1) + 1):
        run = torch.cat([common.new_zeros(1), (common < k).long()]).cumsum(0)
        ok = torch.bincount(run)[run] >= min_rows
        if not ok.any():
            break
        share[ok] = k
    lengths = torch.empty_like(share)
    lengths[order] = share
    return torch.minimum(lengths, eot)


def plan_prefix_batches(ids: torch.Tensor, prefix_lengths: torch.Tensor,
                        batch_size: int) -> List[torch.Tensor]:
    """Batches of rows with one prefix length and one rest length (unpadded:
    each prefix length holds few rows of long names).

    Args:
        ids (torch.Tensor): ``(N, L)`` zero-padded ids.
        prefix_lengths (torch.Tensor): ``(N, )``.
        batch_size (int): Most rows per batch.

    Returns:
        list[torch.Tensor]: Row indices of each batch.
    """
    rest = eot_positions(ids).cpu() + 1 - prefix_lengths
    key = prefix_lengths * (ids.size(1) + 1) + rest
    order = torch.argsort(key, stable=True)
    counts = torch.unique_consecutive(key[order], return_counts=True)[1]
    return [
        batch for rows in order.split(counts.tolist())
        for batch in rows.split(batch_size)
    ]


class _PrefixRuns:
    """The distinct prefixes of consecutive batches of one prefix length,
    encoded together once: a tower pass costs about as much for a few tokens
    as for dozens. At most ``max_heads`` prefixes (keys and values of every
    block) are held at a time."""

    def __init__(self, tower: Any, ids: torch.Tensor,
                 prefix_lengths: torch.Tensor, batches: List[torch.Tensor],
                 device: torch.device, max_heads: int) -> None:
        self.tower = tower
        self.ids = ids
        self.prefix_lengths = prefix_lengths
        self.batches = batches
        self.device = device
        self.max_heads = max_heads
        self.heads: Dict[Tuple[int, ...], int] = {}
        self.cache = None
        self.next = 0  # first batch not yet covered by the cache

    def _fill(self, start: int) -> None:
        """Encode the prefixes of batches ``start`` on, while they share
        one prefix length and fit ``max_heads``."""
        p = int(self.prefix_lengths[self.batches[start][0]])
        heads: Dict[Tuple[int, ...], int] = {}
        stop = start
        while stop < len(self.batches):
            rows = self.batches[stop]
            if int(self.prefix_lengths[rows[0]]) != p:
                break
            new = {tuple(h) for h in self.ids[rows, :p].tolist()} - set(heads)
            if heads and len(heads) + len(new) > self.max_heads:
                break
            for head in sorted(new):
                heads[head] = len(heads)
            stop += 1
        embed = self.tower.token_embedding
        tokens = torch.tensor(list(heads), dtype=self.ids.dtype,
                              device=self.device)
        self.cache = self.tower.encode_prefix(embed(tokens))
        self.heads, self.next = heads, stop

    def encode(self, index: int) -> torch.Tensor:
        """Raw features of batch ``index`` (batches run in order)."""
        rows = self.batches[index]
        p = int(self.prefix_lengths[rows[0]])
        eot = eot_positions(self.ids[rows])
        batch = self.ids[rows, :int(eot.max()) + 1].to(self.device)
        eot = eot.to(self.device)
        embed = self.tower.token_embedding
        if p == 0:
            return self.tower.forward_embeddings(embed(batch), eot)
        if index >= self.next:
            self._fill(index)
        group = torch.tensor(
            [self.heads[tuple(h)] for h in self.ids[rows, :p].tolist()],
            device=self.device)
        cache = self.cache._replace(rows=group)
        return self.tower.forward_embeddings(embed(batch[:, p:]), eot - p,
                                             cache)


def is_causal(encode: Any) -> bool:
    """The ``causal`` attribute of a text encoder, of the model a bound
    method belongs to, or of its ``text_encoder``; True when none says."""
    owner = getattr(encode, '__self__', encode)
    for obj in (owner, getattr(owner, 'text_encoder', None)):
        causal = getattr(obj, 'causal', None)
        if isinstance(causal, bool):
            return causal
    return True


def encode_token_ids(encode: TextEncoder,
                     ids: torch.Tensor,
                     batch_size: int = 1024,
                     device: Optional[torch.device] = None,
                     progress: bool = False,
                     normalize: bool = True) -> torch.Tensor:
    """Encode token rows in length-sorted batches, each cut to its longest row.

    Cutting is exact for a causal tower pooled at the end-of-text token, and
    so is sharing: given the tower itself (``token_embedding``,
    ``encode_prefix``, ``forward_embeddings``), rows that start alike run
    their start once (:func:`shared_prefix_lengths`). A bidirectional tower
    (:func:`is_causal`) gets whole rows. Identical rows are encoded once.

    Args:
        encode (Callable): ``(B, L')`` ids to ``(B, D)`` features for any
            ``L'`` up to the context length, or CLIP's text tower.
        ids (torch.Tensor): ``(N, L)`` zero-padded ids.
        batch_size (int): Rows per forward pass. Defaults to 1024.
        device (torch.device, optional): Defaults to ``ids.device``.
        progress (bool): Show a progress bar. Defaults to False.
        normalize (bool): L2-normalise the features. Defaults to True.

    Returns:
        torch.Tensor: ``(N, D)`` features, in the order of ``ids``.
    """
    device = device or ids.device
    ids, inverse = torch.unique(ids, dim=0, return_inverse=True)
    if not is_causal(encode):
        batches = torch.arange(len(ids)).split(batch_size)

        def run(i):
            return encode(ids[batches[i]].to(device))
    elif all(hasattr(encode, name) for name in
             ('token_embedding', 'encode_prefix', 'forward_embeddings')):
        prefix_lengths = shared_prefix_lengths(ids)
        batches = plan_prefix_batches(ids, prefix_lengths, batch_size)
        runs = _PrefixRuns(encode, ids, prefix_lengths, batches, device,
                           batch_size)
        run = runs.encode
    else:
        lengths = (ids != 0).sum(dim=1)
        order = torch.argsort(lengths, stable=True)
        batches = order.split(batch_size)

        def run(i):
            rows = batches[i]
            return encode(ids[rows, :int(lengths[rows].max())].to(device))

    chunks = []
    with torch.inference_mode(), Progress(
            len(ids), enabled=progress, unit='prompts') as bar:
        for i, rows in enumerate(batches):
            feats = run(i).float()
            chunks.append(F.normalize(feats, dim=-1) if normalize else feats)
            bar.update(len(rows))
    feats = torch.cat(chunks)
    # Outside inference mode: the result is a normal tensor, usable in
    # autograd (a prototype in a trained adapter's loss).
    out = torch.empty(feats.shape, dtype=feats.dtype, device=feats.device)
    out[torch.cat(batches).to(feats.device)] = feats
    return out[inverse.to(feats.device)]


def average_prompts(feats: torch.Tensor,
                    labels: Sequence[int],
                    is_description: Sequence[bool],
                    num_classes: int,
                    description_weight: float = 0.5) -> torch.Tensor:
    """Average normalised prompt features into one prototype per category:
    ``norm((1 - w) norm(mean t) + w norm(mean d))`` over its template and
    description features ``t``, ``d`` (``norm(mean t)`` without
    descriptions).

    Args:
        feats (torch.Tensor): ``(N, D)`` normalised prompt features.
        labels (Sequence[int]): Label of each prompt.
        is_description (Sequence[bool]): Which prompts are descriptions.
        num_classes (int): Number of categories.
        description_weight (float): Weight ``w`` of the description
            ensemble. Defaults to 0.5.

    Returns:
        torch.Tensor: ``(C, D)`` L2-normalised prototypes.
    """
    labels = torch.as_tensor(labels, dtype=torch.long, device=feats.device)
    is_desc = torch.as_tensor(
        is_description, dtype=torch.bool, device=feats.device)
    dim = feats.shape[1]
    t_sum = feats.new_zeros(num_classes, dim).index_add_(
        0, labels[~is_desc], feats[~is_desc])
    d_sum = feats.new_zeros(num_classes, dim).index_add_(
        0, labels[is_desc], feats[is_desc])
    has_t = t_sum.abs().sum(dim=1) > 0
    has_d = d_sum.abs().sum(dim=1) > 0
    t_mean = F.normalize(t_sum, dim=-1)
    d_mean = F.normalize(d_sum, dim=-1)
    w = float(description_weight)
    mixed = torch.where(has_t[:, None], (1 - w) * t_mean, 0) + w * d_mean
    proto = torch.where(has_d[:, None], mixed, t_mean)
    return F.normalize(proto, dim=-1)


def build_text_prototypes(
    encode: TextEncoder,
    tokenizer: Callable[..., torch.Tensor],
    categories: Sequence[str],
    templates: Sequence[str],
    descriptions: Optional[Dict[int, Sequence[str]]] = None,
    description_weight: float = 0.5,
    batch_size: int = 1024,
    device: Optional[torch.device] = None,
    progress: bool = False,
) -> torch.Tensor:
    """Build the text prototypes of a zero-shot classifier in one pass.

    Args:
        encode (Callable): Text encoder, ``(B, L) ids -> (B, D)``.
        tokenizer (Callable): ``tokenizer(texts, truncate=...)``.
        categories (Sequence[str]): Category names in label order.
        templates (Sequence[str]): Format strings with one ``{}``.
        descriptions (dict, optional): Label -> texts. Defaults to None.
        description_weight (float): Weight of the descriptions in
            ``[0, 1]``. Defaults to 0.5.
        batch_size (int): Prompts per forward pass. Defaults to 1024.
        device (torch.device, optional): Where to encode. Defaults to CPU.
        progress (bool): Show a progress bar. Defaults to False.

    Returns:
        torch.Tensor: ``(C, D)`` L2-normalised prototypes.
    """
    if not 0 <= description_weight <= 1:
        raise ValueError('description_weight must be in [0, 1], got '
                         f'{description_weight}')
    texts, labels, is_desc = collect_prompts(categories, templates,
                                             descriptions, description_weight)
    ids = tokenize_prompts(tokenizer, texts, is_desc)
    feats = encode_token_ids(
        encode, ids, batch_size=batch_size, device=device, progress=progress)
    return average_prompts(feats, labels, is_desc, len(categories),
                           description_weight)


def build_text_prototypes_sharded(
    encode: TextEncoder,
    tokenizer: Callable[..., torch.Tensor],
    categories: Sequence[str],
    templates: Sequence[str],
    descriptions: Optional[Dict[int, Sequence[str]]] = None,
    description_weight: float = 0.5,
    **kwargs: Any,
) -> torch.Tensor:
    """:func:`build_text_prototypes`, the categories split across ranks and
    all-gathered (the single-process result up to rounding). Every rank must
    call it.

    Args:
        encode, tokenizer, categories, templates, descriptions,
            description_weight: As for :func:`build_text_prototypes`.
        **kwargs: ``batch_size``, ``device``, ``progress``.

    Returns:
        torch.Tensor: ``(C, D)`` L2-normalised prototypes, on every rank.
    """
    rank, world_size = get_dist_info()
    if world_size == 1 or len(categories) < world_size:
        return build_text_prototypes(encode, tokenizer, categories,
                                     templates, descriptions,
                                     description_weight, **kwargs)
    bounds = [shard_bounds(len(categories), r, world_size)
              for r in range(world_size)]
    start, stop = bounds[rank]
    share = {label - start: texts
             for label, texts in (descriptions or {}).items()
             if start <= label < stop}
    if rank != 0:
        kwargs['progress'] = False
    local = build_text_prototypes(encode, tokenizer,
                                  list(categories[start:stop]), templates,
                                  share, description_weight, **kwargs)
    return all_gather_rows(local, [b - a for a, b in bounds])


def cache_logits(image_feats: torch.Tensor, keys: torch.Tensor,
                 key_labels: torch.Tensor, num_classes: int,
                 beta: float) -> torch.Tensor:
    """Tip-Adapter's training-free cache term, before the ``alpha`` weight.

    Args:
        image_feats (torch.Tensor): ``(N, D)`` normalised image features.
        keys (torch.Tensor): ``(M, D)`` normalised example features.
        key_labels (torch.Tensor): ``(M, )`` labels of the examples.
        num_classes (int): Number of categories.
        beta (float): Sharpness of the affinity.

    Returns:
        torch.Tensor: ``(N, C)`` sums of ``exp(-beta * (1 - cos))``.
    """
    affinity = torch.exp(-beta * (1 - image_feats @ keys.t()))
    values = F.one_hot(key_labels.long(), num_classes).to(affinity.dtype)
    return affinity @ values
