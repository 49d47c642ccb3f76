#!/usr/bin/env python3
"""Renders every chat template fixture the way transformers' apply_chat_template does, and writes expected.json.

The environment mirrors transformers (utils/chat_template_utils.py, _compile_jinja_template): an
ImmutableSandboxedEnvironment with trim_blocks=True, lstrip_blocks=True and the loopcontrols extension, a tojson
filter that is json.dumps(ensure_ascii=False), and the globals raise_exception and strftime_now. bos_token and
eos_token are those of each model's tokenizer_config.json. Run from the repository root:

    python3 tools/chat_templates/render_fixtures.py

With --transformers (where transformers and tokenizers are installed, as on the GPU machine) the chat-template
cases are rendered by transformers itself: each template set on a small fast tokenizer with the model's bos/eos
tokens, through tokenizer.apply_chat_template(messages, tokenize=False, ...). --out writes expected.json elsewhere
(to compare with the committed one); the engine cases are rendered by jinja2 either way.
"""
import argparse
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
    "mistral-v3-tools": ("<s>", "</s>"),
    "llama-3-instruct": ("<|begin_of_text|>", "<|eot_id|>"),
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
EXTRA = {"with_tools": ({"tools": TOOLS}, ["qwen2.5-instruct", "llama-3.1-instruct", "mistral-v3-tools"])}
CONVERSATIONS["with_tools"] = [SYSTEM, {"role": "user", "content": "Weather in Zürich?"}]

