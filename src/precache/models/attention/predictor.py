"""``AttentionPredictor``: the page-predictor interface around the attention network.

``fit`` trains with PyTorch (imported inside ``fit`` only), calibrates a temperature on the validation
slice, exports ONNX (optionally int8) and from then on predicts through onnxruntime -- the same
:class:`AttentionRuntime` the serving side uses. ``load`` never imports torch.

Files: ``model.onnx`` (fp32 or int8), ``vocabulary.json`` (shared format), ``attention.json`` (network
config, temperature, attention format version). Validation metrics and the reliability table go in the
manifest's ``metrics``.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from precache.models.attention.runtime import OOV_ID, RESERVED, AttentionRuntime
from precache.models.base import ModelFileError, ModelFiles, PagePredictorBase, check_k, write_json
from precache.models.vocabulary import Vocabulary
from precache.traces.model import Session
from precache.types import Prediction

_log = logging.getLogger("precache.models.attention")

ATTENTION_FORMAT = 1
MODEL_FILE = "model.onnx"
VOCAB_FILE = "vocabulary.json"
META_FILE = "attention.json"


class AttentionPredictor(PagePredictorBase):
    """SASRec-style causal transformer; see :mod:`precache.models.attention.network`."""

    kind = "attention"

    def __init__(
        self,
        name: str | None = None,
        vocab_size: int = 1000,
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
        int8: bool = False,
        calibrate: bool = True,
        inference_threads: int = 1,
    ) -> None:
        super().__init__(name)
        self.options: dict[str, Any] = dict(
            vocab_size=vocab_size, max_len=max_len, d_model=d_model, heads=heads, layers=layers,
            dropout=dropout, epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
            patience=patience, seed=seed, threads=threads, max_seconds=max_seconds,
            max_train_windows=max_train_windows, int8=int8, calibrate=calibrate,
            inference_threads=inference_threads,
        )
        self.runtime: AttentionRuntime | None = None
        self.vocabulary: Vocabulary | None = None
        self.temperature = 1.0
        self.onnx_bytes: bytes = b""
        self.fp32_onnx_bytes: bytes = b""
        self.net: Any = None  # the torch module after fit (parity checks); never saved, never loaded

    def config(self) -> dict[str, Any]:
        return dict(self.options)

    @property
    def vocabulary_size(self) -> int:
        return len(self.vocabulary) if self.vocabulary is not None else 0

    # -- training ----------------------------------------------------------------------------------
    def fit(self, train: Sequence[Session], validation: Sequence[Session] | None = None) -> None:
        from precache.models.attention.export import export_onnx, quantize_int8
        from precache.models.attention.train import TrainConfig, train_network, transition_logits
        from precache.models.calibration import calibrate

        o = self.options
        cfg = TrainConfig(**{f: o[f] for f in TrainConfig.__dataclass_fields__ if f in o})
        result = train_network(train, validation, cfg, log=_log.info)
        self.net = result.net
        self.vocabulary = Vocabulary(result.pages, result.counts)
        logits, targets = transition_logits(result.net, result.validation_rows)
        report = calibrate(logits, targets) if o["calibrate"] and len(targets) else None
        self.temperature = report.temperature if report else 1.0
        with tempfile.TemporaryDirectory() as tmp:
            fp32 = export_onnx(result.net, Path(tmp) / "fp32.onnx")
            self.fp32_onnx_bytes = fp32.read_bytes()
            self.onnx_bytes = (
                quantize_int8(fp32, Path(tmp) / "int8.onnx").read_bytes() if o["int8"] else self.fp32_onnx_bytes
            )
        best = result.history[result.best_epoch - 1] if result.best_epoch else {}
        self.metrics = {
            "validation": {k: best.get(k) for k in ("hr5", "mrr5", "nll")},
            "calibration": report.as_dict() if report else None,
            "training": {
                "seconds": round(result.seconds, 2), "epochs_run": result.epochs_run,
                "best_epoch": result.best_epoch, "stopped_by_time": result.stopped_by_time,
                "train_windows": result.train_windows, "history": result.history,
                "parameters": int(sum(p.numel() for p in result.net.parameters())),
            },
        }
        self._start_runtime(self.onnx_bytes)
        self.fitted = True

    def _start_runtime(self, model: bytes) -> None:
        assert self.vocabulary is not None
        counts = np.asarray(self.vocabulary.counts[1:], dtype=np.float64)
        self.runtime = AttentionRuntime(
            model, self.vocabulary.pages[1:], counts, self.temperature, int(self.options["max_len"]),
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
    def _save_files(self, directory: Path) -> list[str]:
        assert self.vocabulary is not None
        (directory / MODEL_FILE).write_bytes(self.onnx_bytes)
        self.vocabulary.save(directory / VOCAB_FILE)
        write_json(directory / META_FILE, {
            "attention_format": ATTENTION_FORMAT,
            "temperature": self.temperature,
            "max_len": int(self.options["max_len"]),
            "quantized": bool(self.options["int8"]),
            "input": "ids", "output": "logits", "pad_id": 0, "oov_id": 1,
        })
        return [MODEL_FILE, VOCAB_FILE, META_FILE]

    def use_threads(self, threads: int) -> None:
        self.options["inference_threads"] = max(1, int(threads))
        if self.runtime is not None:
            self._start_runtime(self.onnx_bytes)

    def _load_files(self, files: ModelFiles) -> None:
        """The description, vocabulary and network must agree: a vocabulary one page short of the
        network's output (sha256 updated) loaded once and then failed every prediction."""
        meta = files.read_json(META_FILE)
        if not isinstance(meta, dict) or "temperature" not in meta:
            raise ModelFileError(f"{files.root / META_FILE}: not an attention model description")
        version, temperature, max_len = meta.get("attention_format", 0), meta["temperature"], meta.get("max_len")
        if not isinstance(version, int) or version > ATTENTION_FORMAT:
            raise ModelFileError(
                f"{files.root}: attention format {version!r} is newer than supported ({ATTENTION_FORMAT})"
            )
        if isinstance(temperature, bool) or not isinstance(temperature, int | float) or not 0 < temperature < 1e6:
            raise ModelFileError(f"{files.root / META_FILE}: bad calibration temperature {temperature!r}")
        if isinstance(max_len, bool) or not isinstance(max_len, int) or not 1 <= max_len <= 100_000:
            raise ModelFileError(f"{files.root / META_FILE}: bad max_len {max_len!r}")
        self.vocabulary = Vocabulary.from_json(files.read_json(VOCAB_FILE))
        self.temperature = float(temperature)
        self.options["max_len"] = max_len
        self.onnx_bytes = files.read_bytes(MODEL_FILE)
        try:
            self._start_runtime(self.onnx_bytes)
            assert self.runtime is not None
            shape = self.runtime.logits(np.full((1, 1), OOV_ID, dtype=np.int64)).shape
        except Exception as exc:  # onnxruntime raises its own exception types for a bad graph
            raise ModelFileError(f"{files.root / MODEL_FILE}: onnxruntime cannot run it: {exc}") from exc
        if shape != (1, len(self.vocabulary) + RESERVED):
            raise ModelFileError(
                f"{files.root}: the network's output {shape} does not fit the vocabulary of "
                f"{len(self.vocabulary)} pages (+{RESERVED} reserved ids)"
            )
