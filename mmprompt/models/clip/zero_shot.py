# Copyright (c) mmprompt contributors. All rights reserved.
"""Pure builders of zero-shot classifiers: text prototypes, example caches.

Nothing here holds model state: the builders take the two callables they
need (a tokenizer and a text encoder, or image features) and return tensors.

**Text prototypes.** Every prompt of every category (templates filled with
the category name, and the category's descriptions) is tokenized once, the
prompts are sorted by token length and encoded in large batches, each batch
cut to its longest prompt. Cutting is exact: CLIP's text transformer is
causal and pools the end-of-text token, so padding after it never changes
the result. Given the text tower itself, prompts that start alike (a
template's words before ``{}``) also run that start once per batch
(:func:`encode_token_ids`), exact for the same reason. The features are
L2-normalised and averaged per category, as in OpenAI's prompt ensembling
(``Prompt_Engineering_for_ImageNet.ipynb``).

**Descriptions** form a second ensemble per category. The prototype of a
category with descriptions is

.. math::

    p = \\mathrm{norm}\\big((1 - w)\\,\\mathrm{norm}(\\bar t) +
        w\\,\\mathrm{norm}(\\bar d)\\big)

where :math:`\\bar t` and :math:`\\bar d` are the means of its normalised
template and description features and :math:`w` is ``description_weight``
(``1`` uses the descriptions instead of the templates; then the templates
of that category are not even encoded).

**Many processes.** Under ``torch.distributed``,
:func:`build_text_prototypes_sharded` gives every rank a contiguous share of
the categories, builds it with :func:`build_text_prototypes` and gathers the
shares. (The on-disk cache of prototypes is
:class:`mmprompt.models.clip.prototype_cache.PrototypeCache`, used by the
model's callers.)

**Example images** follow Tip-Adapter's training-free cache
(`Zhang et al., 2022 <https://arxiv.org/abs/2207.09519>`_): the normalised
features of the examples are the keys, their labels the values, and

.. math::

    \\mathrm{logits} = s\\, f P^\\top + \\alpha \\exp\\big(-\\beta (1 -
        f K^\\top)\\big) L

with :math:`f` the normalised image features, :math:`P` the text
prototypes, :math:`s` CLIP's logit scale, :math:`K` the keys and :math:`L`
their one-hot labels. ``alpha`` weighs the cache against the text,
``beta`` sharpens it. Categories without examples get no cache term.
"""
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
# A prefix is encoded once for at least this many rows (fewer would split
# ImageNet's 80 templates x 1,000 names into thousands of small groups).
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
        descriptions (dict, optional): Label -> descriptions.
            Defaults to None.
        description_weight (float): See the module docstring; with ``1``
            the templates of described categories are skipped.
            Defaults to 0.5.

    Returns:
        tuple: ``(texts, labels, is_description)``, three lists of the same
        length.
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


def tokenize_prompts(tokenizer: Callable[...,
                                         torch.Tensor], texts: Sequence[str],
                     is_description: Sequence[bool]) -> torch.Tensor:
    """Tokenize prompts; over-long descriptions are truncated, with a warning.

    Filled templates must fit the context (the tokenizer's ``ValueError``
    names the text otherwise); a description over the context is cut to it,
    keeping its end-of-text token, and a warning names it.

    Args:
        tokenizer (Callable): ``tokenizer(texts, truncate=...)`` returning
            ``(N, L)`` ids, e.g. :meth:`CLIPTokenizer.tokenize`.
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
        print_log(
            f'{len(cut)} description(s) fill or exceed the '
            f'{desc.shape[1]}-token context and were truncated to it, '
            f'e.g. {cut[0][:80]!r}',
            logger='current',
            level=logging.WARNING)
    ids = torch.zeros(len(texts), desc.shape[1], dtype=desc.dtype)
    ids[desc_rows] = desc
    if plain is not None:
        ids[plain_rows] = plain
    return ids


def shared_prefix_lengths(ids: torch.Tensor,
                          min_rows: int = MIN_SHARED_ROWS) -> torch.Tensor:
    """How many leading tokens of each row to encode once for its group.

    Row ``i`` gets the longest ``p`` such that at least ``min_rows`` rows
    (itself included) start with its first ``p`` tokens, at most its
    end-of-text position (the pooled token stays in the rest of the row).
    For filled templates that is the template's words before ``{}``, shared
    by every category. Rows that share nothing with ``min_rows - 1`` others
    get 0.

    Args:
        ids (torch.Tensor): ``(N, L)`` zero-padded ids.
        min_rows (int): Fewest rows a shared prefix serves.
            Defaults to ``MIN_SHARED_ROWS``.

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
    """Batches of rows with one prefix length and one rest length.

    Nothing is padded: a batch cut to its longest rest would mostly pad the
    short rests, since each prefix length holds few rows of long names.

    Args:
        ids (torch.Tensor): ``(N, L)`` zero-padded ids.
        prefix_lengths (torch.Tensor): ``(N, )``, from
            :func:`shared_prefix_lengths`.
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
    encoded together once (not once per batch): a pass over the tower
    costs about as much for a few tokens as for dozens, so the prefix
    passes of many small batches dominated a small vocabulary's build.

    At most ``max_heads`` prefixes are held at a time (their keys and
    values, every block's): with ``batch_size`` of them, about the memory
    of one batch's activations.
    """

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
    """Whether a text encoder is causal, so that rows may be cut after their
    end-of-text token and share prefixes: the ``causal`` attribute of the
    tower, of the model a bound method belongs to (``extract_text_feat``)
    or of that model's ``text_encoder``; True (CLIP) when none says."""
    owner = getattr(encode, '__self__', encode)
    for obj in (owner, getattr(owner, 'text_encoder', None)):
        causal = getattr(obj, 'causal', None)
        if isinstance(causal, bool):
            return causal
    return True


