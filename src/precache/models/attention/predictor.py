"""``AttentionPredictor``: the page-predictor interface around the attention network.

``fit`` trains with PyTorch (imported inside ``fit`` only), exports the encoder to ONNX (int8 MatMuls
when the model would otherwise exceed its size budget, or when asked), quantizes the page table to int8,
calibrates a temperature on the validation slice *through the serving runtime*, and from then on predicts
through :class:`AttentionRuntime` -- the same class the serving side uses. ``load`` never imports torch.

Files: ``model.onnx`` (the encoder), ``tables.npz`` (int8 page table + per-page scales, segment table,
output bias, Markov counts), ``vocabulary.json`` (shared format), ``attention.json`` (network shape,
temperature, Markov weight, path segments, attention format version). Validation metrics, the
reliability table and the size go in the manifest's ``metrics``.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import math
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from precache.models.attention.features import RESERVED, MarkovTerm, quantize_rows
from precache.models.attention.runtime import AttentionRuntime, Tables
from precache.models.base import ModelFileError, ModelFiles, PagePredictorBase, check_k, write_json, write_npz
from precache.models.vocabulary import Vocabulary
from precache.traces.model import Session
from precache.types import Prediction

_log = logging.getLogger("precache.models.attention")

ATTENTION_FORMAT = 2  # 2: encoder graph + numpy tables (page table, segments, Markov term)
MODEL_FILE = "model.onnx"
VOCAB_FILE = "vocabulary.json.gz"  # gzip: 10,000 URLs are ~200 KB as plain JSON, a fifth of the budget
META_FILE = "attention.json"
TABLES_FILE = "tables.npz"
MAX_VOCABULARY_BYTES = 256 * 1024 * 1024  # a gzip bomb is refused, not inflated
CALIBRATION_ELEMENTS = 20_000_000  # validation transitions x vocabulary kept for the temperature fit


class AttentionPredictor(PagePredictorBase):
    """SASRec-style causal transformer with a Markov term; see :mod:`precache.models.attention.network`."""

    kind = "attention"
    complexity = 4
    edge_worker = "ort"

    def __init__(
        self,
        name: str | None = None,
        vocab_size: int | None = None,
        min_count: int = 2,
        max_len: int = 30,
        d_model: int = 64,
        heads: int = 2,
        layers: int = 2,
        dropout: float = 0.2,
        epochs: int = 20,
        batch_size: int = 256,
        lr: float = 3e-3,
        weight_decay: float = 0.01,
        patience: int = 2,
        seed: int = 0,
        threads: int = 2,
        max_seconds: float | None = None,
        max_train_windows: int | None = None,
        int8: bool | None = None,
        calibrate: bool = True,
        inference_threads: int = 1,
        segments: bool = True,
        entry: bool = True,
        markov: bool = True,
        size_budget: int | None = 1_000_000,
        recount_with_validation: bool = True,
    ) -> None:
        arguments = locals()  # the parameters are written once, in the signature
        super().__init__(name)
        self.options: dict[str, Any] = {p: arguments[p] for p in self.parameters()}
        self.runtime: AttentionRuntime | None = None
        self.vocabulary: Vocabulary | None = None
        self.tables: Tables | None = None
        self.temperature = 1.0
        self.quantized = False
        self.onnx_bytes: bytes = b""
        self.fp32_onnx_bytes: bytes = b""
        self.net: Any = None  # the torch PageModel after fit (parity checks); never saved, never loaded
        self.index: Any = None  # the training PageIndex after fit (recount); never saved

    def _parameter(self, name: str) -> Any:
        return self.options[name]

    @property
    def vocabulary_size(self) -> int:
        return len(self.vocabulary) if self.vocabulary is not None else 0

    # -- training ----------------------------------------------------------------------------------
    def fit(self, train: Sequence[Session], validation: Sequence[Session] | None = None) -> None:
        """Train; calibrate the temperature on the validation slice with the Markov term counting the
        training sessions only (with the validation transitions in the counts, every validation pair would
        be "seen" and its score optimistic: auto once saw +3 pts over Markov on BMS validation that were not
        there on test); then, unless ``recount_with_validation`` is off, recount the term over train +
        validation for what ships, as the baselines do (auto turns it off and recounts after its choice)."""
        from precache.models.attention.train import train_network
        from precache.models.calibration import calibrate

        o = self.options
        result = train_network(train, validation, self.train_config(), log=_log.info)
        self.index = result.index
        self.adopt(result.model, result.index, result.counts, result.segments, result.term)
        report = self._calibrate(validation, calibrate) if o["calibrate"] and validation else None
        if o["recount_with_validation"] and validation:
            self.recount([*train, *validation])
        term = self.tables.markov if self.tables is not None else None
        model = result.model
        assert self.tables is not None
        best = result.history[result.best_epoch - 1] if result.best_epoch else {}
        self.metrics = {
            "validation": {k: best.get(k) for k in ("hr5", "mrr5", "nll")},
            "calibration": report,
            "training": {
                "seconds": round(result.seconds, 2), "epochs_run": result.epochs_run,
                "best_epoch": result.best_epoch, "stopped_by_time": result.stopped_by_time,
                "train_windows": result.train_windows, "history": result.history,
                "parameters": int(sum(p.numel() for p in model.parameters())),
                "d_model": model.config.d_model, "pages": len(result.index.pages),
                "segments": len(result.segments), "markov_entries": term.entries if term is not None else 0,
                "alpha": self.tables.alpha, "quantized_encoder": self.quantized,
            },
        }
        self.fitted = True

    def train_config(self) -> Any:
        """The training loop's :class:`~precache.models.attention.train.TrainConfig` (imports torch)."""
        from precache.models.attention.train import TrainConfig

        return TrainConfig(**{f: self.options[f] for f in TrainConfig.__dataclass_fields__ if f in self.options})

    def recount(self, sessions: Sequence[Session]) -> None:
        """Rebuild the Markov term's counts from ``sessions`` (the network, vocabulary and temperature stay):
        the cheap "refit" of the count part, e.g. over train + validation once validation scoring is done."""
        from precache.models.attention.train import windows

        if self.tables is None or self.tables.markov is None:
            return
        if self.index is None:
            raise RuntimeError(f"{self.name}: recount() needs the training index (only after fit())")
        cfg = self.train_config()
        rows = [w[0] for w in windows(list(sessions), self.index, cfg.max_len)]
        self.tables.markov = MarkovTerm.from_sequences(rows, self.index.size, cfg.budget_markov_entries())
        self._start_runtime(self.onnx_bytes)

    def adopt(self, model: Any, index: Any, counts: Sequence[int], segments: Sequence[str],
              term: MarkovTerm | None) -> None:
        """Turn a trained (or, in tests, any) torch ``PageModel`` into what is served: int8 page table,
        fp16 segment table and bias, the Markov counts, the ONNX encoder (int8 MatMuls when the budget
        needs them); starts the runtime at temperature 1 (``fit`` calibrates afterwards)."""
        from precache.models.attention.export import export_onnx, quantize_int8

        o = self.options
        self.net = model
        self.vocabulary = Vocabulary(index.pages, list(counts))
        page_q, page_scale = quantize_rows(model.item.weight.detach().numpy().astype(np.float32))
        segment_table = model.segment.weight.detach().numpy().astype(np.float16).astype(np.float32) \
            if model.segment is not None else None
        self.tables = Tables(
            pages=list(index.pages), segments=list(segments), page_q=page_q, page_scale=page_scale,
            segment_table=segment_table,
            bias=model.out_bias.detach().numpy().astype(np.float16).astype(np.float32),
            markov=term, alpha=float(model.alpha.detach()),
        )
        with tempfile.TemporaryDirectory() as tmp:
            fp32 = export_onnx(model.encoder, Path(tmp) / "fp32.onnx")
            self.fp32_onnx_bytes = fp32.read_bytes()
            int8 = o["int8"]
            if int8 is None:  # quantize the encoder only when the budget needs it
                budget = o["size_budget"]
                int8 = budget is not None and len(self.fp32_onnx_bytes) + self._tables_bytes(tmp) + 4096 > budget
            self.quantized = bool(int8)
            self.onnx_bytes = (quantize_int8(fp32, Path(tmp) / "int8.onnx").read_bytes() if int8
                               else self.fp32_onnx_bytes)
        self.temperature = 1.0
        self._start_runtime(self.onnx_bytes)
        self.fitted = True

    def _tables_bytes(self, tmp: str) -> int:
        """Bytes of everything but the encoder graph (tables and vocabulary), as saved."""
        assert self.vocabulary is not None
        write_npz(Path(tmp) / TABLES_FILE, self._table_arrays())
        _save_vocabulary(self.vocabulary, Path(tmp) / VOCAB_FILE)
        return (Path(tmp) / TABLES_FILE).stat().st_size + (Path(tmp) / VOCAB_FILE).stat().st_size

    def _calibrate(self, validation: Sequence[Session], calibrate: Any) -> dict[str, Any] | None:
        """Temperature fit on validation logits computed by the serving runtime itself (int8 tables and
        all), on at most ``CALIBRATION_ELEMENTS / vocabulary`` transitions."""
        from precache.evaluation import transitions

        assert self.runtime is not None
        limit = max(1000, CALIBRATION_ELEMENTS // (self.vocabulary_size + RESERVED))
        pairs = [p for _, p in zip(range(limit), transitions(validation, max_history=50), strict=False)]
        if not pairs:
            return None
        ids, _ = self.runtime.index.encode([t for _, t in pairs])
        chunks = [self.runtime.logits(self.runtime.encode([h for h, _ in pairs[i : i + 512]]))
                  for i in range(0, len(pairs), 512)]
        logits = np.concatenate(chunks)
        logits[:, 0] = -1e9  # PAD is never a next page (the runtime drops it the same way)
        report = calibrate(logits, np.asarray(ids, dtype=np.int64))
        # the NLL-optimal temperature is kept only when it also lowers the validation ECE: with the Markov
        # term the raw probabilities can already be calibrated, and a sharper/flatter scale then hurts
        self.temperature = report.temperature if report.ece_after <= report.ece_before else 1.0
        assert self.runtime is not None
        self.runtime.temperature = self.temperature
        out: dict[str, Any] = report.as_dict()
        out.update(transitions=len(pairs), applied_temperature=self.temperature)
        return out

    def _start_runtime(self, model: bytes) -> None:
        assert self.vocabulary is not None and self.tables is not None
        counts = np.asarray(self.vocabulary.counts[1:], dtype=np.float64)
        self.runtime = AttentionRuntime(
            model, self.tables, counts, self.temperature, int(self.options["max_len"]),
            threads=int(self.options["inference_threads"]),
        )

    # -- prediction ----------------------------------------------------------------------------------
    def _predict(self, history: Sequence[str], k: int) -> Prediction:
        assert self.runtime is not None
        return self.runtime.top_k([history], k)[0]

    def predict_batch(self, histories: Sequence[Sequence[str]], k: int) -> list[Prediction]:
        """One onnxruntime call for the whole batch (this is where batching pays)."""
        check_k(k)
        if not self.fitted or self.runtime is None:
            raise RuntimeError(f"{self.name}: predict_batch() before fit() or load()")
        return self.runtime.top_k(histories, min(k, max(1, self.vocabulary_size)))

    def probabilities(self, histories: Sequence[Sequence[str]]) -> np.ndarray:
        """Full calibrated distributions over ``self.vocabulary.pages[1:]`` (used by the auto blend)."""
        if self.runtime is None:
            raise RuntimeError(f"{self.name}: probabilities() before fit() or load()")
        return self.runtime.probabilities(histories)

    # -- files ---------------------------------------------------------------------------------------
    def _table_arrays(self) -> dict[str, np.ndarray]:
        t = self.tables
        assert t is not None
        arrays: dict[str, np.ndarray] = {"page_q": t.page_q, "page_scale": t.page_scale.astype(np.float16),
                                         "bias": t.bias.astype(np.float16)}
        if t.segment_table is not None:
            arrays["segment_table"] = t.segment_table.astype(np.float16)
        if t.markov is not None:
            arrays.update(t.markov.arrays())
        return arrays

    def _save_files(self, directory: Path) -> list[str]:
        assert self.vocabulary is not None and self.tables is not None
        (directory / MODEL_FILE).write_bytes(self.onnx_bytes)
        _save_vocabulary(self.vocabulary, directory / VOCAB_FILE)
        write_npz(directory / TABLES_FILE, self._table_arrays())
        write_json(directory / META_FILE, {
            "attention_format": ATTENTION_FORMAT,
            "temperature": self.temperature,
            "max_len": int(self.options["max_len"]),
            "quantized": self.quantized,
            "alpha": self.tables.alpha,
            "segments": self.tables.segments,
            "markov": self.tables.markov is not None,
            "inputs": ["emb", "real", "entry"], "output": "hidden", "pad_id": 0, "oov_id": 1,
        })
        return [MODEL_FILE, VOCAB_FILE, META_FILE, TABLES_FILE]

    def use_threads(self, threads: int) -> None:
        self.options["inference_threads"] = max(1, int(threads))
        if self.runtime is not None:
            self._start_runtime(self.onnx_bytes)

    def _load_files(self, files: ModelFiles) -> None:
        """Description, vocabulary, tables and encoder must agree with each other (shapes checked here;
        a graph that does not take the tables' width fails the load, not the first request)."""
        meta = files.read_json(META_FILE)
        if not isinstance(meta, dict) or "temperature" not in meta:
            raise ModelFileError(f"{files.root / META_FILE}: not an attention model description")
        version, temperature, max_len = meta.get("attention_format", 0), meta["temperature"], meta.get("max_len")
        if not isinstance(version, int) or version > ATTENTION_FORMAT:
            raise ModelFileError(f"{files.root}: attention format {version!r} is newer than supported "
                                 f"({ATTENTION_FORMAT})")
        if version < ATTENTION_FORMAT:
            raise ModelFileError(f"{files.root}: attention format {version} (ids in the graph, 1,000-page "
                                 f"ceiling) is no longer read; retrain the model")
        if isinstance(temperature, bool) or not isinstance(temperature, int | float) or not 0 < temperature < 1e6:
            raise ModelFileError(f"{files.root / META_FILE}: bad calibration temperature {temperature!r}")
        if isinstance(max_len, bool) or not isinstance(max_len, int) or not 1 <= max_len <= 100_000:
            raise ModelFileError(f"{files.root / META_FILE}: bad max_len {max_len!r}")
        alpha = meta.get("alpha", 1.0)
        if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not math.isfinite(alpha):
            raise ModelFileError(f"{files.root / META_FILE}: bad Markov weight {alpha!r}")
        self.vocabulary = _parse_vocabulary(files.read_bytes(VOCAB_FILE), files.root / VOCAB_FILE)
        arrays = files.read_npz(TABLES_FILE)
        size = len(self.vocabulary) + RESERVED
        segments = meta.get("segments") or []
        if not isinstance(segments, list) or not all(isinstance(x, str) for x in segments):
            raise ModelFileError(f"{files.root / META_FILE}: segments must be a list of strings")
        try:
            page_q = np.asarray(arrays["page_q"])
            if page_q.dtype != np.int8 or page_q.ndim != 2 or page_q.shape[0] != size:
                raise ModelFileError(f"{files.root}: the page table {page_q.shape} does not fit the vocabulary "
                                     f"of {len(self.vocabulary)} pages (+{RESERVED} reserved ids)")
            segment_table = arrays.get("segment_table")
            if segment_table is not None and segment_table.shape != (len(segments) + 1, page_q.shape[1]):
                raise ModelFileError(f"{files.root}: segment table does not match the segment list")
            scale, bias = np.asarray(arrays["page_scale"], np.float32), np.asarray(arrays["bias"], np.float32)
            if scale.shape != (size,) or bias.shape != (size,):
                raise ModelFileError(f"{files.root}: page scales or bias do not match the vocabulary")
            markov = MarkovTerm.from_arrays(arrays, size) if meta.get("markov") else None
        except KeyError as exc:
            raise ModelFileError(f"{files.root}: {TABLES_FILE} lacks {exc}") from exc
        except ValueError as exc:
            raise ModelFileError(f"{files.root}: bad {TABLES_FILE}: {exc}") from exc
        self.tables = Tables(
            pages=self.vocabulary.pages[1:], segments=[str(x) for x in segments], page_q=page_q, page_scale=scale,
            segment_table=None if segment_table is None else np.asarray(segment_table, dtype=np.float32),
            bias=bias, markov=markov, alpha=float(alpha),
        )
        self.temperature = float(temperature)
        self.quantized = bool(meta.get("quantized", False))
        self.options["max_len"] = max_len
        self.onnx_bytes = files.read_bytes(MODEL_FILE)
        try:
            self._start_runtime(self.onnx_bytes)
            assert self.runtime is not None
            self.runtime.logits(self.runtime.encode([[self.vocabulary.pages[-1]]]))
        except Exception as exc:  # onnxruntime raises its own exception types for a bad graph
            raise ModelFileError(f"{files.root / MODEL_FILE}: onnxruntime cannot run it: {exc}") from exc


def _save_vocabulary(vocabulary: Vocabulary, path: Path) -> None:
    """The shared vocabulary JSON, compact and gzipped (``mtime=0``: same model, same bytes)."""
    data = json.dumps(vocabulary.to_json(), separators=(",", ":")).encode("utf-8")
    with path.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as handle:
        handle.write(data)


def _parse_vocabulary(data: bytes, where: Path) -> Vocabulary:
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data), mode="rb") as handle:
            raw = handle.read(MAX_VOCABULARY_BYTES + 1)
        if len(raw) > MAX_VOCABULARY_BYTES:
            raise ModelFileError(f"{where}: vocabulary unpacks to more than {MAX_VOCABULARY_BYTES} bytes")
        parsed = json.loads(raw.decode("utf-8"))
    except (OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"cannot read {where}: {exc}") from exc
    return Vocabulary.from_json(parsed)
