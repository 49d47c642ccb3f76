"""Assembles one hardware comparison report from what bench/gpu/run.sh measured: the JSON other tools read
(bench/results/<card>.json, the exact shape of issue #7) and a markdown table for bench/RESULTS.md.

    python3 bench/gpu/summarize.py DIR [--driver VERSION] [--out FILE.json] [--markdown FILE.md]

DIR holds llama7b.json (kangaroo bench at the 7B shape, CUDA), ilgpu7b.json (same on ILGPU; optional), hf7b.json
(hf_7b.py), bench_model.json (kangaroo bench --prompts on the bench model), peers.json (peers.py),
serve_load.json (bench/gpu/serve.sh's load client against kangaroo serve; optional) and bench_model_dir.txt (the model
directory, for its layer and parameter counts).
"""
import argparse
import json
import os
import struct
import sys


def load(directory, name, required=True):
    path = os.path.join(directory, name)
    if not os.path.exists(path):
        if required:
            raise SystemExit(f"summarize: {path} is missing (the step that writes it failed or was skipped)")
        return None
    with open(path) as f:
        return json.load(f)


def safetensors_parameters(path):
    """Element count of every tensor in a safetensors file, from its JSON header (no weights read)."""
    with open(path, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(size))
    total = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        n = 1
        for d in entry["shape"]:
            n *= d
        total += n
    return total


def peer_rate(peers, name):
    entry = (peers or {}).get(name) or {}
    return entry.get("tok_s")


