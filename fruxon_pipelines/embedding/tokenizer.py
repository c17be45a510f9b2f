"""The all-MiniLM-L6-v2 WordPiece tokenizer, from the vendored ``tokenizer.json``.

The chunker counts tokens with it and the local embedder feeds the model with it, so chunk
boundaries and what the model reads agree exactly. ``tokenizers`` is imported lazily.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tokenizers import Tokenizer

TOKENIZER_PATH = Path(__file__).with_name("tokenizer.json")


class MiniLMTokenizer:
    """A :class:`~fruxon_pipelines.embedding.base.TokenCounter` over the vendored tokenizer.

    The file has truncation to 128 and padding to 128 baked in; both are switched off here,
    once, and the shared instance is never reconfigured afterwards (so it is safe to share
    between threads). Truncation for the model is done by :meth:`model_input_ids`.
    """

    def __init__(self, path: Path = TOKENIZER_PATH) -> None:
        from tokenizers import Tokenizer

        tk = Tokenizer.from_file(str(path))
        tk.no_truncation()
        tk.no_padding()
        self._tk: Tokenizer = tk
        self.cls_id: int = self._required_id("[CLS]")
        self.sep_id: int = self._required_id("[SEP]")
        self.pad_id: int = self._required_id("[PAD]")

    def _required_id(self, token: str) -> int:
        token_id = self._tk.token_to_id(token)
        if token_id is None:
            raise ValueError(f"tokenizer has no {token} token")
        return token_id

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """Character (start, end) of every token of ``text``, no special tokens, no truncation."""
        enc = self._tk.encode(text, add_special_tokens=False)
        return [(start, end) for start, end in enc.offsets]

    def tokens(self, text: str) -> list[str]:
        """The WordPiece strings of ``text`` (``##`` marks a word continuation); for debugging."""
        return list(self._tk.encode(text, add_special_tokens=False).tokens)

    def count(self, texts: Sequence[str]) -> list[int]:
        """Token count of each text, no special tokens, no truncation."""
        if not texts:
            return []
        encs = self._tk.encode_batch(list(texts), add_special_tokens=False)
        return [len(e.ids) for e in encs]

    def model_input_ids(self, texts: Sequence[str], max_tokens: int) -> list[list[int]]:
        """``[CLS] … [SEP]`` ids of each text, cut to ``max_tokens`` the way
        sentence-transformers cuts them (the head of the text is kept, [SEP] stays last)."""
        return self.model_inputs(texts, max_tokens)[0]

    def model_inputs(
        self, texts: Sequence[str], max_tokens: int
    ) -> tuple[list[list[int]], list[int]]:
        """``model_input_ids`` of each text, and its ``count`` from the same tokenization
        (before the cut, [CLS] and [SEP] aside)."""
        if max_tokens < 2:
            raise ValueError("max_tokens must leave room for [CLS] and [SEP]")
        if not texts:
            return [], []
        out: list[list[int]] = []
        counts: list[int] = []
        for enc in self._tk.encode_batch(list(texts), add_special_tokens=True):
            ids = enc.ids
            counts.append(len(ids) - 2)
            if len(ids) > max_tokens:
                ids = ids[: max_tokens - 1] + [self.sep_id]
            out.append(ids)
        return out, counts


_lock = threading.Lock()
_instance: MiniLMTokenizer | None = None


def get_tokenizer() -> MiniLMTokenizer:
    """The process-wide tokenizer: loading the 466 KB file once is enough."""
    global _instance
    if _instance is None:
        with _lock:
            if _instance is None:
                _instance = MiniLMTokenizer()
    return _instance
