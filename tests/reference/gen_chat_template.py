"""Renders chat templates with Python's jinja2 configured as transformers does
(ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols, its tojson and
raise_exception) and writes the cases to OUT/cases.json for test_chat_template.cpp."""
import json
import os
import sys

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

OUT = sys.argv[1]
os.makedirs(OUT, exist_ok=True)


class TemplateError(Exception):
    pass


def raise_exception(message):
    raise TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                    extensions=[jinja2.ext.loopcontrols])
env.filters["tojson"] = tojson
env.globals["raise_exception"] = raise_exception

CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] "
          "+ '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


def smollm2_template():
    path = os.path.expanduser("~/.cache/moeforge/SmolLM2-135M-Instruct.Q4_1.gguf")
    if not os.path.exists(path):
        return CHATML
    try:
        import gguf
        r = gguf.GGUFReader(path)
        f = r.fields["tokenizer.chat_template"]
        return bytes(f.parts[f.data[0]]).decode("utf-8")
    except Exception:
        return CHATML


LLAMA3 = ("{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
          "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}"
          "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")

MISTRAL_V1 = ("{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
              "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
              "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
              "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}"
              "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}")

MISTRAL_V3 = """{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content'] %}
    {%- set loop_messages = messages[1:] %}
{%- else %}
    {%- set loop_messages = messages %}
{%- endif %}

{{- bos_token }}
{%- for message in loop_messages %}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}
        {{- raise_exception('After the optional system message, conversation roles must alternate user/assistant/user/assistant/...') }}
    {%- endif %}
    {%- if message['role'] == 'user' %}
        {%- if loop.last and system_message is defined %}
            {{- '[INST] ' + system_message + '\\n\\n' + message['content'] + '[/INST]' }}
        {%- else %}
            {{- '[INST] ' + message['content'] + '[/INST]' }}
        {%- endif %}
    {%- elif message['role'] == 'assistant' %}
        {{- ' ' + message['content']|trim + eos_token}}
    {%- else %}
        {{- raise_exception('Only user and assistant roles are supported, with the exception of an initial optional system message!') }}
    {%- endif %}
{%- endfor %}
"""

QWEN2 = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
         "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
         "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
         "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")

QWEN25 = """{%- if messages[0]['role'] == 'system' %}
    {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}
{%- else %}
    {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
{%- endif %}
"""

ZEPHYR = """{% for message in messages %}
{% if message['role'] == 'user' %}
{{ '<|user|>\\n' + message['content'] + eos_token }}
{% elif message['role'] == 'system' %}
{{ '<|system|>\\n' + message['content'] + eos_token }}
{% elif message['role'] == 'assistant' %}
{{ '<|assistant|>\\n'  + message['content'] + eos_token }}
{% endif %}
{% if loop.last and add_generation_prompt %}
{{ '<|assistant|>' }}
{% endif %}
{% endfor %}"""

