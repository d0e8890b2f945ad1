# Copyright (c) mmprompt contributors. All rights reserved.
"""SigLIP's tokenizers: a model's own ``tokenizer.json`` and big_vision's
text canonicalisation; both, and rows padded to the full context, are as in
training (public reports lose 10+ ImageNet points without them)."""
import logging
import os.path as osp
import string
from typing import Any, Optional, Sequence, Union

import torch
from mmengine.logging import print_log

from mmprompt.models.clip.tokenizer import _clean, _shorten
from mmprompt.registry import TOKENIZER

_NO_PUNCTUATION = str.maketrans('', '', string.punctuation)


def canonicalize(text: str) -> str:
    """big_vision's ``canonicalize_text`` after OpenAI's cleaning.

    Args:
        text (str): Any text.

    Returns:
        str: Lower case, no ASCII punctuation, ``_`` and runs of spaces
        as one space, stripped.
    """
    text = _clean(text).replace('_', ' ').translate(_NO_PUNCTUATION)
    return ' '.join(text.lower().split())


@TOKENIZER.register_module()
class SigLIPTokenizer:
    """A SigLIP / SigLIP 2 tokenizer from the model's ``tokenizer.json``
    (read and checked on first use): :func:`canonicalize`, encode, pad.

    Args:
        tokenizer_file (str): The model's ``tokenizer.json``.
        context_length (int): Length of every row. Defaults to 64.
        pad_token (str): ``'</s>'`` (SigLIP) or ``'<pad>'`` (SigLIP 2).
            Defaults to ``'</s>'``.
        vocab_size (int, optional): Expected vocabulary size. Defaults to
            None (not checked).
        padding_side (str): ``'right'`` or ``'left'``. Defaults to right.
    """

    def __init__(self,
                 tokenizer_file: str,
                 context_length: int = 64,
                 pad_token: str = '</s>',
                 vocab_size: Optional[int] = None,
                 padding_side: str = 'right') -> None:
        if padding_side not in ('right', 'left'):
            raise ValueError("padding_side must be 'right' or 'left', got "
                             f'{padding_side!r}')
        self.tokenizer_file = tokenizer_file
        self.context_length = context_length
        self.pad_token = pad_token
        self.expected_vocab_size = vocab_size
        self.padding_side = padding_side
        # A model that only embeds images needs no tokenizer file.
        self._tokenizer = None

    @property
    def tokenizer(self) -> Any:
        """tokenizers.Tokenizer: The file's tokenizer."""
        if self._tokenizer is None:
            self._tokenizer = self._load()
        return self._tokenizer

    @property
    def pad_id(self) -> int:
        """int: Id of ``pad_token``."""
        return self.tokenizer.token_to_id(self.pad_token)

    def _load(self) -> Any:
        """The checked file's ``tokenizers.Tokenizer``."""
        try:
            from tokenizers import Tokenizer
        except ImportError:
            raise ImportError('SigLIP tokenizers need the tokenizers '
                              'package: pip install tokenizers') from None
        path = self.tokenizer_file
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'tokenizer file {path} not found (it comes with the '
                "model's weights)")
        try:
            tokenizer = Tokenizer.from_file(path)
        except Exception as e:  # noqa: BLE001 - the library's many errors
            raise ValueError(f'{path}: not a tokenizer.json file '
                             f'({type(e).__name__}: {e})') from None
        size = tokenizer.get_vocab_size(with_added_tokens=True)
        expected = self.expected_vocab_size
        if expected is not None and size != expected:
            raise ValueError(f'{path} has {size} tokens, the text tower '
                             f'{expected}: it is the tokenizer of another '
                             'model')
        if tokenizer.token_to_id(self.pad_token) is None:
            raise ValueError(f'{path} has no pad token {self.pad_token!r}')
        tokenizer.no_truncation()
        tokenizer.no_padding()
        return tokenizer

    @property
    def vocab_size(self) -> int:
        """int: Number of ids, added tokens included."""
        return self.tokenizer.get_vocab_size(with_added_tokens=True)

    def tokenize(self,
                 texts: Union[str, Sequence[str]],
                 context_length: Optional[int] = None,
                 truncate: bool = False) -> torch.LongTensor:
        """Ids of ``texts``, one row each, padded to the full length.

        Args:
            texts (str | Sequence[str]): One text or several.
            context_length (int, optional): Defaults to the tokenizer's.
            truncate (bool): Cut an over-long text (keeping its special
                tokens) with a warning; if False, it is a ``ValueError``.
                Defaults to False.

        Returns:
            torch.LongTensor: ``(N, context_length)``.
        """
        if isinstance(texts, str):
            texts = [texts]
        length = context_length or self.context_length
        cleaned = [canonicalize(t) for t in texts]
        full = self.tokenizer.encode_batch(cleaned)
        too_long = [i for i, enc in enumerate(full) if len(enc.ids) > length]
        if too_long and not truncate:
            row = too_long[0]
            raise ValueError(
                f'Text {row} is {len(full[row].ids)} tokens long, over the '
                f'context length {length} (pass truncate=True to cut it): '
                f'{_shorten(texts[row])!r}')
        if too_long:
            print_log(
                f'{len(too_long)} text(s) over {length} tokens were '
                f'truncated, e.g. {_shorten(texts[too_long[0]])!r}',
                logger='current',
                level=logging.WARNING)
            self.tokenizer.enable_truncation(max_length=length)
            try:
                for i in too_long:
                    full[i] = self.tokenizer.encode(cleaned[i])
            finally:
                self.tokenizer.no_truncation()
        result = torch.full((len(texts), length), self.pad_id,
                            dtype=torch.long)
        for row, enc in enumerate(full):
            n = len(enc.ids)
            start = 0 if self.padding_side == 'right' else length - n
            result[row, start:start + n] = torch.tensor(enc.ids)
        return result

    __call__ = tokenize

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(tokenizer_file='
                f'{self.tokenizer_file!r}, context_length='
                f'{self.context_length}, pad_token={self.pad_token!r})')
