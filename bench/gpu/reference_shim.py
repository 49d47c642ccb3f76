"""Runs the official Kangaroo implementation (github Equationliu/Kangaroo; fetched by fetch_reference.sh into an ignored
folder, never committed) on our model: its own `kangaroo_forward` decoding loop, its `AdapterModel`, its attention, MLP
and RMSNorm modules and its `EarlyExitLlamaForCausalLM.forward_draft_or_large_model`.

What the shim supplies, and why:
- The reference was written against transformers 4.3x: its base model is `LlamaForCausalLM` with tuple KV caches and
  `model._prepare_decoder_attention_mask`, which transformers 5 no longer has. The shim assembles the base model from the
  reference's own 2024 Llama modules (attention with tuple caches, MLP, RMSNorm — from kangaroo/adapter.py) as full
  decoder layers, under the attribute names its code reads (`model.embed_tokens`, `model.layers`, `model.norm`,
  `past_key_values`, `early_exit_layer`), and binds its `forward_draft_or_large_model` unchanged.
- `KangarooModel.__init__` reads a sharded `pytorch_model.bin` and imports fastchat: the shim loads our safetensors
  instead (same tensor names) and stubs the two fastchat/evaluation helpers the modules import but this run never calls.
- The prompt pass `kangaroo_forward` starts with (`base_model(ids, position_ids=…, output_hidden_states=True)`).
"""
import os
import sys
import types

import torch
from torch import nn


def _stub_missing_imports():
    import transformers.pytorch_utils as pytorch_utils
    if not hasattr(pytorch_utils, "ALL_LAYERNORM_LAYERS"):  # gone from transformers 5; imported, never used
        pytorch_utils.ALL_LAYERNORM_LAYERS = [nn.LayerNorm]
    if "fastchat.utils" not in sys.modules:
        fastchat, utils = types.ModuleType("fastchat"), types.ModuleType("fastchat.utils")
        utils.str_to_torch_dtype = lambda name: getattr(torch, name)
        fastchat.utils = utils
        sys.modules["fastchat"], sys.modules["fastchat.utils"] = fastchat, utils
    if "evaluation.eval" not in sys.modules:  # the answer-file harness (needs fastchat's conversation templates)
        harness = types.ModuleType("evaluation.eval")
        harness.run_eval = harness.reorg_answer_file = None
        sys.modules["evaluation.eval"] = harness


class Reference:
    def __init__(self, reference_dir, model_dir, exit_layer, device):
        reference_dir = os.path.abspath(reference_dir)
        sys.path.insert(0, reference_dir)
        _stub_missing_imports()
        from kangaroo import adapter as ref  # the reference's modules
        from kangaroo.earlyexit import EarlyExitLlamaForCausalLM
        from evaluation.inference_kangaroo import kangaroo_forward
        from safetensors.torch import load_file
        from transformers import LlamaConfig

        commit = os.path.join(reference_dir, "COMMIT")
        self.commit = open(commit).read().strip() if os.path.exists(commit) else "unknown"
        self._forward = kangaroo_forward
        config = LlamaConfig.from_pretrained(model_dir)
        config.pretraining_tp = 1

        class DecoderLayer(nn.Module):
            """A full Llama layer out of the reference's own modules (its adapter layer is the attention half)."""

            def __init__(self):
                super().__init__()
                self.self_attn = ref.LlamaAttention(config)
                self.mlp = ref.LlamaMLP(config)
                self.input_layernorm = ref.LlamaRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
                self.post_attention_layernorm = ref.LlamaRMSNorm(config.hidden_size, eps=config.rms_norm_eps)

            def forward(self, hidden_states, attention_mask=None, position_ids=None, past_key_value=None,
                        output_attentions=False, use_cache=False):
                residual = hidden_states
                h, _, present = self.self_attn(hidden_states=self.input_layernorm(hidden_states), attention_mask=attention_mask,
                                               position_ids=position_ids, past_key_value=past_key_value, use_cache=use_cache)
                h = residual + h
                h = h + self.mlp(self.post_attention_layernorm(h))
                return (h, present)

        class Base(nn.Module):
            forward_draft_or_large_model = EarlyExitLlamaForCausalLM.forward_draft_or_large_model

            def __init__(self):
                super().__init__()
                self.model = nn.Module()
                self.model.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
                self.model.layers = nn.ModuleList(DecoderLayer() for _ in range(config.num_hidden_layers))
                self.model.norm = ref.LlamaRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
                self.model._prepare_decoder_attention_mask = types.MethodType(ref.AdapterModel._prepare_decoder_attention_mask, self.model)
                self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
                self.past_key_values = None
                self.early_exit_layer = exit_layer

            @torch.no_grad()
            def forward(self, input_ids, position_ids=None, output_hidden_states=False):
                b, t = input_ids.shape
                h = self.model.embed_tokens(input_ids)
                mask = self.model._prepare_decoder_attention_mask(torch.ones(b, t, dtype=torch.bool, device=h.device), (b, t), h, 0)
                states, cache = [h], []
                for layer in self.model.layers:
                    h, kv = layer(h, attention_mask=mask, position_ids=position_ids, use_cache=True)
                    states.append(h)
                    cache.append(kv)
                h = self.model.norm(h)
                states[-1] = h  # transformers' convention: the last hidden state after the final norm
                return types.SimpleNamespace(past_key_values=cache, hidden_states=tuple(states), logits=self.lm_head(h))

        base = Base()
        base.load_state_dict(load_file(os.path.join(model_dir, "model.safetensors")), strict=True)
        adapter_dir = os.path.join(model_dir, "kangaroo-adapter")
        adapter_config = LlamaConfig.from_pretrained(adapter_dir)
        adapter = ref.AdapterModel(adapter_config)
        adapter.load_state_dict(load_file(os.path.join(adapter_dir, "model.safetensors")), strict=True)
        head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        head.weight.data = base.lm_head.weight.data.clone()
        # float16 everywhere, as the reference's --dtype float16 run
        self.model = types.SimpleNamespace(base_model=base.half().to(device).eval(), adapter_model=adapter.half().to(device).eval(),
                                           head_model=head.half().to(device).eval())
        self.tokenizer = types.SimpleNamespace(eos_token_id=config.eos_token_id if not isinstance(config.eos_token_id, list)
                                               else config.eos_token_id[0])
        self.exit_layer, self.device = exit_layer, device
        self.accepted = []

    def generate(self, prompt_ids, max_new_tokens, draft_steps, threshold):
        inputs = types.SimpleNamespace(input_ids=torch.tensor([prompt_ids], dtype=torch.long, device=self.device))
        output_ids, new_token, _, accept_lengths = self._forward(
            inputs, self.model, self.tokenizer, max_new_tokens, do_sample=False, EARLY_STOP_LAYER=self.exit_layer,
            SPECULATIVE_DECODING_STEPS=draft_steps, threshold=threshold)
        self.accepted.extend(accept_lengths[1:])
        return output_ids[0][len(prompt_ids):]

    def mean_accepted(self):
        return sum(self.accepted) / len(self.accepted) if self.accepted else None


def load(reference_dir, model_dir, exit_layer, device):
    return Reference(reference_dir, model_dir, exit_layer, device)
