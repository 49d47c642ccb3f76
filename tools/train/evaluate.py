#!/usr/bin/env python3
"""Stage 5: figures for a model and its Kangaroo adapter, on the held-out package, in float32.

  (a) held-out loss and perplexity of the base model (the fixed 200 held-out rows of 512 tokens);
  (b) adapter top-1 agreement with the full model's argmax, teacher-forced on those rows;
  (c) the same for early exit at layer l WITHOUT adapter (base final norm + LM head on the layer-l states);
  (d) greedy Kangaroo chain drafting simulated exactly on the model's own greedy continuations: for each of the
      first 64 held-out prompts (prompts.py's), the full model greedily generates 128 tokens (transformers generate,
      do_sample=False); prompt + continuation are teacher-forced through the base (layers [0, l) captured) and the
      adapter, giving the adapter's argmax and top-1 probability at every position; drafting.py plays the rounds for
      (eta, gamma) in (0.6, 6), (0.4, 6), (0, 6) and reports tokens and drafts per round;
  (e) the teacher-forced variant of (d) on held-out text (target = the full model's argmax on the text) for comparison.

The model runs in float32 (its float16 weights upcast), close to the C# engine's float32 arithmetic on float16 weights.
Writes eval.json (default MODEL/eval.json).
"""
from __future__ import annotations

import argparse
import math
import os
import time

import numpy as np
import torch

from adapter import load_adapter
from drafting import ChainStats, simulate_chain
from modelio import LayerOutput, environment, heldout_loss, load_model, pick_device
from textdata import (SEQ_LEN, StageError, command_line, cut_prompts, eval_row_indices, load_tokenizer,
                      read_documents, run_main, token_rows, tokenizer_path, write_json)

SETTINGS = [(0.6, 6), (0.4, 6), (0.0, 6)]


@torch.no_grad()
def predictions(model, adapter, ids: torch.Tensor, exit_layer: int) -> dict[str, np.ndarray]:
    """Teacher-forced argmaxes over ids [B, T]: full model, early exit, adapter (+ its top-1 probability)."""
    with LayerOutput(model, exit_layer - 1) as cap:
        full = model(input_ids=ids, use_cache=False).logits.float()
    hidden = cap.value.float()
    result = {"full": full.argmax(-1).cpu().numpy(),
              "exit": model.lm_head(model.model.norm(hidden)).float().argmax(-1).cpu().numpy()}
    if adapter is not None:
        probs = torch.softmax(model.lm_head(adapter(hidden)).float(), dim=-1)
        conf, best = probs.max(-1)
        result["adapter"], result["conf"] = best.cpu().numpy(), conf.cpu().numpy()
    return result


def teacher_forced(model, adapter, rows: np.ndarray, exit_layer: int, device, batch: int = 8) -> dict:
    agree = agree_exit = n = 0
    chains = {s: ChainStats() for s in SETTINGS}
    for i in range(0, len(rows), batch):
        pred = predictions(model, adapter, torch.from_numpy(rows[i:i + batch]).to(device).long(), exit_layer)
        n += pred["full"].size
        agree_exit += int((pred["exit"] == pred["full"]).sum())
        if adapter is None:
            continue
        agree += int((pred["adapter"] == pred["full"]).sum())
        for r in range(len(pred["full"])):
            draft, conf, target = pred["adapter"][r].tolist(), pred["conf"][r].tolist(), pred["full"][r].tolist()
            for eta, gamma in SETTINGS:
                chains[(eta, gamma)].add(simulate_chain(draft, conf, target, 0, len(target), eta, gamma))
    out = {"positions": n, "early_exit_top1_agreement": round(agree_exit / n, 4)}
    if adapter is not None:
        out["adapter_top1_agreement"] = round(agree / n, 4)
        out["chain"] = [{"eta": eta, "gamma": gamma, **chains[(eta, gamma)].summary()} for eta, gamma in SETTINGS]
    return out


