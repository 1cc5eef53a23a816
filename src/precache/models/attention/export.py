"""ONNX export (and optional dynamic int8 quantization) of a trained :class:`SASRec`.

The exported graph takes ``ids`` [batch, seq] int64, left-padded with PAD=0, and returns ``logits``
[batch, vocab] of the last position. Logits (not probabilities) so that the calibration temperature
stays a manifest number that can be refit without re-exporting. Traps avoided (STACK-NOTES): the
example batch is 2 so the batch axis stays dynamic; ``external_data=False`` gives one file.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import torch

from precache.models.attention.network import OOV_ID, LastLogits, SASRec

INPUT_NAME = "ids"
OUTPUT_NAME = "logits"
OPSET = 20


def export_onnx(net: SASRec, path: Path) -> Path:
    """Write the fp32 model to ``path`` (dynamic batch and sequence axes)."""
    net.eval()
    wrapper = LastLogits(net).eval()
    example = torch.full((2, 5), OOV_ID, dtype=torch.int64)
    example[0, :2] = 0  # one left-padded row so padding is traced through
    batch = torch.export.Dim("batch", min=1, max=65536)
    seq = torch.export.Dim("seq", min=1, max=net.config.max_len)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            wrapper,
            (example,),
            dynamo=True,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes={"ids": {0: batch, 1: seq}},
            opset_version=OPSET,
            external_data=False,
            verbose=False,
        )
        assert program is not None
        program.save(str(path), external_data=False)
    return path


def quantize_int8(source: Path, target: Path) -> Path:
    """Dynamic int8 quantization of the MatMul weights (onnxruntime.quantization).

    Only MatMul: quantizing the embedding Gathers as well (the default) saved ~70 KB more but cut the
    top-5 agreement with torch from ~99.5% to ~98.8% (set equality 97% -> 94%) on BMS sessions."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / "model.onnx"
        staged.write_bytes(source.read_bytes())
        quantize_dynamic(str(staged), str(target), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"])
    os.chmod(target, 0o644)
    return target