def rounded(value, digits=1):
    return None if value is None else round(value, digits)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("dir")
    p.add_argument("--driver", default="")
    p.add_argument("--out")
    p.add_argument("--markdown")
    args = p.parse_args()
    d = args.dir

    l7b = load(d, "llama7b.json")
    ilgpu = load(d, "ilgpu7b.json", required=False)
    hf7b = load(d, "hf7b.json", required=False)
    bench = load(d, "bench_model.json")
    peers = load(d, "peers.json", required=False)
    serving = load(d, "serve_load.json", required=False)
    model_dir = open(os.path.join(d, "bench_model_dir.txt")).read().strip()
    config = json.load(open(os.path.join(model_dir, "config.json")))
    e2e = bench["end_to_end"]
    tree = bench.get("end_to_end_tree")

    read_tb_s, copy_tb_s = l7b["read_tb_s"], l7b["copy_tb_s"]
    vanilla_ms = l7b["decode_step_ms"]
    floor_ms = l7b["weight_bytes"] / (read_tb_s * 1e12) * 1e3
    verify = l7b["verify_ms"]
    report = {
        "device": l7b["device"],
        "driver": args.driver,
        "copy_tb_s": round(copy_tb_s, 3),
        "read_tb_s": round(read_tb_s, 3),
        "llama7b": {
            "vanilla_ms": round(vanilla_ms, 3),
            "floor_ms": round(floor_ms, 3),
            "bandwidth_fraction": round(floor_ms / vanilla_ms, 3),
            "verify8_over_verify1": round(verify["8"] / verify["1"], 3),
            # every verification timed, against verify 1 (kangaroo bench times 2, 4, 8, 16 and 64 rows by default)
            "verify_over_verify1": {k: round(v / verify["1"], 3) for k, v in sorted(verify.items(), key=lambda p: int(p[0])) if k != "1"},
            "launches_per_decode": l7b.get("launches_per_decode"),
            "draft_over_full": round(l7b["draft_step_ms"] / vanilla_ms, 3),
            "hf_eager_ms": round(hf7b["ms_per_token"], 2) if hf7b else None,
            "ilgpu_ms": round(ilgpu["decode_step_ms"], 1) if ilgpu else None,
        },
        "bench_model": {
            "layers": config["num_hidden_layers"],
            "params_m": round(safetensors_parameters(os.path.join(model_dir, "model.safetensors")) / 1e6, 2),
            "vanilla_tok_s": round(e2e["vanilla_tok_s"], 1),
            "kangaroo_tok_s": round(e2e["kangaroo_tok_s"], 1),
            "speedup": round(e2e["speedup"], 3),
            "mean_accepted": round(e2e["mean_accepted"], 3),
            "tree_speedup": round(tree["speedup"], 3) if tree else None,
            "tree_mean_accepted": round(tree["mean_accepted"], 3) if tree else None,
            # several sequences decoded together: total new tokens over the whole prompt set's wall time
            "batch": [{"sequences": b["sequences"], "vanilla_tok_s": round(b["vanilla_tok_s"], 1),
                       "kangaroo_tok_s": round(b["kangaroo_tok_s"], 1), "speedup": round(b["speedup"], 3),
                       "identical_outputs": bool(b["identical_outputs"])} for b in bench.get("batch", [])],
            # null where a peer did not run or failed (peers.json says why): never a made-up zero
            "hf_vanilla_tok_s": rounded(peer_rate(peers, "hf_vanilla")),
            "hf_early_exit_tok_s": rounded(peer_rate(peers, f"hf_early_exit_{e2e['exit_layer']}")),
            "reference_kangaroo_tok_s": rounded(peer_rate(peers, "reference_kangaroo")),
            "identical_outputs": bool(e2e["identical_outputs"]),
            # kangaroo serve under the load client: one entry per mode and client count; null where not run
            "serving": serving["load"] if serving else None,
        },
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")

    if args.markdown:
        b, l = report["bench_model"], report["llama7b"]
        lines = [
            f"{report['device']}, driver {report['driver']}: copy {copy_tb_s:.2f} TB/s, read {read_tb_s:.2f} TB/s (the engine's probes).",
            "",
            "| Llama-2-7B shape (F16, context 1024) | figure | target |",
            "| --- | --- | --- |",
            f"| vanilla decode step | {vanilla_ms:.2f} ms (floor {floor_ms:.2f} ms: {l['bandwidth_fraction']:.0%} of read bandwidth) | ≤ {floor_ms / 0.9:.2f} ms (90%) |",
            f"| verify 8 / verify 1 | {l['verify8_over_verify1']:.2f} | ≤ 1.10 |",
            f"| draft step / decode step | {l['draft_over_full']:.3f} | ≤ 0.12 |",
            f"| Hugging Face eager, one token after a {hf7b['prompt']}-token prompt | {l['hf_eager_ms']} ms |" if hf7b else "| Hugging Face eager | not measured | |",
            f"| ILGPU backend, decode step | {l['ilgpu_ms']} ms | |" if ilgpu else "| ILGPU backend | not measured (time) | |",
            "",
            f"| bench model ({b['layers']} layers, {b['params_m']} M params), {e2e['prompts']} prompts × ≤ {e2e['max_new_tokens']} tokens, greedy | decode tok/s | × our vanilla | tokens/round | identical to our vanilla |",
            "| --- | --- | --- | --- | --- |",
            f"| Kangaroo.Native vanilla | {b['vanilla_tok_s']} | 1.00 | 1 | — |",
            f"| Kangaroo.Native Kangaroo (ℓ = {e2e['exit_layer']}, γ = {e2e['draft_steps']}, η = {e2e['threshold']}) | {b['kangaroo_tok_s']} | {b['speedup']:.2f} | {b['mean_accepted']:.2f} | {e2e['identical_prompts']}/{e2e['prompts']} |",
        ]
        if tree:
            t = tree["tree"]
            lines.append(f"| Kangaroo.Native token tree (top-K {t['top_k']}, path threshold {t['threshold']}, budget {t['budget']}) | "
                         f"{tree['kangaroo_tok_s']:.1f} (its vanilla run: {tree['vanilla_tok_s']:.1f}) | {tree['speedup']:.2f} | "
                         f"{tree['mean_accepted']:.2f} | {tree['identical_prompts']}/{tree['prompts']} |")
        if bench.get("batch"):
            lines += ["", f"Several sequences decoded together ({e2e['prompts']} prompts, a finished sequence's slot takes the next; "
                      "tok/s = all new tokens over the whole set's wall time, prompts included):", "",
                      "| sequences | vanilla tok/s | Kangaroo tok/s | Kangaroo / vanilla | identical to vanilla alone |",
                      "| --- | --- | --- | --- | --- |"]
            for b in bench["batch"]:
                lines.append(f"| {b['sequences']} | {b['vanilla_tok_s']:.1f} | {b['kangaroo_tok_s']:.1f} | {b['speedup']:.2f} | "
                             f"{b['vanilla_identical_prompts']}/{b['prompts']} vanilla, {b['kangaroo_identical_prompts']}/{b['prompts']} Kangaroo |")
        # The peers ran on the first prompts only (transformers decodes at tens of tokens per second): their ratios are
        # taken against the engine's rates on exactly those prompts.
        subset = (peers or {}).get("engine_vanilla")
        if subset:
            k = peers["engine_kangaroo"]["tok_s"]
            lines += ["", f"Peers on the first {subset['prompts']} of these prompts; the engine on the same ones: vanilla "
                      f"{subset['tok_s']:.1f} tok/s, Kangaroo {k:.1f} tok/s.", "",
                      "| peer, same weights and prompt ids | decode tok/s | engine vanilla / peer | engine Kangaroo / peer | tokens/round | identical to the engine's vanilla greedy |",
                      "| --- | --- | --- | --- | --- | --- |"]
        names = [("hf_vanilla", "HF transformers generate(), greedy"),
                 ("hf_forward_loop", "HF transformers forward in a greedy loop (no generate())"),
                 (f"hf_early_exit_{e2e['exit_layer']}", f"HF assistant_early_exit={e2e['exit_layer']} (no adapter)"),
                 ("reference_kangaroo", "official Kangaroo (same adapter, γ and η)")]
        for key, label in names:
            entry = (peers or {}).get(key)
            if not entry:
                lines.append(f"| {label} | not run | | | | |")
            elif "error" in entry:
                lines.append(f"| {label} | failed: {entry['error'][:80]} | | | | |")
            else:
                rate = entry["tok_s"]
                accepted = entry.get("mean_accepted")
                v = subset["tok_s"] if subset else b["vanilla_tok_s"]
                kk = peers["engine_kangaroo"]["tok_s"] if subset else b["kangaroo_tok_s"]
                lines.append(f"| {label} | {rate:.1f} | {v / rate:.1f} × | {kk / rate:.1f} × | {f'{accepted:.2f}' if accepted else '—'} | "
                             f"{entry['identical_prompts']}/{entry['prompts']} (as a prefix: {entry['prefix_identical_prompts']}) |")
        if serving:
            lines += ["", "kangaroo serve under load (bench/Kangaroo.LoadBench, greedy, ignore_eos):", "",
                      "| mode | clients | requests | tokens/request | throughput tok/s | TTFT p50 / p99 ms | ITL p50 / p99 ms | TPOT ms | errors |",
                      "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
            for r in serving["load"]:
                lines.append(f"| {r['mode']} | {r['clients']} | {r['requests']} | {r['max_tokens']} | {r['tokens_per_s']} | "
                             f"{r['ttft_p50_ms']} / {r['ttft_p99_ms']} | {r['itl_p50_ms']} / {r['itl_p99_ms']} | {r['tpot_mean_ms']} | {r['errors']} |")
        with open(args.markdown, "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
