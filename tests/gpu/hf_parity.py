"""Writes small random Llama models with Hugging Face transformers, and their reference logits.

The models are made and saved by transformers itself (an independent writer and an independent forward pass), in
F32, BF16 and F16, covering GQA/MQA, llama3 rope scaling, tied embeddings and an explicit head_dim. The reference
logits come from the same weights upcast to F32 and computed on the GPU with TF32 off. The engine's test
(tests/Kangaroo.Tests/Kernels/HuggingFaceParityTests.cs) loads each directory and compares.

    python3 tests/gpu/hf_parity.py OUT_DIR
"""
import json
import os
import sys

import torch
from transformers import LlamaConfig, LlamaForCausalLM

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False

LLAMA3 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
          "original_max_position_embeddings": 16}
CASES = {
    "gqa_f32": (torch.float32, dict(hidden_size=256, intermediate_size=512, num_hidden_layers=4,
                                    num_attention_heads=8, num_key_value_heads=2, vocab_size=1000)),
    "mha_bf16_llama3": (torch.bfloat16, dict(hidden_size=256, intermediate_size=384, num_hidden_layers=3,
                                             num_attention_heads=4, num_key_value_heads=4, vocab_size=777,
                                             rope_theta=500000.0, rope_scaling=LLAMA3)),
    "mqa_f16_tied_headdim": (torch.float16, dict(hidden_size=192, intermediate_size=320, num_hidden_layers=3,
                                                 num_attention_heads=4, num_key_value_heads=1, head_dim=64,
                                                 vocab_size=500, tie_word_embeddings=True)),
}


def make_config(kwargs):
    common = dict(initializer_range=0.1, max_position_embeddings=256, rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2)
    try:
        return LlamaConfig(**kwargs, **common)
    except (TypeError, ValueError):
        # Transformers versions that take rotary settings only as rope_parameters.
        kwargs = dict(kwargs)
        parameters = dict(kwargs.pop("rope_scaling", {"rope_type": "default"}))
        parameters["rope_theta"] = kwargs.pop("rope_theta", 10000.0)
        return LlamaConfig(**kwargs, rope_parameters=parameters, **common)


def main(out):
    generator = torch.Generator().manual_seed(7)
    for name, (dtype, kwargs) in CASES.items():
        torch.manual_seed(0)
        config = make_config(kwargs)
        model = LlamaForCausalLM(config).to(dtype)
        directory = os.path.join(out, name)
        model.save_pretrained(directory, safe_serialization=True)
        tokens = torch.randint(0, config.vocab_size, (48,), generator=generator)
        # Loaded afresh in F32 (not model.to(float32)): .to(dtype) also rounds the rotary inv_freq buffer, which would
        # make the reference itself inexact. The stored weights widen exactly.
        reference = LlamaForCausalLM.from_pretrained(directory, dtype=torch.float32).cuda().eval()
        with torch.no_grad():
            logits = reference(tokens[None].cuda()).logits[0].float().cpu()
        logits.numpy().tofile(os.path.join(directory, "reference_logits.f32"))
        with open(os.path.join(directory, "parity.json"), "w") as f:
            json.dump({"tokens": tokens.tolist(), "vocab": config.vocab_size, "dtype": str(dtype)}, f)
        with open(os.path.join(directory, "config.json")) as f:
            print(name, json.dumps(json.load(f), sort_keys=True)[:600])


if __name__ == "__main__":
    main(sys.argv[1])
