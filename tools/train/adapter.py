"""Kangaroo's adapter in plain torch (works with torch 1.13 and 2.x; no transformers), with its loss and file format.

The computation is the C# engine's (src/Kangaroo.Core/Speculative/KangarooAdapter.cs), row by row:
    x          hidden states leaving base layer l (the output of decoder layers [0, l), no final norm)
    a          = RMSNorm(x; input_layernorm)                         (float32)
    q, k, v    = a @ Wq^T (+ bq), a @ Wk^T (+ bk), a @ Wv^T (+ bv)    (biases where the base has them: Qwen2, attention_bias)
    q, k       each head RMS-normalized (q_norm, k_norm) where the base model is Qwen3 (head_norms), then
               rotated by RoPE at positions 0..T-1, Hugging Face's rotate_half convention:
               inv_freq[i] = 1 / theta^(2i / head_dim), angle = position * inv_freq[i] (float32),
               first half' = first * cos - second * sin, second half' = second * cos + first * sin
    attention  causal, softmax(q k^T / sqrt(head_dim)) in float32; query head h reads kv head h // (heads / kv_heads)
    h          = x + attention @ Wo^T (+ bo: attention_bias)
    out        = RMSNorm(h; norm), then the base model's LM head gives the logits
RMSNorm(x; w) = w * x / sqrt(mean(x^2) + eps), computed in float32.
"""
from __future__ import annotations

import json
import math
import os

import torch
from torch import nn

# Tensor names of the adapter checkpoint (those of the official Kangaroo release) -> attribute paths in the module.
EXPORT_NAMES = {
    "layers.0.input_layernorm.weight": "input_layernorm.weight",
    "layers.0.self_attn.q_proj.weight": "q_proj.weight",
    "layers.0.self_attn.k_proj.weight": "k_proj.weight",
    "layers.0.self_attn.v_proj.weight": "v_proj.weight",
    "layers.0.self_attn.o_proj.weight": "o_proj.weight",
    "norm.weight": "norm.weight",
}
# An adapter of a base model with query and key head norms (Qwen3) carries them too, as the engine reads them.
HEAD_NORM_NAMES = {
    "layers.0.self_attn.q_norm.weight": "q_norm.weight",
    "layers.0.self_attn.k_norm.weight": "k_norm.weight",
}


