#!/usr/bin/env python3
"""Stage 4: Kangaroo's adapter for a trained base model (Liu et al. 2024), distilled from the full model.

The base is frozen and runs in bf16 autocast. For every training row one forward of the full model gives both the
hidden states leaving layer l (captured at the output of decoder layer l-1) and the full model's next-token
distribution; the adapter (adapter.py: attention-only layer + final norm) reads the layer-l states, the base LM head
(shared, frozen) turns its output into logits, and the loss is the soft cross-entropy to the full model's
distribution. The adapter's attention and input norm start as a copy of base layer l's, its final norm as the base's.

Before training, the warm-started adapter is checked against Hugging Face's own layer l: x + attention + layer l's
MLP must reproduce the output of layer l (float32). This ties the adapter module (and so the C# engine, which computes
the same thing) to transformers' Llama attention, RoPE and GQA.

Writes OUT/config.json (the base config with num_hidden_layers 1 and "exit_layer"), OUT/model.safetensors
(float16: layers.0.input_layernorm.weight, layers.0.self_attn.{q,k,v,o}_proj.weight, norm.weight), OUT/train_log.json.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from adapter import KangarooAdapter, save_adapter, soft_cross_entropy
from modelio import (Budget, LayerOutput, autocast_bf16, batches, decoder_layers, environment, load_model, pick_device,
                     read_config)
from textdata import (SEQ_LEN, StageError, command_line, eval_row_indices, read_json, replay_command, run_main,
                      token_rows, tokenizer_path, write_json)

# Defaults by the base model's preset (read from its train_log.json): (seconds, steps).
BUDGETS = {"demo": (60, None), "bench": (90, None), "smoke": (None, 20)}
SEED = 1
LOG_EVERY = 25


def warm_start(adapter: KangarooAdapter, model, exit_layer: int) -> None:
    layer = decoder_layers(model)[exit_layer]
    attn = layer.self_attn
    for proj in ("q_proj", "k_proj", "v_proj", "o_proj"):
        if getattr(attn, proj).bias is not None:
            raise StageError(f"base layer {exit_layer} {proj} has a bias; the adapter format has none")
    with torch.no_grad():
        adapter.input_layernorm.weight.copy_(layer.input_layernorm.weight)
        for proj in ("q_proj", "k_proj", "v_proj", "o_proj"):
            getattr(adapter, proj).weight.copy_(getattr(attn, proj).weight)
        adapter.norm.weight.copy_(model.model.norm.weight)


@torch.no_grad()
def check_against_hf_layer(adapter: KangarooAdapter, model, exit_layer: int, rows: np.ndarray, device) -> dict:
    """The warm-started adapter's residual h plus layer l's MLP must give layer l's output (float32, no autocast).
    Also compares the captured layer-l input with transformers' output_hidden_states[l] (informational)."""
    x_ids = torch.from_numpy(rows[:2, :128]).to(device).long()
    with LayerOutput(model, exit_layer - 1) as before, LayerOutput(model, exit_layer) as after:
        out = model(input_ids=x_ids, use_cache=False, output_hidden_states=True)
    x, y = before.value.float(), after.value.float()
    layer = decoder_layers(model)[exit_layer]
    h = adapter.residual(x)
    y_ref = h + layer.mlp(layer.post_attention_layernorm(h))
    error = ((y - y_ref).abs().max() / y.abs().max()).item()
    if not error < 1e-3:
        raise StageError(f"the adapter's attention does not reproduce transformers' layer {exit_layer} "
                         f"(relative error {error:.2e}): RoPE/GQA/attention conventions differ")
    hidden_states = getattr(out, "hidden_states", None)
    hs_error = None
    if hidden_states is not None and len(hidden_states) > exit_layer:
        hs_error = ((hidden_states[exit_layer].float() - x).abs().max() / x.abs().max()).item()
    if hs_error is None or hs_error > 1e-5:
        print(f"note: output_hidden_states[{exit_layer}] differs from the layer-{exit_layer - 1} output "
              f"(relative {hs_error}); the adapter uses the layer output, as the engine does", flush=True)
    return {"layer_relative_error": error, "hidden_states_relative_error": hs_error}


