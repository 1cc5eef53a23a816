"""Export the attention predictor (attention format 2) for the opt-in onnxruntime-web Worker.

The Worker repeats :class:`~precache.models.attention.runtime.AttentionRuntime` in JavaScript
(``edge/src/ort-model.js``): network ids (0 PAD, 1 OOV, ``2 + i`` for ``pages[i]``), page + path-segment
vectors of the last ``max_len`` pages left-padded to a power-of-two width (a few input shapes keep
onnxruntime-web fast, and short histories do not pay for ``max_len`` positions; the encoder masks padding
and counts positions from the first real page, so the state equals Python's padding up to float noise),
the entry page's vector, the encoder graph as it is
(``model.onnx``), then ``logits = h . V^T + bias + alpha * M[last]``, / temperature, softmax without the
PAD column, and the training popularity prior for an empty history.

Everything but the graph travels in ``edge-attention.bin`` (little-endian, each array padded to 8 bytes,
offsets in the manifest's ``onnx.arrays``): the int8 page table and its per-page scales, the output bias,
the segment table, and the Markov term as CSR rows with its *values* (the log-odds Python computes), so the
Worker does no counting. Vocabulary, temperature, alpha and the segment names travel with the model.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from precache.edge.manifest import EdgeExport, probe_histories, probes_from
from precache.edge.tables import DEFAULT_K, vocabulary_json

EDGE_ATTENTION_FORMAT = 2  # the attention model's own format this export serves
ARRAYS_FILE = "edge-attention.bin"


def _pack(arrays: list[tuple[str, npt.NDArray[Any]]]) -> tuple[bytes, dict[str, dict[str, Any]]]:
    """Concatenate little-endian arrays, each padded to 8 bytes; return the bytes and their layout."""
    parts: list[bytes] = []
    layout: dict[str, dict[str, Any]] = {}
    offset = 0
    for name, array in arrays:
        data = np.ascontiguousarray(array).tobytes()
        layout[name] = {"dtype": array.dtype.name, "shape": list(array.shape), "offset": offset}
        data += b"\0" * (-len(data) % 8)
        parts.append(data)
        offset += len(data)
    return b"".join(parts), layout


def attention_arrays(predictor: Any) -> tuple[bytes, dict[str, dict[str, Any]]]:
    """``edge-attention.bin`` and its layout from a loaded attention predictor's tables."""
    tables = predictor.tables
    arrays: list[tuple[str, npt.NDArray[Any]]] = [
        ("page_q", np.asarray(tables.page_q, dtype=np.int8)),
        ("page_scale", np.asarray(tables.page_scale, dtype="<f4")),
        ("bias", np.asarray(tables.bias, dtype="<f4")),
    ]
    if tables.segment_table is not None:
        arrays.append(("segment_table", np.asarray(tables.segment_table, dtype="<f4")))
    if tables.markov is not None:
        markov = tables.markov
        if markov.entries >= 2**32:
            raise ValueError("the Markov term is too large for the edge export")
        arrays += [("markov_indptr", markov.indptr.astype("<u4")), ("markov_indices", markov.indices.astype("<u4")),
                   ("markov_values", markov.values.astype("<f4"))]
    return _pack(arrays)


def export_onnx(predictor: Any, version: str, k: int = DEFAULT_K) -> EdgeExport:
    """``predictor`` is a fitted or loaded :class:`~precache.models.attention.predictor.AttentionPredictor`."""
    runtime = predictor.runtime
    vocabulary = predictor.vocabulary
    tables = getattr(predictor, "tables", None)
    if runtime is None or vocabulary is None or tables is None or not predictor.onnx_bytes:
        raise ValueError("the attention predictor has no ONNX encoder and tables loaded (fit or load it first)")
    pages = vocabulary.pages[1:]
    if not pages:
        raise ValueError("the attention predictor knows no pages: nothing to export")
    k = min(k, len(pages))
    data, layout = attention_arrays(predictor)
    unknown = "\0unknown"
    while unknown in vocabulary:
        unknown += "_"
    examples = [pages[i : i + n] for n in (1, 2, 3, 5) for i in range(0, min(len(pages), 40), 7)]
    long_history = [pages[i % len(pages)] for i in range(3 * runtime.max_len)]
    extra = [[pages[0], unknown, pages[-1]]]
    if tables.segments:  # an unseen page inside a known path segment still carries the segment's vector
        extra.append([pages[0], f"/{tables.segments[0]}/\0never-seen.html"])
    histories = [*probe_histories(examples, unknown, long_history), *extra]
    return EdgeExport(
        kind="onnx",
        model_kind=predictor.kind,
        version=version,
        k=k,
        files={
            "edge-model.onnx": predictor.onnx_bytes,
            "edge-vocabulary.json": vocabulary_json(vocabulary),
            ARRAYS_FILE: data,
        },
        params={
            "attention_format": EDGE_ATTENTION_FORMAT,
            "max_len": runtime.max_len,
            "d_model": int(runtime.d_model),
            "temperature": runtime.temperature,
            "alpha": float(np.float32(tables.alpha)),
            "segments": list(tables.segments),
            "inputs": ["emb", "real", "entry"],
            "output": "hidden",
            "pad_id": 0,
            "oov_id": 1,
            "reserved": 2,
            "arrays": layout,
        },
        probes=probes_from(predictor.predict, histories, k),
    )