# Small templates exercising one engine feature each, with the variables they render with. jinja2's output (or the
# fact that it raised) is the expected value of Chat/ChatTemplateEngineParityTests.
ENGINE_CASES = [
    ("{% if true %}\nyes\n{% endif %}\nafter", {}),
    ("  {% if true %}\n    x\n  {% endif %}\n", {}),
    ("a  {%- if true %} b {% endif -%}  c", {}),
    ("a\n  {{- 'b' -}}\n  c", {}),
    ("  {{ 'v' }}\n", {}),
    ("  {%+ if true %}x{% endif %}", {}),
    ("{% if true +%}\nx{% endif %}", {}),
    ("a {# c #}\nb\n  {# c #}\nd", {}),
    ("x {% if true %} y {% endif %} z\n", {}),
    ("{% for m in messages %}\n    {% if m.role == 'user' %}\n        U:{{ m.content }}\n    {% endif %}\n{% endfor %}\n", {"messages": [{"role": "user", "content": "a"}, {"role": "bot", "content": "b"}]}),
    ("{%- for x in xs -%}\n  [{{ loop.index }}{{ loop.revindex }}{{ loop.first }}{{ loop.last }}{{ loop.length }}]\n{%- endfor -%}", {"xs": ["a", "b", "c"]}),
    ("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}", {"d": {"b": 1, "a": [1, "x"]}}),
    ("{% for k in d %}{{ k }}{% endfor %}|{% for c in 'héy' %}{{ c }}.{% endfor %}", {"d": {"b": 1, "a": 2}}),
    ("{% set n = 0 %}{% for x in [1, 2] %}{% set n = n + x %}[{{ n }}]{% endfor %}{{ n }}", {}),
    ("{% set ns = namespace(found=false, n=0) %}{% for x in [1, 2, 3] %}{% if x > 1 %}{% set ns.found = true %}{% set ns.n = ns.n + x %}{% endif %}{% endfor %}{{ ns.found }} {{ ns.n }}", {}),
    ("{% for x in [1, 2, 3, 4] if x is even %}{{ x }}{{ loop.length }}{% endfor %}", {}),
    ("{% for x in [] %}{{ x }}{% else %}none{% endfor %}", {}),
    ("{{ 1 + 2 * 3 - 4 / 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ 2 ** 10 }} {{ 7.5 // 2 }} {{ -3 }}", {}),
    ("{{ 'a' ~ 1 ~ none ~ true ~ [1] }}|{{ 'a' + 'b' }}|{{ [1] + [2] }}", {}),
    ("{{ 1 == 1.0 }}{{ true == 1 }}{{ 'a' < 'b' }}{{ 1 < 2 < 3 }}{{ 3 > 2 > 2 }}{{ [1, 2] == [1, 2] }}", {}),
    ("{{ 'b' in 'abc' }}{{ 'z' not in 'abc' }}{{ 2 in [1, 2] }}{{ 'k' in {'k': 1} }}{{ x in [1] }}", {}),
    ("{{ 'y' if 0 else 'n' }}|{{ 'y' if 1 }}|{{ 'y' if 0 }}|{{ not 0 }}{{ 0 or 'd' }}{{ 1 and 'e' }}", {}),
    ("{{ xs[1:] }}{{ xs[:-1] }}{{ xs[::-1] }}{{ xs[-1] }}{{ xs[1::2] }}{{ 'hello'[1:3] }}{{ xs[5:] }}", {"xs": [1, 2, 3, 4]}),
    ("{{ m['role'] }} {{ m.role }} {{ m.missing is defined }} {{ m['missing'] is defined }} {{ m.get('x', 'dflt') }}", {"m": {"role": "user"}}),
    ("[{{ undefined_name }}]{{ undefined_name is defined }}{{ undefined_name|length }}{{ undefined_name ~ 'x' }}{% if not undefined_name %}F{% endif %}", {}),
    ("{{ none }} {{ true }} {{ 1.0 }} {{ 0.1 + 0.2 }} {{ 1e3 if false else 2.5 }} {{ [none, 'it\\'s', \"q\\\"\", {'a': 1.5}] }}", {}),
    ("{{ ' x '|trim }}|{{ 'AbC'|upper }}{{ 'AbC'|lower }}|{{ [3, 4]|first }}{{ [3, 4]|last }}|{{ ['a', 'b']|join('-') }}|{{ 'ab'|list }}|{{ 5|string }}", {}),
    ("{{ missing|default('d') }}|{{ ''|default('d') }}|{{ ''|default('d', true) }}|{{ none|default('d') }}", {}),
    ("{{ xs|length }} {{ 'héllo'|length }} {{ {'a': 1}|length }}", {"xs": [1, 2]}),
    ("{{ obj|tojson }}|{{ obj|tojson(indent=2) }}|{{ [] |tojson(indent=2) }}|{{ 'é\\n\"\\\\'|tojson }}", {"obj": {"a": [1, 2.5, None, True, "ü"], "b": {}, "c": {"d": "e"}}}),
    ("{{ [1, 2, 3]|reject('equalto', 2)|list }}{{ [1, 2, 3]|select('odd')|list }}{{ xs|selectattr('n')|map(attribute='n')|list }}", {"xs": [{"n": 1}, {"n": 0}, {"n": 2}]}),
    ("{{ ' a b '.strip() }}|{{ ' a '.lstrip() }}|{{ ' a '.rstrip() }}|{{ 'xaxx'.strip('x') }}|{{ 'a b  c'.split() }}|{{ 'a,b,,c'.split(',') }}|{{ 'a,b,c'.split(',', 1) }}", {}),
    ("{{ 'abc'.startswith('ab') }}{{ 'abc'.endswith('c') }}{{ 'abc'.startswith(('x', 'a')) }}{{ 'aXa'.replace('a', 'bb') }}{{ 'hello world'.title() }}{{ 'aBc'.upper() }}", {}),
    ("{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set s %}inner {{ a }}{% endset %}[{{ s }}]", {}),
    ("{% for x in [1, 2, 3, 4] %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 4 %}{% break %}{% endif %}{{ x }}{% endfor %}", {}),
    ("{{ x is none }}{{ x is not none }}{{ 's' is string }}{{ 1 is string }}{{ 3 is odd }}{{ 4 is divisibleby 2 }}{{ {} is mapping }}{{ [] is iterable }}{{ 1 is number }}", {"x": None}),
    ("{{ range(3)|list }}{{ range(1, 7, 2)|list }}{% for i in range(2) %}{{ i }}{% endfor %}", {}),
    ("{{ {'a': 1, 'b': [1, {'c': none}]} }}", {}),
    ("{{ d|items|list }}{% for k, v in d|items %}{{ k }}{{ v }}{% endfor %}", {"d": {"x": 1}}),
    ("{{ messages[0]['content'] if messages else 'none' }}|{{ messages|length }}", {"messages": []}),
    ("{%- if messages[0]['role'] == 'system' %}\n    {%- set system_message = messages[0]['content']|trim %}\n    {%- set messages = messages[1:] %}\n{%- else %}\n    {%- set system_message = \"\" %}\n{%- endif %}\n[{{ system_message }}]{{ messages|length }}", {"messages": [{"role": "system", "content": " sys "}, {"role": "user", "content": "u"}]}),
    ("{% for a in [1, 2] %}{% for b in 'xy' %}{{ loop.index }}{{ b }}{% endfor %}{{ loop.index }}|{% endfor %}", {}),
    ("{% for x in [1, 2, 3] %}{{ loop.previtem is defined }}{{ loop.nextitem }},{% endfor %}", {}),
    ("{{ ' Ab '.strip()|lower|length }}|{{ not 1 == 2 }}|{{ 'a' if x else 'b'|upper }}|{{ 2 * 3 ~ 4 }}|{{ -2 ** 2 }}", {"x": ""}),
    ("{{ (messages|last).content }}|{{ messages[-1]['role'] }}|{{ messages|map(attribute='role')|join(',') }}", {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}),
    ("{%- for m in messages %}\n  {%- if m.role == 'tool' -%}\n    T\n  {%- elif m.role == 'user' %}\n    U{{ m.content }}\n  {%- endif %}\n{%- endfor %}\n", {"messages": [{"role": "user", "content": "1"}, {"role": "tool", "content": "2"}]}),
    ("{% if x is defined and x|length > 0 %}has{% else %}none{% endif %}|{% if 'tool_calls' in m and m.tool_calls %}tc{% endif %}", {"x": [1], "m": {"tool_calls": []}}),
    ("{{ 10 / 4 }} {{ 10 // 4 }} {{ 10 % 4 }} {{ 2.0 * 3 }} {{ 1 / 3 }} {{ 1e-5 }} {{ 123456789012345678.0 }}", {}),
    ("{{ 'x\\ny' }}|{{ \"tab\\there\" }}|{{ '\\u00e9' }}", {}),
    ("{# leading comment #}\n{% set x = 1 %}\n{{ x }}\n{#- trailing -#}\n", {}),
    ("{{ x|tojson(ensure_ascii=true) }}|{{ x|tojson(separators=(',', ':')) }}|{{ x|tojson(indent=1, sort_keys=true) }}", {"x": {"z": "é😀\u007f", "a": [1, {}]}}),
    # Errors jinja2 raises too: the test checks only that the engine raises as well.
    ("{{ undefined_name.attr }}", {}),
    ("{{ undefined_name + 'x' }}", {}),
    ("{{ m.a.b }}", {"m": {}}),
    ("{{ 1 + 'a' }}", {}),
]


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