def greedy(model, adapter, prompts: list[dict], sp, exit_layer: int, new_tokens: int, device) -> dict:
    bos, eos = sp.bos_id(), sp.eos_id()
    chains = {s: ChainStats() for s in SETTINGS}
    generated = agree = consistent = 0
    for prompt in prompts:
        ids = torch.tensor([[bos] + sp.encode(prompt["prompt"])], device=device)
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens,
                                 do_sample=False, eos_token_id=eos, pad_token_id=eos)
        seq = out[0]
        start, end = ids.shape[1] - 1, seq.shape[0] - 1   # predicting positions of the continuation
        if end <= start:
            continue
        pred = predictions(model, adapter, seq[None], exit_layer)
        tokens = seq.tolist()
        target = tokens[1:] + [eos]                       # target[p] = the token generated at p + 1
        draft, conf = pred["adapter"][0].tolist(), pred["conf"][0].tolist()
        generated += end - start
        agree += sum(draft[q] == target[q] for q in range(start, end))
        # generate() with a KV cache and one full pass can differ in the last bits; near-ties then flip.
        consistent += sum(int(pred["full"][0][q]) == target[q] for q in range(start, end))
        for eta, gamma in SETTINGS:
            chains[(eta, gamma)].add(simulate_chain(draft, conf, target, start, end, eta, gamma))
    if not generated:
        raise StageError("no prompt produced a continuation")
    return {
        "prompts": len(prompts), "new_tokens_max": new_tokens, "generated_tokens": generated,
        "adapter_top1_agreement": round(agree / generated, 4),
        "full_pass_matches_generate": round(consistent / generated, 4),
        "chain": [{"eta": eta, "gamma": gamma, **chains[(eta, gamma)].summary()} for eta, gamma in SETTINGS],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="model directory (train_base.py)")
    p.add_argument("--adapter", help="adapter directory (default MODEL/kangaroo-adapter when present; 'none' to skip)")
    p.add_argument("--corpus", required=True, help="corpus directory (corpus.py)")
    p.add_argument("--exit-layer", type=int, help="l for the early-exit figure (default: the adapter's, else 2)")
    p.add_argument("--out", help="output JSON (default MODEL/eval.json)")
    p.add_argument("--prompts", type=int, default=64, help="greedy prompts (default 64)")
    p.add_argument("--new-tokens", type=int, default=128, help="greedy tokens per prompt (default 128)")
    p.add_argument("--workers", type=int, default=0, help="tokenizing processes (default: one per core)")
    args = p.parse_args()
    started = time.time()
    adapter_dir = args.adapter
    if adapter_dir is None:
        bundled = os.path.join(args.model, "kangaroo-adapter")
        adapter_dir = bundled if os.path.isdir(bundled) else "none"

    sp = load_tokenizer(args.model)
    heldout_rows = token_rows(args.corpus, "heldout", tokenizer_path(args.model), workers=args.workers)
    rows = heldout_rows[eval_row_indices(len(heldout_rows))]
    prompts = cut_prompts(read_documents(args.corpus, "heldout"), args.prompts)

    device = pick_device()
    model = load_model(args.model, device)
    adapter, exit_layer = None, args.exit_layer or 2
    if adapter_dir != "none":
        if not os.path.isdir(adapter_dir):
            raise StageError(f"adapter directory {adapter_dir} not found")
        adapter, exit_layer = load_adapter(adapter_dir)
        adapter.to(device).eval()
        if adapter.q_proj.in_features != model.config.hidden_size:
            raise StageError(f"adapter hidden size {adapter.q_proj.in_features} does not match the model's "
                             f"{model.config.hidden_size}")
        if args.exit_layer and args.exit_layer != exit_layer:
            raise StageError(f"--exit-layer {args.exit_layer}, but the adapter was trained for layer {exit_layer}")
    layers = model.config.num_hidden_layers
    if not 1 <= exit_layer < layers:
        raise StageError(f"exit layer {exit_layer} is outside [1, {layers - 1}] for a model of {layers} layers")

    loss = heldout_loss(model, rows, device, bf16=False)
    result = {
        "command": command_line(),
        "environment": environment(device),
        "model": os.path.abspath(args.model),
        "adapter": os.path.abspath(adapter_dir) if adapter is not None else None,
        "exit_layer": exit_layer,
        "precision": "float32 compute on the saved float16 weights",
        "heldout": {"rows": len(rows), "seq_len": SEQ_LEN, "loss": round(loss, 4),
                    "perplexity": round(math.exp(loss), 3)},
        "teacher_forced": teacher_forced(model, adapter, rows, exit_layer, device),
    }
    if adapter is not None:
        result["greedy"] = greedy(model, adapter, prompts, sp, exit_layer, args.new_tokens, device)
        result["notes"] = ("chain: drafts_per_round counts drafts up to the first rejected one (a real drafter keeps "
                           "drafting past it until its confidence stop); tokens_per_round is exact for greedy. "
                           "teacher_forced.chain uses the full model's argmax on held-out text as the verifier's "
                           "token (contexts are the text, not the model's own continuation).")
    result["seconds"] = round(time.time() - started, 1)
    out = args.out or os.path.join(args.model, "eval.json")
    write_json(out, result)

    tf = result["teacher_forced"]
    line = f"summary: held-out loss {loss:.4f} (ppl {result['heldout']['perplexity']}), early exit l={exit_layer} " \
           f"agreement {tf['early_exit_top1_agreement']}"
    if adapter is not None:
        g = {c["eta"]: c for c in result["greedy"]["chain"]}
        line += (f", adapter agreement {tf['adapter_top1_agreement']} (greedy {result['greedy']['adapter_top1_agreement']}); "
                 f"greedy tokens/round " + ", ".join(f"eta {e}: {g[e]['tokens_per_round']:.2f} "
                                                    f"({g[e]['drafts_per_round']:.2f} drafts)" for e, _ in SETTINGS))
    print(line + f" -> {out}")


if __name__ == "__main__":
    run_main(main)