# Not a model's template: exercises the interpreter's constructs against jinja2.
FEATURES = r"""{#- a comment -#}
{%- set ns = namespace(count=0, last_role='') -%}
{% for m in messages if m.role != 'system' %}
  {%- set ns.count = ns.count + 1 %}
  {{ loop.index }}/{{ loop.length }} {{ m.role|upper }}{% if loop.first %} (first){% endif %}{% if loop.last %} (last){% endif %}: {{ m.content|trim|length }} chars
  {%- if m.content.startswith('What') %} Q{% elif m.content.endswith('.') %} S{% else %} O{% endif %}
  {% set words = m.content.split() %}{{ words|length }} words, first={{ words[0] if words else 'none' }}, last={{ words[-1] }}
  {{- ' | ' ~ m.content[:5] ~ '|' ~ m.content[-3:] }}
  {% set ns.last_role = m.role %}
{% endfor %}
count={{ ns.count }} last={{ ns.last_role }}
{{ messages|length }} {{ messages[0].role is defined }} {{ messages[0].nothing is defined }} {{ none is none }} {{ messages[0].content is string }}
{{ messages|map(attribute='role')|join(',') }}
{{ messages[1:]|length }} {{ 'user' in messages|map(attribute='role')|list }} {{ 'x' not in 'abc' }} {{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }}
{{ {'a': 1, 'b': [1, 2.5, none, true, 'q"uote\n']}|tojson }} {{ [1,2,3] }} {{ {'k': 'v'} }} {{ ['it\'s', "a\"b"] }}
{{ {'z': {'y': [1, {}]}, 'a': []}|tojson(indent=2) }}
{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }} {{ 1 + 2 * 3 }} {{ 'ab' * 3 }} {{ -3 }} {{ 10 / 4 * 2 }}
{{ 'Hello World'.lower() }} {{ '  pad  '.strip() }}|{{ 'a-b-c'.split('-') }} {{ 'abc'.replace('b', 'X') }} {{ 'x' ~ 1 ~ none }} {{ 'a b  c'.split() }} {{ 'xxhixx'.strip('x') }}
{%- for k, v in {'one': 1, 'two': 2}.items() %} {{ k }}={{ v }}{% endfor %}
{% for i in range(5) %}{% if i == 1 %}{% continue %}{% endif %}{% if i == 4 %}{% break %}{% endif %}{{ i }}{% endfor %}
{{ undefined_var|default('dflt') }} {{ ''|default('empty', true) }} [{{ 3 if false }}] {{ 'yes' if true else 'no' }} {{ missing }}|
{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('Bob') }} {{ greet('Al', punct='?') }}
{{ "esc\tq\\n\u00e9" }} {{ 'it\'s' }} {{ 1.5 }} {{ 1e3 if false else 0.1 + 0.2 }} {{ true and 'x' }} {{ false or 0 }} {{ 1e-7 }} {{ 1e16 }} {{ 123.0 }}
{%+ if true %}   kept indent{% endif %}
    {% if true %}stripped indent{% endif %}
    {{ 'var tags keep indent' }}
{{ messages|selectattr('role', 'equalto', 'user')|list|length }} {{ [3,1,2]|sort }} {{ 'abc'|reverse }} {{ [1,2,3]|first }}{{ [1,2,3]|last }} {{ 'héllo'|length }} {{ 'héllo'[1:3] }}
{% for x in [] %}never{% else %}empty-else{% endfor %} {{ loop is defined }}
{% set captured %}inner {{ 1 + 1 }}{% endset %}{{ captured|upper }}
{% for m in messages %}{{ loop.previtem.role if loop.previtem is defined else '-' }}>{{ loop.revindex0 }}{{ loop.cycle('a', 'b') }} {% endfor %}

{{ 'end' -}}
   {# trailing comment #}
"""

SYS = {"role": "system", "content": "You are a concise assistant."}
CONVERSATIONS = {
    "single_user": [{"role": "user", "content": "What is the capital of France?"}],
    "system_user": [SYS, {"role": "user", "content": "Hello there."}],
    "multi_turn_system": [SYS, {"role": "user", "content": "What is 2+2?"},
                          {"role": "assistant", "content": " It is 4. "},
                          {"role": "user", "content": "And 3+3?"}],
    "multi_turn_no_system": [{"role": "user", "content": "Hi!"},
                             {"role": "assistant", "content": "Hello! How can I help?"},
                             {"role": "user", "content": "Tell me a joke."}],
    "unicode_quotes": [{"role": "user", "content": "  Ünïcödé \"quotes\" and 'apostrophes'\n\tand tabs 🚀  "},
                       {"role": "assistant", "content": "Noted — done."}],
    "bad_alternation": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
}

TEMPLATES = {
    "smollm2": (smollm2_template(), "<|im_start|>", "<|im_end|>"),
    "chatml": (CHATML, "<|im_start|>", "<|im_end|>"),
    "llama3": (LLAMA3, "<|begin_of_text|>", "<|eot_id|>"),
    "mistral_v1": (MISTRAL_V1, "<s>", "</s>"),
    "mistral_v3": (MISTRAL_V3, "<s>", "</s>"),
    "qwen2": (QWEN2, "<|endoftext|>", "<|im_end|>"),
    "qwen25": (QWEN25, "<|endoftext|>", "<|im_end|>"),
    "zephyr": (ZEPHYR, "<s>", "</s>"),
    "features": (FEATURES, "<s>", "</s>"),
}

cases = []
for tname, (source, bos, eos) in TEMPLATES.items():
    compiled = env.from_string(source)
    for cname, messages in CONVERSATIONS.items():
        for agp in (False, True):
            case = {"name": f"{tname}/{cname}/agp={int(agp)}", "template": source, "messages": messages,
                    "add_generation_prompt": agp, "bos_token": bos, "eos_token": eos}
            try:
                case["expected"] = compiled.render(messages=messages, add_generation_prompt=agp,
                                                   bos_token=bos, eos_token=eos)
            except TemplateError as e:
                case["error"] = str(e)
            cases.append(case)

with open(os.path.join(OUT, "cases.json"), "w", encoding="utf-8") as f:
    json.dump(cases, f, ensure_ascii=False, indent=1)
print(f"wrote {len(cases)} chat template cases to {OUT}")
