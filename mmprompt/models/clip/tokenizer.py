# Copyright (c) mmprompt contributors. All rights reserved.
"""Offline byte-level BPE tokenizer of OpenAI CLIP, giving the ids of
OpenAI's ``clip.tokenize``. The shipped merges file
``bpe_simple_vocab_16e6.txt.gz`` is MIT, Copyright (c) 2021 OpenAI (see
``VOCAB_LICENSE.txt``)."""
import gzip
import html
import logging
import os.path as osp
from functools import lru_cache
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.logging import print_log

from mmprompt.registry import TOKENIZER

DEFAULT_BPE_PATH = osp.join(
    osp.dirname(osp.abspath(__file__)), 'bpe_simple_vocab_16e6.txt.gz')

SOT_TEXT = '<|startoftext|>'
EOT_TEXT = '<|endoftext|>'
# OpenAI's vocabulary: 256 byte tokens, their 256 end-of-word twins, 48894
# merges and two special tokens = 49408 ids.
NUM_MERGES = 49152 - 256 - 2
WORD_END = '</w>'

# Contractions, letter runs, single digits, runs of other symbols. Unlike
# OpenAI's original, the special tokens are not recognised inside a text (as
# in open_clip): a user's literal '<|endoftext|>' must not move the pooling.
TOKEN_PATTERN = (r"'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]"
                 r'|[^\s\p{L}\p{N}]+')


@lru_cache()
def byte_to_unicode() -> Dict[int, str]:
    """A reversible map from the 256 byte values to printable characters:
    no byte maps to whitespace the BPE would split on."""
    printable = [
        *range(ord('!'), ord('~') + 1), *range(ord('\xa1'), ord('\xac') + 1),
        *range(ord('\xae'), ord('\xff') + 1)
    ]
    others = [b for b in range(256) if b not in printable]
    mapping = {b: chr(b) for b in printable}
    mapping.update((b, chr(256 + i)) for i, b in enumerate(others))
    return mapping


def _clean(text: str) -> str:
    """OpenAI's cleaning: ftfy, double HTML unescape, whitespace, lower."""
    import ftfy
    text = ftfy.fix_text(text)
    text = html.unescape(html.unescape(text)).strip()
    return ' '.join(text.split()).lower()


@lru_cache()
def _token_pattern() -> Any:
    """:data:`TOKEN_PATTERN`, compiled once (``regex``, for ``\\p{L}``)."""
    import regex
    return regex.compile(TOKEN_PATTERN, regex.IGNORECASE)


def pre_tokens(text: str) -> Tuple[str, ...]:
    """The pieces of ``text`` (cleaned, split by :data:`TOKEN_PATTERN`) the
    BPE encodes: texts with the same pieces get the same ids (``'cat'`` and
    ``'\uff43\uff41\uff54'``, ``'fish & chips'`` and ``'fish &amp; chips'``).
    """
    return tuple(_token_pattern().findall(_clean(text)))


