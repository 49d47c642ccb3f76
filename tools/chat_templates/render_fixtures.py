#!/usr/bin/env python3
"""Renders every chat template fixture the way transformers' apply_chat_template does, and writes expected.json.

The environment mirrors transformers (utils/chat_template_utils.py, _compile_jinja_template): an
ImmutableSandboxedEnvironment with trim_blocks=True, lstrip_blocks=True and the loopcontrols extension, a tojson
filter that is json.dumps(ensure_ascii=False), and the globals raise_exception and strftime_now. bos_token and
eos_token are those of each model's tokenizer_config.json. Run from the repository root:

    python3 tools/chat_templates/render_fixtures.py
"""
import json
import os
from datetime import datetime

from jinja2.exceptions import TemplateError
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "Kangaroo.Tests", "Fixtures", "chat_templates")

# name -> (bos_token, eos_token), as each model's tokenizer_config.json names them.
MODELS = {
    "llama-2-chat": ("<s>", "</s>"),
    "mistral-7b-instruct-v0.2": ("<s>", "</s>"),
    "llama-3.1-instruct": ("<|begin_of_text|>", "<|eot_id|>"),
    "qwen2.5-instruct": (None, "<|im_end|>"),
    "vicuna-v1.5": ("<s>", "</s>"),
}

SYSTEM = {"role": "system", "content": "You are a terse assistant."}
CONVERSATIONS = {
    "system_user": [SYSTEM, {"role": "user", "content": "Hello there!"}],
    "user_only": [{"role": "user", "content": "  What is 2+2?  "}],
    "multi_turn": [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": " Hello! How can I help? "},
        {"role": "user", "content": "Tell me a joke about \"quotes\" & ünïcödé."},
    ],
    "system_multi_turn": [
        SYSTEM,
        {"role": "user", "content": "One"},
        {"role": "assistant", "content": "Two"},
        {"role": "user", "content": "Three\nlines\n"},
    ],
    # Two user turns in a row: the templates that check alternation raise.
    "roles_not_alternating": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
}

# Extra variables a conversation renders with (only for the templates named): tools exercise tojson.
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city (°C)",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                         "required": ["city"]}}}]
EXTRA = {"with_tools": ({"tools": TOOLS}, ["qwen2.5-instruct", "llama-3.1-instruct"])}
CONVERSATIONS["with_tools"] = [SYSTEM, {"role": "user", "content": "Weather in Zürich?"}]


def raise_exception(message):
    raise TemplateError(message)


def strftime_now(fmt):
    return datetime.now().strftime(fmt)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def environment():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def main():
    env = environment()
    cases = []
    for model, (bos, eos) in MODELS.items():
        with open(os.path.join(FIXTURES, model + ".jinja"), encoding="utf-8") as f:
            template = env.from_string(f.read())
        for conversation, messages in CONVERSATIONS.items():
            extra, only = EXTRA.get(conversation, ({}, None))
            if only is not None and model not in only:
                continue
            for add_generation_prompt in (False, True):
                case = {
                    "template": model,
                    "conversation": conversation,
                    "add_generation_prompt": add_generation_prompt,
                    "bos_token": bos,
                    "eos_token": eos,
                    "messages": messages,
                    "extra": extra,
                }
                try:
                    case["output"] = template.render(
                        messages=messages, add_generation_prompt=add_generation_prompt, bos_token=bos, eos_token=eos, **extra)
                except TemplateError as e:
                    case["error"] = str(e)
                cases.append(case)
    with open(os.path.join(FIXTURES, "expected.json"), "w", encoding="utf-8") as f:
        json.dump({"renderer": "jinja2 " + __import__("jinja2").__version__ + " in transformers' apply_chat_template configuration",
                   "cases": cases}, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"{len(cases)} cases, {sum('error' in c for c in cases)} raise")


if __name__ == "__main__":
    main()
