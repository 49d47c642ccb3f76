#!/usr/bin/env python3
"""Stage 3: a Llama base model trained from scratch on the corpus (Hugging Face LlamaForCausalLM), saved in float16.

Every document is BOS + ids + EOS; the documents are concatenated in corpus order and cut into rows of 512 tokens.
Batches are drawn in a seeded random order (a new permutation each epoch). bf16 autocast on CUDA, AdamW, linear
warmup then cosine decay to 10% of the peak, weight decay 0.1 on matrices, gradient clipping at 1.0.

A run lasts --seconds (the preset's budget) or exactly --steps steps; a timed run fixes its step count after a few
calibration steps, and train_log.json records the `--steps` command that replays it (same data order, same
schedule; GPU kernels are not bit-deterministic, so the weights agree only approximately).

Writes OUT/config.json, model.safetensors (one file, float16), generation_config.json, tokenizer.model,
tokenizer_config.json and train_log.json.
"""
from __future__ import annotations

import argparse
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from textdata import (SEQ_LEN, StageError, command_line, eval_row_indices, load_tokenizer, read_json, replay_command,
                      run_main, token_rows, tokenizer_path, write_json)
from modelio import Budget, autocast_bf16, batches, environment, heldout_loss, pick_device, safetensors_header


@dataclass(frozen=True)
class Preset:
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    intermediate: int
    lr: float
    batch: int
    warmup: int
    seconds: float | None = None
    steps: int | None = None
    size_limit: int | None = None   # bytes of model.safetensors plus the adapter's, both float16


PRESETS = {
    # ~7.8 M parameters: 15.6 MB in float16, 15.8 MB with its adapter.
    "demo": Preset(layers=12, hidden=192, heads=6, kv_heads=2, intermediate=512, lr=3e-3, batch=64, warmup=100,
                   seconds=150, size_limit=16_000_000),
    "bench": Preset(layers=24, hidden=512, heads=8, kv_heads=8, intermediate=1408, lr=1.5e-3, batch=64, warmup=200,
                    seconds=300),
    "smoke": Preset(layers=3, hidden=64, heads=4, kv_heads=2, intermediate=128, lr=3e-3, batch=8, warmup=5, steps=30),
}
SEED = 0
LOG_EVERY = {"demo": 50, "bench": 50, "smoke": 5}


def adapter_parameters(p: Preset) -> int:
    head_dim = p.hidden // p.heads
    return 2 * p.hidden + 2 * p.hidden * p.heads * head_dim + 2 * p.hidden * p.kv_heads * head_dim


def build_model(p: Preset, vocab: int, bos: int, eos: int):
    from transformers import LlamaConfig, LlamaForCausalLM
    theta = 10000.0
    config = LlamaConfig(
        vocab_size=vocab, hidden_size=p.hidden, intermediate_size=p.intermediate, num_hidden_layers=p.layers,
        num_attention_heads=p.heads, num_key_value_heads=p.kv_heads, head_dim=p.hidden // p.heads,
        hidden_act="silu", max_position_embeddings=2048, rms_norm_eps=1e-5, initializer_range=0.02,
        rope_parameters={"rope_type": "default", "rope_theta": theta}, tie_word_embeddings=False,
        attention_bias=False, mlp_bias=False, bos_token_id=bos, eos_token_id=eos, pad_token_id=None)
    effective = (getattr(config, "rope_parameters", None) or {}).get("rope_theta", getattr(config, "rope_theta", None))
    if effective != theta:
        raise StageError(f"LlamaConfig did not take rope_theta {theta} (it has {effective})")
    torch.manual_seed(SEED)
    model = LlamaForCausalLM(config)
    if model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr():
        raise StageError("the LM head is tied to the embeddings; the presets need an untied head")
    return model


def expected_tensor_names(layers: int) -> set[str]:
    names = {"model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"}
    for i in range(layers):
        for part in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                     "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj", "input_layernorm", "post_attention_layernorm"):
            names.add(f"model.layers.{i}.{part}.weight")
    return names


