# Copyright (c) mmprompt contributors. All rights reserved.
"""SigLIP's tokenizers: a model's own ``tokenizer.json`` and big_vision's
text canonicalisation.

SigLIP uses a 32k SentencePiece vocabulary, SigLIP 2 Gemma's 256k one; both
are released as Hugging Face ``tokenizer.json`` files beside the weights,
read here with the ``tokenizers`` library (Apache-2.0). Texts are cleaned as
open_clip's ``HFTokenizer(clean='canonicalize')`` cleans them (OpenAI's
cleaning, then big_vision's ``canonicalize_text``: underscores to spaces,
ASCII punctuation removed, lower case, whitespace collapsed), and every row
is padded to the full context, as the models were trained: both change the
ids, and public reports lose 10+ ImageNet points without them.
"""
import logging
import os.path as osp
import string
from typing import Any, Optional, Sequence, Tuple, Union

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
        str: Lower case, without ASCII punctuation (underscores become
        spaces), single spaces, stripped.
    """
    text = _clean(text).replace('_', ' ').translate(_NO_PUNCTUATION)
    return ' '.join(text.lower().split())


@TOKENIZER.register_module()
class SigLIPTokenizer:
    """A SigLIP / SigLIP 2 tokenizer from the model's ``tokenizer.json``.

    Each text is canonicalised (:func:`canonicalize`), encoded with the
    file's model and post-processor (which appends the end-of-sequence
    token), and padded with ``pad_token`` to ``context_length``.

    The file is read, and checked, on first use.

    Args:
        tokenizer_file (str): The model's ``tokenizer.json``, downloaded
            with its weights.
        context_length (int): Length of every row. Defaults to 64.
        pad_token (str): The padding token (SigLIP: ``'</s>'``, SigLIP 2:
            ``'<pad>'``). Defaults to ``'</s>'``.
        vocab_size (int, optional): The text tower's vocabulary size; a file
            with another size is an error (the file of another model).
            Defaults to None (not checked).
        padding_side (str): ``'right'`` or ``'left'``. Defaults to
            ``'right'``.
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
        # Read on first use: a model that only embeds images (or is
        # exported) needs no tokenizer file.
        self._tokenizer = None
        self._pad_id: Optional[int] = None

    @property
    def tokenizer(self) -> Any:
        """tokenizers.Tokenizer: The file's tokenizer, read and checked on
        first use."""
        if self._tokenizer is None:
            self._tokenizer, self._pad_id = self._load()
        return self._tokenizer

    @property
    def pad_id(self) -> int:
        """int: Id of ``pad_token`` (reads the file on first use)."""
        if self._tokenizer is None:
            self._tokenizer, self._pad_id = self._load()
        return self._pad_id

    def _load(self) -> Tuple[Any, int]:
        """Read and check the file: ``(tokenizers.Tokenizer, pad id)``."""
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
        pad_id = tokenizer.token_to_id(self.pad_token)
        if pad_id is None:
            raise ValueError(f'{path} has no pad token {self.pad_token!r}')
        tokenizer.no_truncation()
        tokenizer.no_padding()
        return tokenizer, pad_id

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
            context_length (int, optional): Row length. Defaults to the
                tokenizer's ``context_length``.
            truncate (bool): Cut an over-long text, keeping the special
                tokens the file adds (as Hugging Face's ``truncation=True``
                does), with a warning. If False, an over-long text is a
                ``ValueError`` that names it. Defaults to False.

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
            ids = torch.tensor(enc.ids, dtype=torch.long)
            if self.padding_side == 'right':
                result[row, :len(ids)] = ids
            else:
                result[row, length - len(ids):] = ids
        return result

    __call__ = tokenize

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(tokenizer_file='
                f'{self.tokenizer_file!r}, context_length='
                f'{self.context_length}, pad_token={self.pad_token!r})')
