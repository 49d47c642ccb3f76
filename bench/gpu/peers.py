"""The peers of issue #7 on the same weights and prompts as the engine: Hugging Face transformers generate() greedy,
transformers' early-exit self-speculation (assistant_early_exit = ℓ, no adapter), and the official Kangaroo
implementation (github Equationliu/Kangaroo, run through reference_shim.py) with the same adapter weights.

    python3 bench/gpu/peers.py --model DIR --outputs OUTPUTS.jsonl [--reference bench/gpu/reference] --json PEERS.json

OUTPUTS.jsonl is what `kangaroo bench --prompts … --outputs` wrote: each prompt's token ids as the engine saw them
(BOS included) and the engine's greedy tokens. Every peer gets exactly those prompt ids, the same new-token limit, stops
at EOS, and its tokens are compared with the engine's vanilla greedy ones. Throughput is measured the way the engine
reports it: decode tok/s = (new tokens − 1 per prompt) / (generation time − prompt time), where the prompt time is one
timed forward of the prompt by the same model in transformers; the first prompt is run once untimed (warm-up).
"""
import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def read_outputs(path):
    rows = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                row = json.loads(line)
                for key in ("prompt_ids", "vanilla_ids"):
                    if key not in row:
                        raise SystemExit(f"{path}, line {n}: no {key!r} (write it with kangaroo bench --outputs)")
                rows.append(row)
    if not rows:
        raise SystemExit(f"{path} holds no prompts")
    return rows


def synchronized_seconds(fn):
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    result = fn()
    torch.cuda.synchronize()
    return result, time.perf_counter() - t0


class Peer:
    """One decoding method: generate(prompt ids) -> new token ids (EOS stripped), timed per prompt."""

    def __init__(self, name, generate, reset=lambda: None):
        self.name, self.generate, self.reset = name, generate, reset


