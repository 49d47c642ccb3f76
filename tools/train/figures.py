#!/usr/bin/env python3
"""Prints a model's training and evaluation figures as Markdown, for its model card (models/*/README.md).

Reads MODEL/train_log.json, MODEL/kangaroo-adapter/train_log.json and MODEL/eval.json (the last two when present).
"""
from __future__ import annotations

import argparse
import os

from textdata import read_json, run_main


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="model directory")
    args = p.parse_args()
    base = read_json(os.path.join(args.model, "train_log.json"))
    adapter_log = os.path.join(args.model, "kangaroo-adapter", "train_log.json")
    adapter = read_json(adapter_log) if os.path.exists(adapter_log) else None
    eval_path = os.path.join(args.model, "eval.json")
    ev = read_json(eval_path) if os.path.exists(eval_path) else None

    cfg = base["config"]
    rows = [
        ("architecture", f"Llama, {cfg['num_hidden_layers']} layers, hidden {cfg['hidden_size']}, "
                         f"{cfg['num_attention_heads']} heads ({cfg.get('num_key_value_heads')} KV), "
                         f"FFN {cfg['intermediate_size']}, vocabulary {cfg['vocab_size']}, untied head, float16"),
        ("parameters", f"{base['parameters'] / 1e6:.2f} M" + (f" + {adapter['parameters'] / 1e6:.2f} M adapter" if adapter else "")),
        ("base training", f"{base['steps']:,} steps of {base['batch'][0]} × {base['batch'][1]} tokens = "
                          f"{base['tokens_seen'] / 1e6:.1f} M tokens ({base['epochs']} epochs) in {base['seconds']['train']:.0f} s "
                          f"on {base['environment']['device']} ({base['tokens_per_second']:,} tokens/s)"),
        ("training loss", f"{base['loss']['first']} → {base['loss']['last']}"),
    ]
    if ev:
        rows.append(("held-out loss (perplexity)", f"{ev['heldout']['loss']} ({ev['heldout']['perplexity']}), "
                                                   f"{ev['heldout']['rows']} rows of {ev['heldout']['seq_len']} tokens"))
    if adapter:
        rows.append(("adapter training", f"exit layer ℓ = {adapter['exit_layer']}, {adapter['steps']:,} steps, "
                                         f"{adapter['tokens_seen'] / 1e6:.1f} M tokens in {adapter['seconds']['train']:.0f} s"))
    if ev and "teacher_forced" in ev:
        tf = ev["teacher_forced"]
        if "adapter_top1_agreement" in tf:
            rows.append(("top-1 agreement with the full model (held-out text)",
                         f"adapter {pct(tf['adapter_top1_agreement'])}; early exit at ℓ without adapter "
                         f"{pct(tf['early_exit_top1_agreement'])}"))
    if ev and "greedy" in ev:
        g = ev["greedy"]
        chains = "; ".join(f"η = {c['eta']}, γ = {c['gamma']}: {c['tokens_per_round']:.2f} tokens/round "
                           f"({c['drafts_per_round']:.2f} drafts)" for c in g["chain"])
        rows.append((f"Kangaroo greedy, simulated on {g['prompts']} prompts × {g['new_tokens_max']} own tokens", chains))
    if ev and "chain" in ev.get("teacher_forced", {}):
        chains = "; ".join(f"η = {c['eta']}: {c['tokens_per_round']:.2f}" for c in ev["teacher_forced"]["chain"])
        rows.append(("same, teacher-forced on held-out text", chains))

    print("| figure | value |")
    print("| --- | --- |")
    for name, value in rows:
        print(f"| {name} | {value} |")
    print()
    print(f"Base: `{base['command']}`  ")
    if adapter:
        print(f"Adapter: `{adapter['command']}`  ")
    if ev:
        print(f"Evaluation: `{ev['command']}`")


if __name__ == "__main__":
    run_main(main)
