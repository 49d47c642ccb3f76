#!/usr/bin/env python3
"""Unit checks of the parts that need no GPU and no transformers: the adapter against a loop-by-loop reference of
the C# engine's arithmetic, the distillation loss, the drafting simulation, the schedule, prompts and rows.
Needs torch (1.13 or later) and numpy; safetensors is used when installed. Exit status 0 when everything passes.
"""
from __future__ import annotations

import json
import math
import os
import struct
import sys
import tempfile

import numpy as np
import torch

from adapter import EXPORT_NAMES, KangarooAdapter, rope_theta, soft_cross_entropy
from drafting import simulate_chain
from modelio import Budget, LayerOutput, safetensors_header
from textdata import Document, cut_prompts, eval_row_indices, pack_rows

CHECKS = []


def check(fn):
    CHECKS.append(fn)
    return fn


def reference_adapter(adapter: KangarooAdapter, x: np.ndarray, theta: float) -> np.ndarray:
    """The C# engine's adapter (KangarooAdapter.ForwardStaged with the CPU kernels), one row and head at a time,
    in float32 numpy: RmsNorm, MatMul, Rope, Attention over keys 0..position, MatMul, AddRmsNorm."""
    f32 = np.float32
    w = {name: t.detach().numpy().astype(f32) for name, t in adapter.named_parameters()}
    eps = f32(adapter.norm.eps)
    heads, kv_heads, d = adapter.heads, adapter.kv_heads, adapter.head_dim
    inv = np.array([f32(1.0) / np.power(f32(theta), f32(2 * i) / f32(d)) for i in range(d // 2)], dtype=f32)

    def rms(v, g):
        return (v * (f32(1) / np.sqrt(np.dot(v, v) / f32(len(v)) + eps))) * g

    def rope(vec, position, n):
        out = vec.copy()
        for h in range(n):
            for i in range(d // 2):
                angle = f32(position) * inv[i]
                c, s = f32(math.cos(angle)), f32(math.sin(angle))
                a, b = vec[h * d + i], vec[h * d + d // 2 + i]
                out[h * d + i] = a * c - b * s
                out[h * d + d // 2 + i] = b * c + a * s
        return out

    def head_norm(vec, n, g):
        if not adapter.head_norms:
            return vec
        return np.concatenate([rms(vec[h * d:(h + 1) * d], g) for h in range(n)]).astype(f32)

    batch, t_len, _ = x.shape
    result = np.zeros_like(x, dtype=f32)
    for b in range(batch):
        keys, values = [], []
        for t in range(t_len):
            a = rms(x[b, t], w["input_layernorm.weight"])
            def project(name):
                y = w[name + ".weight"] @ a
                return y + w[name + ".bias"] if name + ".bias" in w else y
            q = rope(head_norm(project("q_proj"), heads, w.get("q_norm.weight")), t, heads)
            keys.append(rope(head_norm(project("k_proj"), kv_heads, w.get("k_norm.weight")), t, kv_heads))
            values.append(project("v_proj"))
            attended = np.zeros(heads * d, dtype=f32)
            for h in range(heads):
                g = h // (heads // kv_heads)
                scores = np.array([np.dot(q[h * d:(h + 1) * d], k[g * d:(g + 1) * d]) for k in keys], dtype=f32)
                scores *= f32(1) / np.sqrt(f32(d))
                p = np.exp(scores - scores.max())
                p /= p.sum()
                attended[h * d:(h + 1) * d] = sum(p[j] * values[j][g * d:(g + 1) * d] for j in range(t + 1))
            h_row = x[b, t] + w["o_proj.weight"] @ attended + (w["o_proj.bias"] if "o_proj.bias" in w else f32(0))
            result[b, t] = rms(h_row, w["norm.weight"])
    return result


def random_adapter(seed: int = 0, hidden: int = 20, heads: int = 4, kv_heads: int = 2, head_dim: int = 6,
                   theta: float = 10000.0, head_norms: bool = False, qkv_bias: bool = False,
                   output_bias: bool = False) -> KangarooAdapter:
    torch.manual_seed(seed)
    adapter = KangarooAdapter(hidden, heads, kv_heads, head_dim, 1e-5, theta, head_norms=head_norms, qkv_bias=qkv_bias,
                              output_bias=output_bias)
    with torch.no_grad():
        for p in adapter.parameters():
            p.copy_(torch.randn_like(p) * (0.3 if p.dim() == 2 else 1.0) + (1.0 if p.dim() == 1 else 0.0))
    return adapter


@check
def adapter_matches_engine_reference():
    # hidden (20) differs from heads * head_dim (24) and kv heads are shared (GQA 2:1) to catch reshape mistakes.
    # Qwen3 bases: each query and key head RMS-normalized before RoPE (q_norm, k_norm).
    # Qwen2 bases: q/k/v biases; Llama with attention_bias: o_proj's too.
    for theta, head_norms, qkv_bias, output_bias in ((10000.0, False, False, False), (500000.0, False, False, False),
                                                     (1000000.0, True, False, False), (1000000.0, False, True, False),
                                                     (10000.0, False, True, True)):
        adapter = random_adapter(theta=theta, head_norms=head_norms, qkv_bias=qkv_bias, output_bias=output_bias)
        x = torch.randn(2, 9, 20) * 2
        got = adapter(x).detach().numpy()
        want = reference_adapter(adapter, x.numpy(), theta)
        err = np.abs(got - want).max() / np.abs(want).max()
        assert err < 2e-5, (f"adapter differs from the engine reference by {err:.2e} (theta {theta}, head norms {head_norms}, "
                            f"biases {qkv_bias}/{output_bias})")


@check
def head_norm_adapters_export_and_load_their_norms():
    config = {"model_type": "qwen3", "hidden_size": 20, "num_attention_heads": 4, "num_key_value_heads": 2,
              "head_dim": 6, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0}
    adapter = KangarooAdapter.from_config(config)
    assert adapter.head_norms and not KangarooAdapter.from_config({**config, "model_type": "llama"}).head_norms
    qwen2 = KangarooAdapter.from_config({**config, "model_type": "qwen2", "attention_bias": True})
    assert qwen2.qkv_bias and not qwen2.output_bias and not qwen2.head_norms
    assert set(qwen2.export_state()) == set(EXPORT_NAMES) | {f"layers.0.self_attn.{p}_proj.bias" for p in "qkv"}
    llama = KangarooAdapter.from_config({**config, "model_type": "llama", "attention_bias": True})
    assert llama.qkv_bias and llama.output_bias
    assert not KangarooAdapter.from_config({**config, "model_type": "mistral", "attention_bias": True}).qkv_bias
    state = adapter.export_state()
    assert set(state) == set(EXPORT_NAMES) | {"layers.0.self_attn.q_norm.weight", "layers.0.self_attn.k_norm.weight"}
    assert tuple(state["layers.0.self_attn.q_norm.weight"].shape) == (6,)
    other = KangarooAdapter.from_config(config)
    other.load_exported(state)
    missing = {n: t for n, t in state.items() if n != "layers.0.self_attn.k_norm.weight"}
    try:
        KangarooAdapter.from_config(config).load_exported(missing)
    except ValueError as e:
        assert "k_norm" in str(e)
    else:
        raise AssertionError("an adapter checkpoint without k_norm loaded")


@check
def adapter_is_causal():
    adapter = random_adapter(1)
    x = torch.randn(1, 8, 20)
    y = x.clone()
    y[0, 5:] += torch.randn(3, 20)
    a, b = adapter(x), adapter(y)
    assert torch.allclose(a[0, :5], b[0, :5], atol=1e-6), "a later position changed an earlier output"
    assert not torch.allclose(a[0, 5:], b[0, 5:]), "later positions did not change"


@check
def adapter_rows_do_not_mix():
    adapter = random_adapter(2)
    x = torch.randn(3, 6, 20)
    whole = adapter(x)
    alone = torch.cat([adapter(x[i:i + 1]) for i in range(3)])
    assert torch.allclose(whole, alone, atol=1e-6)


@check
def export_names_shapes_and_round_trip():
    adapter = random_adapter(3)
    state = adapter.export_state()
    assert set(state) == set(EXPORT_NAMES)
    shapes = {n: tuple(t.shape) for n, t in state.items()}
    assert shapes["layers.0.self_attn.q_proj.weight"] == (24, 20)
    assert shapes["layers.0.self_attn.k_proj.weight"] == (12, 20)
    assert shapes["layers.0.self_attn.v_proj.weight"] == (12, 20)
    assert shapes["layers.0.self_attn.o_proj.weight"] == (20, 24)
    assert shapes["layers.0.input_layernorm.weight"] == (20,) and shapes["norm.weight"] == (20,)
    assert all(t.dtype == torch.float16 and t.is_contiguous() for t in state.values())
    other = KangarooAdapter(20, 4, 2, 6, 1e-5, 10000.0)
    other.load_exported(state)
    for name, attr in EXPORT_NAMES.items():
        assert torch.equal(dict(other.named_parameters())[attr].half(), state[name])


@check
def save_and_load_adapter_files():
    try:
        import safetensors  # noqa: F401
    except ImportError:
        return "skipped (safetensors not installed)"
    from adapter import load_adapter, save_adapter
    adapter = random_adapter(4)
    config = {"hidden_size": 20, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 6,
              "rms_norm_eps": 1e-5, "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0},
              "num_hidden_layers": 12, "vocab_size": 100}
    with tempfile.TemporaryDirectory() as d:
        save_adapter(adapter, config, 2, d)
        saved = json.load(open(os.path.join(d, "config.json")))
        assert saved["num_hidden_layers"] == 1 and saved["exit_layer"] == 2
        header = safetensors_header(os.path.join(d, "model.safetensors"))
        assert set(header) == set(EXPORT_NAMES) and {t["dtype"] for t in header.values()} == {"F16"}
        loaded, layer = load_adapter(d)
        assert layer == 2
        rounded = KangarooAdapter(20, 4, 2, 6, 1e-5, 10000.0)
        rounded.load_exported(adapter.export_state())   # the float16 weights, as saved
        x = torch.randn(1, 5, 20)
        assert torch.equal(loaded(x), rounded(x))


@check
def safetensors_header_parser():
    header = {"__metadata__": {"format": "pt"}, "a": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]}}
    blob = json.dumps(header).encode()
    with tempfile.NamedTemporaryFile(suffix=".safetensors", delete=False) as f:
        f.write(struct.pack("<Q", len(blob)) + blob + b"\0" * 4)
    try:
        assert safetensors_header(f.name) == {"a": header["a"]}
    finally:
        os.remove(f.name)


@check
def rope_theta_from_either_config_style():
    assert rope_theta({"rope_parameters": {"rope_type": "default", "rope_theta": 5e5}}) == 5e5
    assert rope_theta({"rope_theta": 1e4, "rope_scaling": None}) == 1e4
    try:
        rope_theta({"rope_parameters": {"rope_type": "llama3", "rope_theta": 5e5, "factor": 8.0}})
    except ValueError:
        return
    raise AssertionError("rope scaling was accepted")


@check
def soft_cross_entropy_properties():
    torch.manual_seed(0)
    teacher = torch.randn(10, 50)
    labels = teacher.argmax(-1)
    student = torch.randn(10, 50)
    hard = soft_cross_entropy(student, torch.nn.functional.one_hot(labels, 50).float() * 1e4)
    assert torch.allclose(hard, torch.nn.functional.cross_entropy(student, labels), atol=1e-5)
    # Minimised (at the teacher's entropy) when the student equals the teacher; the gradient vanishes there.
    s = teacher.clone().requires_grad_(True)
    loss = soft_cross_entropy(s, teacher)
    loss.backward()
    entropy = -(teacher.softmax(-1) * teacher.log_softmax(-1)).sum(-1).mean()
    assert torch.allclose(loss, entropy, atol=1e-5) and s.grad.abs().max() < 1e-6
    assert soft_cross_entropy(teacher + torch.randn(10, 50), teacher) > loss


@check
def chain_simulation_cases():
    n = 30
    same = list(range(n))
    high = [0.9] * n
    # Every draft right and confident: gamma drafts + 1 per round, the last round cut by the range end.
    s = simulate_chain(same, high, same, 0, 14, eta=0.6, gamma=6)
    assert (s.rounds, s.tokens, s.accepted, s.drafts) == (2, 14, 12, 12), s
    # Every draft wrong: 1 token and 1 (rejected) draft per round; the last token is the verifier's alone.
    wrong = [t + 1 for t in same]
    s = simulate_chain(wrong, high, same, 0, 10, eta=0.6, gamma=6)
    assert (s.rounds, s.tokens, s.accepted, s.drafts) == (10, 10, 0, 9), s
    # A low-confidence draft is still verified (accepted when right), then drafting stops.
    low = [0.5] * n
    s = simulate_chain(same, low, same, 0, 10, eta=0.6, gamma=6)
    assert (s.rounds, s.tokens, s.accepted, s.drafts) == (5, 10, 5, 5), s
    # eta = 0 never stops early for confidence.
    s = simulate_chain(same, [0.01] * n, same, 0, 8, eta=0.0, gamma=6)
    assert (s.rounds, s.tokens) == (2, 8), s
    # Draft k comes from position p + k: a mismatch at position 2 ends the first round after 3 drafts, 2 accepted;
    # the verifier's token is then position 2's and the next round starts at 3.
    target = list(same)
    target[2] = 99
    s = simulate_chain(same, high, target, 0, 6, eta=0.6, gamma=6)
    assert (s.rounds, s.tokens, s.accepted, s.drafts) == (2, 6, 4, 5), s
    # A range that starts mid-sequence (greedy: the first predicting position is the last prompt token).
    s = simulate_chain(same, high, same, 5, 12, eta=0.6, gamma=3)
    assert (s.rounds, s.tokens, s.accepted) == (2, 7, 5), s


@check
def budget_schedule():
    b = Budget(1.0, warmup=10, steps=100, seconds=None)
    assert abs(b.lr(0) - 0.1) < 1e-9 and abs(b.lr(9) - 1.0) < 1e-9
    assert abs(b.lr(10) - 1.0) < 1e-9 and abs(b.lr(100) - 0.1) < 1e-9
    assert all(b.lr(i) >= b.lr(i + 1) for i in range(10, 100))
    steps = 0
    while b.keep_going(steps, lambda: None):
        steps += 1
    assert steps == 100
    timed = Budget(1.0, warmup=10, steps=None, seconds=0.2)
    steps = 0
    while timed.keep_going(steps, lambda: None):
        steps += 1
    assert timed.total == steps and steps > 10


@check
def layer_output_capture():
    class Layer(torch.nn.Module):
        def __init__(self, as_tuple):
            super().__init__()
            self.as_tuple = as_tuple

        def forward(self, x):
            return (x * 2, None) if self.as_tuple else x * 2

    class Inner(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = torch.nn.ModuleList([Layer(True), Layer(False)])

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = Inner()

        def forward(self, x):
            for layer in self.model.layers:
                x = layer(x)
                x = x[0] if isinstance(x, tuple) else x
            return x

    m = Model()
    with LayerOutput(m, 0) as first, LayerOutput(m, 1) as second:
        m(torch.ones(2))
    assert torch.equal(first.value, torch.full((2,), 2.0)) and torch.equal(second.value, torch.full((2,), 4.0))


@check
def rows_and_eval_indices():
    rows = pack_rows([np.array([5, 6, 7]), np.array([8])], bos=1, eos=2, seq_len=4)
    assert rows.tolist() == [[1, 5, 6, 7], [2, 1, 8, 2]]
    a, b = eval_row_indices(1000), eval_row_indices(1000)
    assert len(a) == 200 and np.array_equal(a, b) and np.all(np.diff(a) > 0)
    assert np.array_equal(eval_row_indices(50), np.arange(50))


@check
def prompts_are_deterministic_prefixes():
    body = "\n".join(f"    x{i} = {i} * 2  # some text to make the prompt long enough" for i in range(30))
    docs = [Document(f"pkg/m{j}.py", "pkg", "\n".join(f"def f{j}_{k}(a, b):\n{body}\n" for k in range(5)))
            for j in range(40)]
    many, few = cut_prompts(docs, 60), cut_prompts(docs, 10)
    assert many[:10] == few and many == cut_prompts(list(reversed(docs)), 60)
    for p in many:
        assert 100 <= len(p["prompt"]) <= 600 and p["prompt"].endswith("\n") and p["prompt"].startswith("def ")
    assert len({p["prompt"] for p in many}) == len(many)


def main() -> None:
    failed = 0
    for fn in CHECKS:
        try:
            note = fn()
            print(f"ok   {fn.__name__}" + (f": {note}" if note else ""))
        except Exception as e:  # report every check, then fail
            failed += 1
            print(f"FAIL {fn.__name__}: {type(e).__name__}: {e}")
    print(f"{len(CHECKS) - failed}/{len(CHECKS)} checks passed (torch {torch.__version__})")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