def transformers_renderer(source, bos, eos):
    """A render(messages, add_generation_prompt, extra) through transformers' apply_chat_template."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocabulary = {"<unk>": 0}
    for token in (bos, eos):
        if token is not None:
            vocabulary.setdefault(token, len(vocabulary))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(WordLevel(vocabulary, unk_token="<unk>")),
                                        unk_token="<unk>", bos_token=bos, eos_token=eos)
    tokenizer.chat_template = source

    def render(messages, add_generation_prompt, extra):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt, **extra)
    return render


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--transformers", action="store_true", help="render the chat templates with transformers' apply_chat_template")
    parser.add_argument("--out", default=os.path.join(FIXTURES, "expected.json"))
    args = parser.parse_args()
    env = environment()
    cases = []
    for model, (bos, eos) in MODELS.items():
        with open(os.path.join(FIXTURES, model + ".jinja"), encoding="utf-8") as f:
            source = f.read()
        if args.transformers:
            render = transformers_renderer(source, bos, eos)
        else:
            template = env.from_string(source)

            def render(messages, add_generation_prompt, extra, template=template, bos=bos, eos=eos):
                return template.render(messages=messages, add_generation_prompt=add_generation_prompt, bos_token=bos, eos_token=eos, **extra)
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
                    case["output"] = render(messages, add_generation_prompt, extra)
                except TemplateError as e:
                    case["error"] = str(e)
                cases.append(case)
    if args.transformers:
        import transformers
        renderer = f"transformers {transformers.__version__} tokenizer.apply_chat_template(tokenize=False), jinja2 {__import__('jinja2').__version__}"
    else:
        renderer = "jinja2 " + __import__("jinja2").__version__ + " in transformers' apply_chat_template configuration"
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump({"renderer": renderer, "cases": cases}, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"{len(cases)} cases, {sum('error' in c for c in cases)} raise")

    engine = []
    for source, variables in ENGINE_CASES:
        case = {"template": source, "variables": variables}
        try:
            case["output"] = env.from_string(source).render(**variables)
        except Exception as e:  # noqa: BLE001 - any jinja2 failure is an expected failure of the engine too
            case["error"] = f"{type(e).__name__}: {e}"
        engine.append(case)
    if args.transformers:
        return
    with open(os.path.join(FIXTURES, "engine.json"), "w", encoding="utf-8") as f:
        json.dump({"renderer": "jinja2 " + __import__("jinja2").__version__ + " in transformers' apply_chat_template configuration",
                   "cases": engine}, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"{len(engine)} engine cases, {sum('error' in c for c in engine)} raise")


if __name__ == "__main__":
    main()