def save(model, out: str, tokenizer_dir: str, layers: int, bos: int, eos: int) -> int:
    """Writes the model directory; returns the size of model.safetensors. Checks what was written."""
    os.makedirs(out, exist_ok=True)
    # Outputs of an earlier run into the same directory would not match the new weights.
    for stale in ("model.safetensors.index.json", "pytorch_model.bin", "eval.json", "kangaroo-adapter"):
        path = os.path.join(out, stale)
        if os.path.exists(path):
            print(f"removing {path} (from an earlier run)")
            if os.path.isdir(path):
                shutil.rmtree(path)
            else:
                os.remove(path)
    model.half()
    model.save_pretrained(out, max_shard_size="100GB")   # transformers 5 always writes safetensors

    weights = os.path.join(out, "model.safetensors")
    if not os.path.exists(weights) or os.path.exists(os.path.join(out, "model.safetensors.index.json")):
        raise StageError(f"save_pretrained did not write a single model.safetensors in {out}")
    header = safetensors_header(weights)
    names, expected = set(header), expected_tensor_names(layers)
    if names != expected:
        raise StageError(f"unexpected tensor names in {weights}: extra {sorted(names - expected)[:5]}, "
                         f"missing {sorted(expected - names)[:5]}")
    not_f16 = sorted(n for n, t in header.items() if t["dtype"] != "F16")
    if not_f16:
        raise StageError(f"tensors not saved as float16: {not_f16[:5]}")

    config_path = os.path.join(out, "config.json")
    config = read_json(config_path)
    config["dtype"] = "float16"
    if "torch_dtype" in config:
        config["torch_dtype"] = "float16"
    write_json(config_path, config)
    write_json(os.path.join(out, "generation_config.json"), {"bos_token_id": bos, "eos_token_id": eos, "do_sample": False})
    shutil.copyfile(tokenizer_path(tokenizer_dir), os.path.join(out, "tokenizer.model"))
    shutil.copyfile(os.path.join(tokenizer_dir, "tokenizer_config.json"), os.path.join(out, "tokenizer_config.json"))
    return os.path.getsize(weights)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=sorted(PRESETS), required=True)
    p.add_argument("--corpus", required=True, help="corpus directory (corpus.py)")
    p.add_argument("--tokenizer", required=True, help="tokenizer directory (tokenizer.py)")
    p.add_argument("--out", required=True, help="model directory to write")
    p.add_argument("--seconds", type=float, help="training time budget (default: the preset's)")
    p.add_argument("--steps", type=int, help="exact number of steps (overrides --seconds)")
    p.add_argument("--workers", type=int, default=0, help="tokenizing processes (default: one per core)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (optional speed-up)")
    args = p.parse_args()
    preset = PRESETS[args.preset]
    started = time.time()

    sp = load_tokenizer(args.tokenizer)
    vocab, bos, eos = sp.get_piece_size(), sp.bos_id(), sp.eos_id()
    model_file = tokenizer_path(args.tokenizer)
    # Tokenize before CUDA starts (the encoder forks worker processes).
    train_rows = token_rows(args.corpus, "train", model_file, workers=args.workers)
    heldout_rows = token_rows(args.corpus, "heldout", model_file, workers=args.workers)
    eval_rows = heldout_rows[eval_row_indices(len(heldout_rows))]
    tokenize_seconds = time.time() - started
    print(f"{train_rows.size:,} training tokens ({len(train_rows):,} rows of {SEQ_LEN}), "
          f"{len(eval_rows)} held-out rows, {tokenize_seconds:.1f} s", flush=True)

    model = build_model(preset, vocab, bos, eos)
    params = sum(t.numel() for t in model.parameters())
    projected = 2 * (params + adapter_parameters(preset))
    if preset.size_limit and projected > preset.size_limit:
        raise StageError(f"preset {args.preset}: {params:,} parameters + adapter = {projected:,} bytes in float16, "
                         f"over the limit of {preset.size_limit:,}")

    device = pick_device()
    model.to(device).train()
    step_model = torch.compile(model) if args.compile else model
    decay = [t for t in model.parameters() if t.dim() >= 2]
    no_decay = [t for t in model.parameters() if t.dim() < 2]
    fused = {"fused": True} if device.type == "cuda" else {}
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                                  lr=preset.lr, betas=(0.9, 0.95), eps=1e-8, **fused)
    budget = Budget(preset.lr, preset.warmup, args.steps or (None if args.seconds else preset.steps),
                    args.seconds or preset.seconds)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    data = batches(torch.from_numpy(train_rows).to(device), preset.batch, SEED)

    print(f"training {args.preset}: {params:,} parameters on {device}", flush=True)
    curve, step, tokens, epoch = [], 0, 0, 0
    window_loss, window_steps, first_loss = torch.zeros((), device=device), 0, None
    log_every = LOG_EVERY[args.preset]
    while budget.keep_going(step, sync):
        lr = budget.lr(step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        x, epoch = next(data)
        with autocast_bf16(device):
            logits = step_model(input_ids=x, use_cache=False).logits
        loss = F.cross_entropy(logits[:, :-1].float().reshape(-1, vocab), x[:, 1:].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        step += 1
        tokens += x.numel()
        window_loss += loss.detach()
        window_steps += 1
        if step % log_every == 0 or step == 1:
            mean = (window_loss / window_steps).item()
            first_loss = mean if first_loss is None else first_loss
            elapsed = budget.elapsed()
            curve.append({"step": step, "tokens": tokens, "loss": round(mean, 4), "lr": float(f"{lr:.4g}"),
                          "seconds": round(elapsed, 1)})
            print(f"step {step}/{budget.total or '?'} loss {mean:.4f} lr {lr:.2e} epoch {epoch} "
                  f"{tokens / elapsed:,.0f} tok/s", flush=True)
            window_loss.zero_()
            window_steps = 0
    sync()
    train_seconds = budget.elapsed()
    if window_steps:
        curve.append({"step": step, "tokens": tokens, "loss": round((window_loss / window_steps).item(), 4),
                      "lr": float(f"{lr:.4g}"), "seconds": round(train_seconds, 1)})

    model.eval()
    eval_started = time.time()
    loss_bf16 = heldout_loss(model, eval_rows, device, bf16=True)
    eval_seconds = time.time() - eval_started
    size = save(model, args.out, args.tokenizer, preset.layers, bos, eos)
    if preset.size_limit and size + 2 * adapter_parameters(preset) + 4096 > preset.size_limit:
        raise StageError(f"{args.out}/model.safetensors is {size:,} bytes: with the adapter it would exceed "
                         f"{preset.size_limit:,}")

    log = {
        "stage": "base",
        "preset": args.preset,
        "preset_settings": asdict(preset),
        "command": command_line(),
        "reproduce": replay_command(step),
        "seed": SEED,
        "environment": environment(device),
        "config": read_json(os.path.join(args.out, "config.json")),
        "parameters": params,
        "parameters_without_embeddings": params - 2 * vocab * preset.hidden,
        "batch": [preset.batch, SEQ_LEN],
        "steps": step,
        "tokens_seen": tokens,
        "train_tokens": int(train_rows.size),
        "epochs": round(tokens / train_rows.size, 3),
        "stopped_by_time": budget.stopped_by_time,
        "tokens_per_second": round(tokens / train_seconds),
        "loss": {"first": round(first_loss, 4) if first_loss is not None else None,
                 "last": curve[-1]["loss"] if curve else None, "log_every": log_every, "curve": curve},
        "heldout": {"rows": len(eval_rows), "seq_len": SEQ_LEN, "loss": round(loss_bf16, 4),
                    "perplexity": round(math.exp(loss_bf16), 3),
                    "precision": ("bf16 autocast" if device.type == "cuda" else "float32") + ", float32 weights "
                                 "(evaluate.py reports the saved float16 model in float32)"},
        "size_bytes": {"model.safetensors": size, "limit_with_adapter": preset.size_limit},
        "seconds": {"tokenize": round(tokenize_seconds, 1), "train": round(train_seconds, 1),
                    "eval": round(eval_seconds, 1), "total": round(time.time() - started, 1)},
    }
    write_json(os.path.join(args.out, "train_log.json"), log)
    print(f"summary: base {args.preset} {params / 1e6:.2f}M params, {step} steps, {tokens / 1e6:.1f}M tokens in "
          f"{train_seconds:.0f} s ({log['tokens_per_second']:,} tok/s), loss {log['loss']['first']} -> "
          f"{log['loss']['last']}, held-out loss {loss_bf16:.4f} (ppl {log['heldout']['perplexity']}), "
          f"{size / 1e6:.2f} MB -> {args.out}")


if __name__ == "__main__":
    run_main(main)