class RMSNorm(nn.Module):
    def __init__(self, width: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        return self.weight.float() * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


def inverse_frequencies(head_dim: int, theta: float) -> torch.Tensor:
    """As Hugging Face's default rotary embedding computes them (float32)."""
    return 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x [B, heads, T, D] rotated by RoPE; cos/sin [T, D] hold each angle twice (cat(freqs, freqs))."""
    half = x.shape[-1] // 2
    rotated_half = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated_half * sin


class KangarooAdapter(nn.Module):
    def __init__(self, hidden: int, heads: int, kv_heads: int, head_dim: int, eps: float, rope_theta: float,
                 head_norms: bool = False, qkv_bias: bool = False, output_bias: bool = False):
        super().__init__()
        if heads % kv_heads != 0:
            raise ValueError(f"kv_heads {kv_heads} does not divide heads {heads}")
        if head_dim % 2 != 0:
            raise ValueError(f"head_dim {head_dim} must be even for RoPE")
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, head_dim
        self.input_layernorm = RMSNorm(hidden, eps)
        self.q_proj = nn.Linear(hidden, heads * head_dim, bias=qkv_bias)
        self.k_proj = nn.Linear(hidden, kv_heads * head_dim, bias=qkv_bias)
        self.v_proj = nn.Linear(hidden, kv_heads * head_dim, bias=qkv_bias)
        self.o_proj = nn.Linear(heads * head_dim, hidden, bias=output_bias)
        self.qkv_bias, self.output_bias = qkv_bias, output_bias
        self.norm = RMSNorm(hidden, eps)
        self.head_norms = head_norms
        if head_norms:
            self.q_norm = RMSNorm(head_dim, eps)
            self.k_norm = RMSNorm(head_dim, eps)
        # Not a buffer: .half() or .to(dtype) would round a buffer, and the engine computes these in float32.
        self.rope_theta = rope_theta

    @classmethod
    def from_config(cls, config: dict) -> "KangarooAdapter":
        """From a Hugging Face Llama config.json dict (rope_theta top-level or in transformers 5's rope_parameters)."""
        heads = config["num_attention_heads"]
        head_dim = config.get("head_dim") or config["hidden_size"] // heads
        model_type = config.get("model_type", "llama")
        # As transformers builds the attention (and the engine reads it): Qwen2 always has q/k/v biases, Llama and Qwen3
        # follow attention_bias (all four projections), Mistral has none.
        attention_bias = model_type in ("llama", "qwen3") and bool(config.get("attention_bias"))
        return cls(config["hidden_size"], heads, config.get("num_key_value_heads") or heads, head_dim,
                   config["rms_norm_eps"], rope_theta(config), head_norms=model_type == "qwen3",
                   qkv_bias=model_type == "qwen2" or attention_bias, output_bias=attention_bias)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """h = x + o_proj(attention(input_layernorm(x))) for x [B, T, hidden] at positions 0..T-1 (float32).
        Keep the module's weights in float32: under autocast the projections run in its dtype, outside in float32."""
        b, t, _ = x.shape
        a = self.input_layernorm(x)
        q = self.q_proj(a).view(b, t, self.heads, self.head_dim).transpose(1, 2).float()
        k = self.k_proj(a).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2).float()
        v = self.v_proj(a).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2).float()
        if self.head_norms:
            q, k = self.q_norm(q), self.k_norm(k)

        positions = torch.arange(t, device=x.device, dtype=torch.float32)
        freqs = positions[:, None] * inverse_frequencies(self.head_dim, self.rope_theta).to(x.device)[None, :]
        angles = torch.cat((freqs, freqs), dim=-1)
        cos, sin = angles.cos(), angles.sin()
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)

        group = self.heads // self.kv_heads
        if group > 1:
            k = k.repeat_interleave(group, dim=1)
            v = v.repeat_interleave(group, dim=1)
        with torch.autocast(device_type=x.device.type, enabled=False):
            scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(self.head_dim))
            causal = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
            probs = torch.softmax(scores.masked_fill(causal, float("-inf")), dim=-1)
            out = torch.matmul(probs, v)
        out = out.transpose(1, 2).reshape(b, t, self.heads * self.head_dim)
        return x.float() + self.o_proj(out).float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """norm(h): what the shared LM head reads (float32)."""
        return self.norm(self.residual(x))

    def export_names(self) -> dict[str, str]:
        names = dict(EXPORT_NAMES)
        if self.head_norms:
            names.update(HEAD_NORM_NAMES)
        if self.qkv_bias:
            names.update({f"layers.0.self_attn.{p}_proj.bias": f"{p}_proj.bias" for p in "qkv"})
        if self.output_bias:
            names["layers.0.self_attn.o_proj.bias"] = "o_proj.bias"
        return names

    def export_state(self) -> dict[str, torch.Tensor]:
        """The checkpoint tensors under their release names, float16, contiguous, on the CPU."""
        params = dict(self.named_parameters())
        return {name: params[attr].detach().to("cpu", torch.float16).contiguous() for name, attr in self.export_names().items()}

    def load_exported(self, tensors: dict[str, torch.Tensor]) -> None:
        params = dict(self.named_parameters())
        names = self.export_names()
        missing = [n for n in names if n not in tensors]
        if missing:
            raise ValueError(f"adapter checkpoint lacks {missing}")
        with torch.no_grad():
            for name, attr in names.items():
                if tuple(tensors[name].shape) != tuple(params[attr].shape):
                    raise ValueError(f"{name}: shape {tuple(tensors[name].shape)}, expected {tuple(params[attr].shape)}")
                params[attr].copy_(tensors[name].to(params[attr].dtype))


def rope_theta(config: dict) -> float:
    parameters = config.get("rope_parameters") or {}
    theta = parameters.get("rope_theta", config.get("rope_theta", 10000.0))
    rope_type = parameters.get("rope_type", (config.get("rope_scaling") or {}).get("rope_type", "default"))
    if rope_type != "default" or config.get("rope_scaling"):
        raise ValueError(f"rope scaling {rope_type!r} is not supported by this adapter trainer (default RoPE only)")
    return float(theta)


def soft_cross_entropy(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """Mean over positions of -sum_v p_teacher(v) log p_student(v), in float32 (Kangaroo's distillation loss)."""
    target = torch.softmax(teacher_logits.float(), dim=-1)
    return -(target * torch.log_softmax(student_logits.float(), dim=-1)).sum(-1).mean()


def save_adapter(adapter: KangarooAdapter, base_config: dict, exit_layer: int, directory: str) -> None:
    """config.json (the base config with num_hidden_layers = 1 and "exit_layer") and model.safetensors (float16)."""
    from safetensors.torch import save_file
    os.makedirs(directory, exist_ok=True)
    config = dict(base_config)
    config["num_hidden_layers"] = 1
    config["exit_layer"] = exit_layer
    with open(os.path.join(directory, "config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    save_file(adapter.export_state(), os.path.join(directory, "model.safetensors"), metadata={"format": "pt"})


def load_adapter(directory: str) -> tuple[KangarooAdapter, int]:
    """(adapter in float32, exit layer) from a directory written by save_adapter."""
    from safetensors.torch import load_file
    with open(os.path.join(directory, "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    if "exit_layer" not in config:
        raise ValueError(f"{directory}/config.json has no exit_layer")
    adapter = KangarooAdapter.from_config(config)
    adapter.load_exported(load_file(os.path.join(directory, "model.safetensors")))
    return adapter, int(config["exit_layer"])
