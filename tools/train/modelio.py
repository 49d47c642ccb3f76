"""Torch helpers shared by the GPU stages: device and precision, the time/step budget with its learning-rate schedule,
layer-output capture, held-out loss, the base model's files. transformers is imported only inside the functions
that need it, so the rest can be tested with torch alone.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from textdata import StageError


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast_bf16(device: torch.device):
    """bf16 autocast on CUDA; float32 elsewhere (CPU runs are for tests only)."""
    if device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def environment(device: torch.device) -> dict:
    info = {"python": sys.version.split()[0], "platform": platform.platform(), "torch": torch.__version__,
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"}
    for name in ("transformers", "sentencepiece", "safetensors", "numpy"):
        try:
            info[name] = __import__(name).__version__
        except ImportError:
            info[name] = None
    return info


class Budget:
    """When to stop and the learning rate: linear warmup, then cosine decay to min_ratio of the peak.

    With `steps` the run is exactly that many steps. With `seconds` only, the total is fixed once, after
    `calibration` steps (never beyond the warmup): the measured step time fills the remaining seconds. The schedule
    then depends only on (step, total), so `--steps TOTAL` replays the schedule of a timed run exactly
    (the warmup is capped at half the steps, which only matters for very short runs).
    A timed run also stops if it overruns its seconds by 10% (slower steps later on).
    """

    def __init__(self, peak_lr: float, warmup: int, steps: int | None, seconds: float | None, min_ratio: float = 0.1):
        if not steps and not seconds:
            raise StageError("give --steps or --seconds")
        self.peak, self.min_ratio = peak_lr, min_ratio
        self.total = steps or None
        self.seconds = None if steps else seconds
        self.warmup = max(1, min(warmup, steps // 2)) if steps else warmup
        self.calibration = max(2, min(self.warmup, 50))
        self.started = time.time()
        self._calibration_start: float | None = None
        self.stopped_by_time = False

    def lr(self, step: int) -> float:
        if step < self.warmup:
            return self.peak * (step + 1) / self.warmup
        total = self.total or (self.warmup + 1)
        progress = min(1.0, (step - self.warmup) / max(1, total - self.warmup))
        return self.peak * (self.min_ratio + (1 - self.min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))

    def elapsed(self) -> float:
        return time.time() - self.started

    def keep_going(self, step: int, sync) -> bool:
        """Called before each step (0-based); sync() waits for the device so that times are real."""
        if self.seconds is None:
            return step < self.total
        if step == 1:                       # step 0 carries one-off start-up costs
            sync()
            self._calibration_start = time.time()
        elif step == self.calibration + 1:
            sync()
            per_step = (time.time() - self._calibration_start) / self.calibration
            self.total = step + max(0, int((self.seconds - self.elapsed()) / per_step))
        if self.total is not None and step >= self.total:
            return False
        if self.elapsed() > 1.1 * self.seconds:
            self.stopped_by_time = True
            return False
        return True


class LayerOutput:
    """Captures the output of decoder layer `index` (a tensor, or the first element of a tuple) during a forward."""

    def __init__(self, model, index: int):
        self.layer = decoder_layers(model)[index]
        self.value: torch.Tensor | None = None
        self._handle = None

    def _hook(self, module, inputs, output):
        self.value = output[0] if isinstance(output, (tuple, list)) else output

    def __enter__(self) -> "LayerOutput":
        self._handle = self.layer.register_forward_hook(self._hook)
        return self

    def __exit__(self, *exc) -> None:
        self._handle.remove()


def decoder_layers(model):
    return model.model.layers


def load_model(model_dir: str, device: torch.device):
    """The base model in float32 (its float16 weights upcast), eval mode, frozen."""
    from transformers import LlamaForCausalLM
    if not os.path.exists(os.path.join(model_dir, "config.json")):
        raise StageError(f"{model_dir} is not a model directory (no config.json)")
    model = LlamaForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="sdpa")
    model.to(device).eval()
    model.requires_grad_(False)
    return model


def read_config(model_dir: str) -> dict:
    with open(os.path.join(model_dir, "config.json"), encoding="utf-8") as f:
        return json.load(f)


@torch.no_grad()
def heldout_loss(model, rows: np.ndarray, device: torch.device, bf16: bool, batch: int = 16) -> float:
    """Mean next-token cross-entropy over the rows (each row predicts its tokens 1..T-1)."""
    total, count = 0.0, 0
    for i in range(0, len(rows), batch):
        x = torch.from_numpy(rows[i:i + batch]).to(device).long()
        with autocast_bf16(device) if bf16 else contextlib.nullcontext():
            logits = model(input_ids=x, use_cache=False).logits
        total += F.cross_entropy(logits[:, :-1].float().reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1),
                                 reduction="sum").item()
        count += x[:, 1:].numel()
    return total / count


def safetensors_header(path: str) -> dict:
    """name -> {"dtype", "shape", "data_offsets"} from a .safetensors file's JSON header."""
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
    header.pop("__metadata__", None)
    return header


def batches(rows: torch.Tensor, batch: int, seed: int):
    """Endless batches of rows (on rows' device) in seeded random order, a fresh permutation each epoch;
    yields (batch [b, T] int64, epoch)."""
    rng = np.random.default_rng(seed)
    n = rows.shape[0]
    batch = min(batch, n)
    epoch = 0
    while True:
        order = torch.from_numpy(rng.permutation(n)).to(rows.device)
        for i in range(0, n - batch + 1, batch):
            yield rows[order[i:i + batch]].long(), epoch
        epoch += 1