def _shares_prefixes(encode: Any) -> bool:
    return all(
        hasattr(encode, name)
        for name in ('token_embedding', 'encode_prefix', 'forward_embeddings'))


def encode_token_ids(encode: TextEncoder,
                     ids: torch.Tensor,
                     batch_size: int = 1024,
                     device: Optional[torch.device] = None,
                     progress: bool = False,
                     normalize: bool = True) -> torch.Tensor:
    """Encode token rows in length-sorted batches, each cut to its longest row.

    Given CLIP's text tower itself (anything with ``token_embedding``,
    ``encode_prefix`` and ``forward_embeddings``, e.g.
    :class:`~mmprompt.models.clip.text_encoder.CLIPTextTransformer`), rows
    that start alike also share their start (:func:`shared_prefix_lengths`):
    the hidden states of a prefix are computed once per batch and the rest
    of each row attends to them. Under the causal mask that is exact, like
    the cut. Batches then hold rows of one prefix length and one rest
    length (:func:`plan_prefix_batches`). A bidirectional tower (SigLIP's,
    see :func:`is_causal`) gets its rows whole: neither is exact there.
    Identical rows (a category name listed twice, as ImageNet's 'crane',
    templates that tokenize alike) are encoded once.

    Args:
        encode (Callable): Maps ``(B, L')`` ids to ``(B, D)`` features and
            accepts any ``L'`` up to the context length (CLIP's
            ``extract_text_feat``), or CLIP's text tower (see above).
        ids (torch.Tensor): ``(N, L)`` zero-padded ids.
        batch_size (int): Rows per forward pass. Defaults to 1024.
        device (torch.device, optional): Where to run. Defaults to the
            device of ``ids``.
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
    elif _shares_prefixes(encode):
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
    """Average normalised prompt features into one prototype per category.

    Args:
        feats (torch.Tensor): ``(N, D)`` normalised prompt features.
        labels (Sequence[int]): Label of each prompt.
        is_description (Sequence[bool]): Which prompts are descriptions.
        num_classes (int): Number of categories.
        description_weight (float): Weight ``w`` of the description
            ensemble, see the module docstring. Defaults to 0.5.

    Returns:
        torch.Tensor: ``(C, D)`` L2-normalised prototypes.
    """
    labels = torch.as_tensor(labels, dtype=torch.long, device=feats.device)
    is_desc = torch.as_tensor(
        is_description, dtype=torch.bool, device=feats.device)
    dim = feats.shape[1]
    t_sum = feats.new_zeros(num_classes,
                            dim).index_add_(0, labels[~is_desc],
                                            feats[~is_desc])
    d_sum = feats.new_zeros(num_classes,
                            dim).index_add_(0, labels[is_desc], feats[is_desc])
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
        descriptions (dict, optional): Label -> descriptions, see
            :func:`mmprompt.models.clip.prompts.resolve_descriptions`.
            Defaults to None.
        description_weight (float): Weight of the descriptions in ``[0,
            1]``. Defaults to 0.5.
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
    """:func:`build_text_prototypes`, the categories split across ranks.

    Rank ``r`` of ``W`` builds the prototypes of its contiguous share of the
    categories (:func:`mmprompt.utils.dist.shard_bounds`); an all-gather
    joins them in label order. A prototype depends on its own category's
    prompts only, so the result is the single-process one up to the
    rounding of other batch shapes. Every rank must call it. Without a
    process group, or with fewer categories than ranks, every rank builds
    all of them.

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
    bounds = [
        shard_bounds(len(categories), r, world_size)
        for r in range(world_size)
    ]
    start, stop = bounds[rank]
    share = {
        label - start: texts
        for label, texts in (descriptions or {}).items()
        if start <= label < stop
    }
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
        torch.Tensor: ``(N, C)``: per category, the sum over its examples
        of ``exp(-beta * (1 - cos))``.
    """
    affinity = torch.exp(-beta * (1 - image_feats @ keys.t()))
    values = F.one_hot(key_labels.long(), num_classes).to(affinity.dtype)
    return affinity @ values
