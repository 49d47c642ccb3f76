"""Hugging Face transformers, eager (no compile, its default attention), at the Llama-2-7B shape: ms per decoded token
at batch 1 after a prompt, the figure the engine's decode step is held against (`hf_eager_ms` of bench/results/*.json).

    python3 bench/gpu/hf_7b.py [--prompt 512] [--tokens 64] [--json FILE]

Random float16 weights (initialised on the GPU: the values do not change the time); each step is one forward of the
last token with the KV cache, its argmax copied to the host — what generate() does per token.
"""
import argparse
import json
import statistics
import time

import torch


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--prompt", type=int, default=512)
    p.add_argument("--tokens", type=int, default=64)
    p.add_argument("--json")
    args = p.parse_args()
    from transformers import LlamaConfig, LlamaForCausalLM
    import transformers

    config = LlamaConfig(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                         num_key_value_heads=32, vocab_size=32000, max_position_embeddings=4096)
    torch.manual_seed(0)
    torch.set_default_dtype(torch.float16)
    with torch.device("cuda"):
        model = LlamaForCausalLM(config).eval()
    torch.set_default_dtype(torch.float32)
    ids = torch.randint(3, config.vocab_size, (1, args.prompt), device="cuda")
    times = []
    with torch.no_grad():
        for run in range(2):  # the first run warms up
            out = model(ids, use_cache=True)
            cache, token = out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True)
            token.item()
            for _ in range(args.tokens):
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                out = model(token, past_key_values=cache, use_cache=True)
                cache, token = out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True)
                token.item()
                if run == 1:
                    times.append(time.perf_counter() - t0)
    result = {"device": torch.cuda.get_device_name(), "transformers": transformers.__version__, "torch": torch.__version__,
              "prompt": args.prompt, "tokens": args.tokens, "ms_per_token": 1000 * statistics.median(times),
              "attention": model.config._attn_implementation}
    print(f"hf eager 7B shape ({result['attention']} attention), prompt {args.prompt}: {result['ms_per_token']:.2f} ms/token "
          f"(median of {args.tokens})")
    if args.json:
        json.dump(result, open(args.json, "w"), indent=2)


if __name__ == "__main__":
    main()
