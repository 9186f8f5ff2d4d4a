"""ONNX export with a dynamic batch and image size, checked against PyTorch with onnxruntime."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from nin.errors import NinError
from nin.inference import Trained
from nin.files import atomic_write_bytes

INPUT_NAME, OUTPUT_NAME = "images", "logits"
EXPORT_EXTRA = "pip install 'network-in-network[export]' (onnx, onnxscript, onnxruntime)"


def _require(module: str):
    try:
        return __import__(module)
    except ImportError:
        raise NinError(f"`nin export` needs {module}: {EXPORT_EXTRA}") from None


def export_onnx(trained: Trained, out: Path, opset: int = 18) -> None:
    """Write the model (images -> logits, fp32) to `out`; batch, height and width are dynamic.

    Preprocessing is not in the graph; it is described in the model's metadata (key "nin").
    """
    _require("onnx")
    _require("onnxscript")
    model = trained.model.float().eval()
    config = model.config
    size = trained.model.config.input_size
    example = torch.zeros(2, config.in_channels, size, size)
    dynamic = {0: torch.export.Dim("batch")}
    if model.has_class_maps:   # GAP takes any size; an FC head fixes it
        dynamic.update({2: torch.export.Dim("height", min=8), 3: torch.export.Dim("width", min=8)})
    program = torch.onnx.export(model, (example,), dynamo=True, opset_version=opset, input_names=[INPUT_NAME],
                                output_names=[OUTPUT_NAME], dynamic_shapes={"x": dynamic}, verbose=False, report=False)
    proto = program.model_proto
    described = {k: trained.meta.get(k) for k in ("dataset", "preset", "class_names", "preprocess", "mean", "std")}
    entry = proto.metadata_props.add()
    entry.key, entry.value = "nin", json.dumps(described)
    atomic_write_bytes(Path(out), proto.SerializeToString())   # NIN models are far below protobuf's 2 GB


def onnx_parity(trained: Trained, path: Path, shapes: list[tuple[int, int, int]], seed: int = 0) -> list[float]:
    """Max absolute difference between onnxruntime and PyTorch (fp32) on random inputs (B, H, W)."""
    ort = _require("onnxruntime")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(seed)
    model = trained.model.float().eval()
    diffs = []
    for batch, height, width in shapes:
        x = torch.randn(batch, model.config.in_channels, height, width, generator=generator)
        with torch.no_grad():
            expected = model(x).numpy()
        got = session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0]
        diffs.append(float(np.abs(got - expected).max()))
    return diffs