@torch.no_grad()
def agreement(adapter, model, rows: np.ndarray, exit_layer: int, device, batch: int = 16) -> dict:
    """Teacher-forced top-1 agreement with the full model on the rows: adapter, and early exit without adapter
    (base final norm + LM head on the layer-l states); plus the distillation loss."""
    n = agree = agree_exit = 0
    loss = 0.0
    for i in range(0, len(rows), batch):
        x_ids = torch.from_numpy(rows[i:i + batch]).to(device).long()
        with autocast_bf16(device):
            with LayerOutput(model, exit_layer - 1) as cap:
                full = model(input_ids=x_ids, use_cache=False).logits
            hidden = cap.value
            drafted = model.lm_head(adapter(hidden))
            exited = model.lm_head(model.model.norm(hidden))
        target = full.argmax(-1)
        agree += (drafted.argmax(-1) == target).sum().item()
        agree_exit += (exited.argmax(-1) == target).sum().item()
        loss += soft_cross_entropy(drafted, full).item() * target.numel()
        n += target.numel()
    return {"adapter_top1_agreement": round(agree / n, 4), "early_exit_top1_agreement": round(agree_exit / n, 4),
            "soft_cross_entropy": round(loss / n, 4), "positions": n}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="base model directory (train_base.py)")
    p.add_argument("--corpus", required=True, help="corpus directory (corpus.py)")
    p.add_argument("--exit-layer", type=int, default=2, help="l: the adapter reads the states leaving layer l (default 2)")
    p.add_argument("--out", help="adapter directory (default MODEL/kangaroo-adapter)")
    p.add_argument("--seconds", type=float, help="training time budget (default by the base preset: demo 60, bench 90)")
    p.add_argument("--steps", type=int, help="exact number of steps (overrides --seconds)")
    p.add_argument("--batch", type=int, default=64, help="rows of 512 tokens per step (default 64)")
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (default 1e-3)")
    p.add_argument("--warmup", type=int, default=50, help="warmup steps (default 50)")
    p.add_argument("--workers", type=int, default=0, help="tokenizing processes (default: one per core)")
    args = p.parse_args()
    started = time.time()
    out = args.out or os.path.join(args.model, "kangaroo-adapter")

    # The base model's train_log.json gives the preset (budget defaults, size limit); a model not trained here has none.
    base_log_path = os.path.join(args.model, "train_log.json")
    base_log = read_json(base_log_path) if os.path.exists(base_log_path) else {}
    preset = base_log.get("preset")
    default_seconds, default_steps = BUDGETS.get(preset, (60, None))
    steps = args.steps or (None if args.seconds else default_steps)
    seconds = args.seconds or default_seconds

    model_file = tokenizer_path(args.model)
    train_rows = token_rows(args.corpus, "train", model_file, workers=args.workers)
    heldout_rows = token_rows(args.corpus, "heldout", model_file, workers=args.workers)
    eval_rows = heldout_rows[eval_row_indices(len(heldout_rows))]
    tokenize_seconds = time.time() - started

    device = pick_device()
    model = load_model(args.model, device)
    config = read_config(args.model)
    layers = config["num_hidden_layers"]
    if not 1 <= args.exit_layer < layers:
        raise StageError(f"--exit-layer must be in [1, {layers - 1}] for a model of {layers} layers")

    torch.manual_seed(SEED)
    adapter = KangarooAdapter.from_config(config).to(device)
    warm_start(adapter, model, args.exit_layer)
    check = check_against_hf_layer(adapter, model, args.exit_layer, eval_rows, device)
    before = agreement(adapter, model, eval_rows, args.exit_layer, device)
    print(f"warm start: adapter agreement {before['adapter_top1_agreement']}, early exit "
          f"{before['early_exit_top1_agreement']}; layer check relative error {check['layer_relative_error']:.1e}",
          flush=True)

    adapter.train()
    optimizer = torch.optim.AdamW(adapter.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.0)
    budget = Budget(args.lr, args.warmup, steps, seconds)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    data = batches(torch.from_numpy(train_rows).to(device), args.batch, SEED)
    curve, step, tokens = [], 0, 0
    window, window_agree, window_steps = torch.zeros((), device=device), torch.zeros((), device=device), 0
    lr = args.lr
    while budget.keep_going(step, sync):
        lr = budget.lr(step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        x_ids, _ = next(data)
        with torch.no_grad(), autocast_bf16(device):
            with LayerOutput(model, args.exit_layer - 1) as cap:
                full = model(input_ids=x_ids, use_cache=False).logits
        with autocast_bf16(device):
            drafted = model.lm_head(adapter(cap.value.detach()))
        loss = soft_cross_entropy(drafted, full)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(adapter.parameters(), 1.0)
        optimizer.step()
        step += 1
        tokens += x_ids.numel()
        window += loss.detach()
        window_agree += (drafted.detach().argmax(-1) == full.argmax(-1)).float().mean()
        window_steps += 1
        if step % LOG_EVERY == 0 or step == 1:
            entry = {"step": step, "tokens": tokens, "loss": round((window / window_steps).item(), 4),
                     "agreement": round((window_agree / window_steps).item(), 4), "lr": float(f"{lr:.4g}"),
                     "seconds": round(budget.elapsed(), 1)}
            curve.append(entry)
            print(f"step {step}/{budget.total or '?'} loss {entry['loss']:.4f} agreement {entry['agreement']:.3f} "
                  f"lr {lr:.2e} {tokens / budget.elapsed():,.0f} tok/s", flush=True)
            window.zero_()
            window_agree.zero_()
            window_steps = 0
    sync()
    train_seconds = budget.elapsed()
    if window_steps:
        curve.append({"step": step, "tokens": tokens, "loss": round((window / window_steps).item(), 4),
                      "agreement": round((window_agree / window_steps).item(), 4), "lr": float(f"{lr:.4g}"),
                      "seconds": round(train_seconds, 1)})

    adapter.eval()
    after = agreement(adapter, model, eval_rows, args.exit_layer, device)
    save_adapter(adapter, config, args.exit_layer, out)
    adapter_bytes = os.path.getsize(os.path.join(out, "model.safetensors"))
    limit = (base_log.get("size_bytes") or {}).get("limit_with_adapter")
    total_bytes = adapter_bytes + os.path.getsize(os.path.join(args.model, "model.safetensors"))
    if limit and total_bytes > limit:
        raise StageError(f"model.safetensors + adapter = {total_bytes:,} bytes, over the preset's limit of {limit:,}")

    log = {
        "stage": "adapter",
        "base_preset": preset,
        "command": command_line(),
        "reproduce": replay_command(step),
        "seed": SEED,
        "environment": environment(device),
        "exit_layer": args.exit_layer,
        "parameters": sum(t.numel() for t in adapter.parameters()),
        "batch": [args.batch, SEQ_LEN],
        "lr": args.lr,
        "steps": step,
        "tokens_seen": tokens,
        "epochs": round(tokens / train_rows.size, 3),
        "stopped_by_time": budget.stopped_by_time,
        "tokens_per_second": round(tokens / train_seconds) if train_seconds else None,
        "hf_layer_check": check,
        "loss": {"first": curve[0]["loss"] if curve else None, "last": curve[-1]["loss"] if curve else None,
                 "log_every": LOG_EVERY, "curve": curve},
        "heldout_warm_start": before,
        "heldout": after,
        "size_bytes": {"adapter": adapter_bytes, "with_base": total_bytes, "limit": limit},
        "seconds": {"tokenize": round(tokenize_seconds, 1), "train": round(train_seconds, 1),
                    "total": round(time.time() - started, 1)},
    }
    write_json(os.path.join(out, "train_log.json"), log)
    print(f"summary: adapter l={args.exit_layer} {log['parameters'] / 1e6:.2f}M params, {step} steps in "
          f"{train_seconds:.0f} s; held-out top-1 agreement {before['adapter_top1_agreement']} -> "
          f"{after['adapter_top1_agreement']} (early exit without adapter {after['early_exit_top1_agreement']}) -> {out}")


if __name__ == "__main__":
    run_main(main)