def run_peer(peer, rows, prompt_seconds, eos, max_new):
    peer.generate(rows[0]["prompt_ids"])  # warm-up: kernels, allocator, caches
    peer.reset()
    new_tokens = decode_tokens = 0
    total = decode = 0.0
    identical = prefix_identical = 0
    mismatches = []
    for i, row in enumerate(rows):
        ids, seconds = synchronized_seconds(lambda: peer.generate(row["prompt_ids"]))
        ids = ids[:max_new]
        if eos in ids:  # the engine does not return EOS; compare the text before it
            ids = ids[: ids.index(eos)]
        ours = row["vanilla_ids"]
        if ids == ours:
            identical += 1
        if ids == ours[: len(ids)] or ours == ids[: len(ours)]:
            prefix_identical += 1
        else:
            first = next(j for j, (a, b) in enumerate(zip(ids, ours)) if a != b)
            mismatches.append({"prompt": i, "first_difference": first, "peer_tokens": len(ids), "engine_tokens": len(ours)})
        new_tokens += len(ids)
        decode_tokens += max(len(ids) - 1, 0)
        total += seconds
        decode += max(seconds - prompt_seconds[i], 1e-9)
    result = {
        "prompts": len(rows),
        "new_tokens": new_tokens,
        "tok_s": decode_tokens / decode,
        "tok_s_with_prompts": new_tokens / total,
        "seconds": total,
        "identical_prompts": identical,
        "prefix_identical_prompts": prefix_identical,
        "mismatches": mismatches[:10],
    }
    print(f"{peer.name:<22} {new_tokens:6d} tokens  decode {result['tok_s']:8.1f} tok/s  (with prompts "
          f"{result['tok_s_with_prompts']:8.1f})  identical to the engine's vanilla greedy on {identical}/{len(rows)} "
          f"prompts, as a prefix on {prefix_identical}/{len(rows)}", flush=True)
    return result


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="the model directory (Hugging Face Llama + kangaroo-adapter/)")
    p.add_argument("--outputs", required=True, help="kangaroo bench --outputs file")
    p.add_argument("--reference", help="the official Kangaroo code (bench/gpu/fetch_reference.sh); skipped when absent")
    p.add_argument("--exit-layer", type=int, default=2)
    p.add_argument("--draft-steps", type=int, default=6, help="the official Kangaroo's γ (--steps there)")
    p.add_argument("--threshold", type=float, default=0.6, help="the official Kangaroo's η")
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--prompt-count", type=int, help="only the first N prompts of OUTPUTS (the engine's figures are "
                   "recomputed on the same ones)")
    p.add_argument("--json", required=True)
    args = p.parse_args()

    from transformers import LlamaForCausalLM
    import transformers

    rows = read_outputs(args.outputs)[: args.prompt_count]
    device = torch.device("cuda")
    model = LlamaForCausalLM.from_pretrained(args.model, dtype=torch.float16).to(device).eval()
    eos = model.config.eos_token_id
    eos = eos[0] if isinstance(eos, list) else eos

    def tensor(ids):
        return torch.tensor([ids], dtype=torch.long, device=device)

    @torch.no_grad()
    def prompt_pass(ids):
        return model(tensor(ids), use_cache=True).logits[0, -1].argmax().item()

    prompt_pass(rows[0]["prompt_ids"])
    prompt_seconds = [synchronized_seconds(lambda: prompt_pass(r["prompt_ids"]))[1] for r in rows]

    common = dict(max_new_tokens=args.max_tokens, do_sample=False, num_beams=1, eos_token_id=eos, pad_token_id=eos)

    @torch.no_grad()
    def hf_generate(ids, **extra):
        x = tensor(ids)
        out = model.generate(input_ids=x, attention_mask=torch.ones_like(x), **common, **extra)
        return out[0, len(ids):].tolist()

    @torch.no_grad()
    def hf_forward_loop(ids):
        """Greedy decoding as a plain loop over the model's forward with its KV cache: transformers' per-token cost
        without generate()'s machinery (logits processors, stopping criteria, cache bookkeeping)."""
        out = model(tensor(ids), use_cache=True)
        cache, new = out.past_key_values, []
        for _ in range(args.max_tokens):
            token = out.logits[0, -1].argmax().item()
            new.append(token)
            if token == eos or len(new) == args.max_tokens:
                break
            out = model(tensor([token]), past_key_values=cache, use_cache=True)
            cache = out.past_key_values
        return new

    # Figures are written after each peer, so a run cut short keeps what it measured (the official Kangaroo goes first).
    peers = [Peer("hf_vanilla", hf_generate),
             Peer(f"hf_early_exit_{args.exit_layer}", lambda ids: hf_generate(ids, assistant_early_exit=args.exit_layer)),
             Peer("hf_forward_loop", hf_forward_loop)]
    results = {"transformers": transformers.__version__, "torch": torch.__version__,
               "device": torch.cuda.get_device_name(), "model": os.path.abspath(args.model),
               "prompts": len(rows), "max_new_tokens": args.max_tokens, "exit_layer": args.exit_layer}
    results["prompt_seconds"] = sum(prompt_seconds)
    if all("vanilla_decode_seconds" in r for r in rows):  # the engine on exactly these prompts
        for mode in ("vanilla", "kangaroo"):
            tokens = sum(max(len(r[f"{mode}_ids"]) - 1, 0) for r in rows)
            results[f"engine_{mode}"] = {"prompts": len(rows), "tok_s": tokens / sum(r[f"{mode}_decode_seconds"] for r in rows)}
        print(f"engine on these prompts: vanilla {results['engine_vanilla']['tok_s']:.1f} tok/s, "
              f"Kangaroo {results['engine_kangaroo']['tok_s']:.1f} tok/s", flush=True)

    if args.reference and os.path.isdir(args.reference):
        import reference_shim
        reference = reference_shim.load(args.reference, args.model, args.exit_layer, device)
        results["reference_commit"] = reference.commit

        def official(ids):
            return reference.generate(ids, args.max_tokens, args.draft_steps, args.threshold)

        peers.insert(0, Peer("reference_kangaroo", official, reset=reference.accepted.clear))
    else:
        print(f"official Kangaroo: not run (no --reference folder {args.reference!r}; see bench/gpu/fetch_reference.sh)")

    for peer in peers:
        try:
            results[peer.name] = run_peer(peer, rows, prompt_seconds, eos, args.max_tokens)
            if peer.name == "reference_kangaroo":
                results[peer.name]["mean_accepted"] = reference.mean_accepted()
        except Exception as e:  # one failing peer must not hide the others' figures
            print(f"{peer.name}: FAILED: {type(e).__name__}: {e}", flush=True)
            results[peer.name] = {"error": f"{type(e).__name__}: {e}"}
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