@TOKENIZER.register_module()
class CLIPTokenizer:
    """OpenAI CLIP's byte-level BPE tokenizer, offline.

    Args:
        bpe_path (str, optional): The gzipped merges file. Defaults to the
            vocabulary shipped in the package.
        context_length (int): Row length of :meth:`tokenize`. Defaults to 77.

    Example:
        >>> tokenizer = CLIPTokenizer()
        >>> tokenizer.tokenize(['a photo of a cat.'])[0, :7]
        tensor([49406,   320,  1125,   539,   320,  2368,   269])
    """

    def __init__(self,
                 bpe_path: Optional[str] = None,
                 context_length: int = 77) -> None:
        self.bpe_path = bpe_path or DEFAULT_BPE_PATH
        self.context_length = context_length
        with gzip.open(self.bpe_path, 'rt', encoding='utf-8') as f:
            lines = f.read().split('\n')
        # The first line is a version header.
        merges = [tuple(line.split()) for line in lines[1:NUM_MERGES + 1]]

        self.byte_encoder = byte_to_unicode()
        self.byte_decoder = {v: k for k, v in self.byte_encoder.items()}
        symbols = list(self.byte_encoder.values())
        vocab = symbols + [s + WORD_END for s in symbols]
        vocab += [''.join(m) for m in merges]
        vocab += [SOT_TEXT, EOT_TEXT]
        self.encoder = {token: i for i, token in enumerate(vocab)}
        self.decoder = {i: token for token, i in self.encoder.items()}
        self.bpe_ranks = {m: i for i, m in enumerate(merges)}
        self.cache = {}
        self.sot_token_id = self.encoder[SOT_TEXT]
        self.eot_token_id = self.encoder[EOT_TEXT]

    @property
    def vocab_size(self) -> int:
        """int: Number of ids (49408 for OpenAI's vocabulary)."""
        return len(self.encoder)

    def _bpe(self, token: str) -> str:
        """Merge the characters of one pre-token, lowest rank first."""
        cached = self.cache.get(token)
        if cached is not None:
            return cached
        word = tuple(token[:-1]) + (token[-1] + WORD_END, )
        while len(word) > 1:
            best = min(
                zip(word[:-1], word[1:]),
                key=lambda p: self.bpe_ranks.get(p, float('inf')))
            if best not in self.bpe_ranks:
                break
            first, second = best
            merged = []
            i = 0
            while i < len(word):
                if (i < len(word) - 1 and word[i] == first
                        and word[i + 1] == second):
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = tuple(merged)
        result = ' '.join(word)
        self.cache[token] = result
        return result

    def encode(self, text: str) -> List[int]:
        """BPE ids of ``text``, without the start and end tokens."""
        ids = []
        for piece in pre_tokens(text):
            piece = ''.join(self.byte_encoder[b] for b in piece.encode())
            ids.extend(self.encoder[t] for t in self._bpe(piece).split(' '))
        return ids

    def decode(self, ids: Union[Sequence[int], torch.Tensor]) -> str:
        """The (cleaned) text of ``ids``; ids from the end token on are
        ignored."""
        ids = [int(i) for i in ids]
        if self.eot_token_id in ids:
            ids = ids[:ids.index(self.eot_token_id)]
        text = ''.join(self.decoder[i] for i in ids if i != self.sot_token_id)
        data = bytearray(self.byte_decoder[c] for c in text)
        return data.decode('utf-8', errors='replace').replace(
            WORD_END, ' ').strip()

    def tokenize(self,
                 texts: Union[str, Sequence[str]],
                 context_length: Optional[int] = None,
                 truncate: bool = False) -> torch.LongTensor:
        """Rows ``[sot] + encode(text) + [eot]``, zero-padded.

        Args:
            texts (str | Sequence[str]): One text or several.
            context_length (int, optional): Defaults to the tokenizer's.
            truncate (bool): Cut an over-long text, keeping ``eot`` (with a
                warning), instead of raising ``ValueError``. Defaults to False.

        Returns:
            torch.LongTensor: ``(N, context_length)``.
        """
        if isinstance(texts, str):
            texts = [texts]
        length = context_length or self.context_length
        result = torch.zeros(len(texts), length, dtype=torch.long)
        truncated = []
        for row, text in enumerate(texts):
            ids = [self.sot_token_id, *self.encode(text), self.eot_token_id]
            if len(ids) > length:
                if not truncate:
                    raise ValueError(
                        f'Text {row} is {len(ids)} tokens long, over the '
                        f'context length {length} (pass truncate=True to '
                        f'cut it): {_shorten(text)!r}')
                truncated.append(text)
                ids = ids[:length - 1] + [self.eot_token_id]
            result[row, :len(ids)] = torch.tensor(ids)
        if truncated:
            print_log(f'{len(truncated)} text(s) over {length} tokens were '
                      f'truncated, e.g. {_shorten(truncated[0])!r}',
                      logger='current', level=logging.WARNING)
        return result

    __call__ = tokenize

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(bpe_path={self.bpe_path!r}, '
                f'context_length={self.context_length})')


def _shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit - 3] + '...'
