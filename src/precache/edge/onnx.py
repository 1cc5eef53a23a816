"""Export the attention predictor for the opt-in onnxruntime-web Worker (``model.onnx`` as it is).

The Worker repeats :class:`~precache.models.attention.runtime.AttentionRuntime` in JavaScript: network
ids (0 PAD, 1 OOV, vocabulary id + 1), the last ``max_len`` pages left-padded to ``max_len`` (one input
shape keeps onnxruntime-web fast; the network masks PAD, so outputs match Python's shorter padding up to
float noise), logits / temperature, softmax without the PAD column, the training popularity prior for an
empty history. Vocabulary, temperature and prior travel with the model.
"""

from __future__ import annotations

from typing import Any

from precache.edge.manifest import EdgeExport, probe_histories, probes_from
from precache.edge.tables import DEFAULT_K, vocabulary_json


def export_onnx(predictor: Any, version: str, k: int = DEFAULT_K) -> EdgeExport:
    """``predictor`` is a loaded :class:`~precache.models.attention.predictor.AttentionPredictor`."""
    runtime = predictor.runtime
    vocabulary = predictor.vocabulary
    if runtime is None or vocabulary is None or not predictor.onnx_bytes:
        raise ValueError("the attention predictor has no ONNX model loaded")
    if getattr(predictor, "tables", None) is not None:
        raise ValueError(
            "this attention model keeps its int8 page table, path segments and Markov term outside the ONNX "
            "graph (attention format 2, issue 18); the ORT Worker still expects the ids -> logits graph and "
            "cannot serve it yet. Serve a markov or ppm model with --worker table")
    pages = vocabulary.pages[1:]
    k = min(k, len(pages))
    unknown = "\0unknown"
    while unknown in vocabulary:
        unknown += "_"
    examples = [pages[i : i + n] for n in (1, 2, 3, 5) for i in range(0, min(len(pages), 40), 7)]
    long_history = [pages[i % len(pages)] for i in range(3 * runtime.max_len)]
    histories = [*probe_histories(examples, unknown, long_history), [pages[0], unknown, pages[-1]]]
    return EdgeExport(
        kind="onnx",
        model_kind=predictor.kind,
        version=version,
        k=k,
        files={
            "edge-model.onnx": predictor.onnx_bytes,
            "edge-vocabulary.json": vocabulary_json(vocabulary),
        },
        params={
            "max_len": runtime.max_len,
            "temperature": runtime.temperature,
            "input": runtime.input_name,
            "pad_id": 0,
            "oov_id": 1,
            "reserved": 2,
        },
        probes=probes_from(predictor.predict, histories, k),
    )
