#!/usr/bin/python3
"""Writes the tiny PyTorch checkpoints PyTorchCheckpointTests reads.

Run with Debian's PyTorch (apt-get install python3-torch):
    /usr/bin/python3 tests/Kangaroo.Tests/Fixtures/pytorch/make_fixtures.py

Every checkpoint is written with the real torch.save (zip format), and next to it an expected.json
listing each tensor's name, dtype, shape and contents as read back by torch.load, so the C# test can
compare exactly. Contents are "data_base64" (the row-major little-endian bytes in the tensor's dtype:
compact, which keeps all fixtures under 100 KB) and, for the small views checkpoint, also "values"
(a float list).
"""
import base64
import json
import os
import shutil
import zipfile

import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
HIDDEN, HEADS, VOCAB = 32, 4, 64

DTYPE_NAMES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16"}


class Norm(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(HIDDEN))


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            setattr(self, name, nn.Linear(HIDDEN, HIDDEN, bias=False))


class Layer(nn.Module):
    def __init__(self):
        super().__init__()
        self.input_layernorm = Norm()
        self.self_attn = Attention()


class Adapter(nn.Module):
    """Same parameter names as the official Kangaroo adapter (one decoder layer's attention + final norm)."""

    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([Layer()])
        self.norm = Norm()


def config():
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": HIDDEN,
        "intermediate_size": 64,
        "num_attention_heads": HEADS,
        "num_key_value_heads": HEADS,
        "num_hidden_layers": 1,
        "vocab_size": VOCAB,
        "max_position_embeddings": 128,
        "rms_norm_eps": 1e-6,
        "hidden_act": "silu",
        "bos_token_id": 1,
        "eos_token_id": 2,
        "pad_token_id": 0,
        "tie_word_embeddings": False,
        "torch_dtype": "float16",
    }


def raw_bytes(t):
    t = t.detach().contiguous()
    if t.dtype == torch.bfloat16:  # numpy has no bfloat16: reinterpret the bits
        t = t.view(torch.int16)
    return t.numpy().tobytes()


def describe(state_dict, non_contiguous=(), with_values=False):
    tensors = []
    for name, t in state_dict.items():
        entry = {"name": name, "dtype": DTYPE_NAMES.get(t.dtype, str(t.dtype)), "shape": list(t.shape)}
        if t.dtype not in DTYPE_NAMES:
            entry["unsupported"] = True
        elif name in non_contiguous:
            entry["non_contiguous"] = True
        else:
            entry["data_base64"] = base64.b64encode(raw_bytes(t)).decode("ascii")
            if with_values:  # as F32: exact for F16 / BF16 / F32
                entry["values"] = t.detach().float().contiguous().view(-1).tolist()
        tensors.append(entry)
    return {"tensors": tensors}


def write(dirname, state_dict, cfg=None, non_contiguous=(), with_values=False):
    out = os.path.join(HERE, dirname)
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "pytorch_model.bin")
    torch.save(state_dict, path)
    # Describe what torch.load gives back, so the expectation is what is really in the file.
    loaded = torch.load(path)
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(describe(loaded, non_contiguous, with_values), f)
    if cfg is not None:
        with open(os.path.join(out, "config.json"), "w") as f:
            json.dump(cfg, f, indent=2)
    return path


def rezip(src, dst_dir, prefix):
    """Copies a checkpoint into a zip written by Python's zipfile (no 64-byte alignment) under another prefix."""
    out = os.path.join(HERE, dst_dir)
    os.makedirs(out, exist_ok=True)
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(os.path.join(out, "pytorch_model.bin"), "w",
                                                      zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            rest = info.filename.split("/", 1)[1]
            # A fixed date keeps the fixture byte-identical across runs.
            zout.writestr(zipfile.ZipInfo(prefix + "/" + rest, date_time=(2020, 1, 1, 0, 0, 0)), zin.read(info.filename))
    shutil.copy(os.path.join(os.path.dirname(src), "expected.json"), out)


def main():
    torch.manual_seed(1234)
    adapter = Adapter()
    with torch.no_grad():
        for p in adapter.parameters():
            p.copy_(torch.randn_like(p))

    # model.state_dict() is an OrderedDict with _metadata, like the official release.
    write("adapter_f16", adapter.half().state_dict(), config())
    write("adapter_f32", adapter.float().state_dict(), dict(config(), torch_dtype="float32"))
    write("adapter_bf16", adapter.bfloat16().state_dict(), dict(config(), torch_dtype="bfloat16"))

    # Views: tensors sharing one storage (saved once) at different offsets, and a transposed one.
    w = torch.randn(8, 4)
    views = {
        "whole": w,
        "rows_2_4": w[2:4],
        "row_5": w[5],
        "scalar": w[7, 3],
        "transposed": w.t(),
        "own": torch.randn(3, 2).half(),
        "step": torch.tensor([7], dtype=torch.int64),
    }
    path = write("views", views, non_contiguous=("transposed",), with_values=True)
    rezip(path, "views_rezipped", "my_checkpoint")

    # The legacy (pre-1.6) non-zip format, which the reader refuses with advice on re-saving.
    os.makedirs(os.path.join(HERE, "legacy"), exist_ok=True)
    torch.save({"w": torch.randn(2, 2)}, os.path.join(HERE, "legacy", "pytorch_model.bin"),
               _use_new_zipfile_serialization=False)


if __name__ == "__main__":
    main()
