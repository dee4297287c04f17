#!/usr/bin/env python3
"""Reference fixtures for tests/reference/test_sft_smollm2.cpp: instruction records turned into
SmolLM2-135M-Instruct training sequences the way a Hugging Face SFT pipeline does it.

The GGUF's own chat template is rendered with jinja2 configured as transformers configures it;
the prompt (add_generation_prompt=True) and the answer (the rest of the full conversation) are
tokenized with HF `tokenizers` built from the GGUF vocabulary; labels cover the answer only.
As a cross-check, the full conversation tokenized in one piece must give the same ids (no BPE
merge crosses the prompt/answer boundary for this template). Writes only a note when the model
is not cached; the C++ test then skips. usage: gen_sft_smollm2.py OUT_DIR
"""
import json
import os
import sys

import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_tokenizer_smollm2 import hf_tokenizer, model_or_note, read_gguf_tokenizer  # noqa: E402

RECORDS = [
    {"instruction": "What is the capital of France?", "output": "The capital of France is Paris."},
    {"instruction": "Summarize the passage in one sentence.",
     "input": "The Eiffel Tower, completed in 1889, was the tallest structure in the world for 41 years [3].",
     "output": "Completed in 1889, the Eiffel Tower was the world's tallest structure for 41 years."},
    {"instruction": "And how are you today?", "output": "Fine, thanks! And you?",
     "history": [{"role": "user", "content": "Hi there."}, {"role": "assistant", "content": "Hello! How can I help?"}]},
    {"instruction": "Write a Python function that adds two numbers.",
     "output": "```python\ndef add(a, b):\n    return a + b\n```\n\nIt returns a + b; e.g. add(2, 3) == 5. Ünïcödé ✓"},
]


def chat_template(path):
    import gguf
    r = gguf.GGUFReader(path)
    f = r.fields["tokenizer.chat_template"]
    return bytes(f.parts[f.data[0]]).decode("utf-8")


def main():
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    path = model_or_note(out_dir)
    if path is None:
        return
    v = read_gguf_tokenizer(path)
    tok = hf_tokenizer(v)
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    tmpl = env.from_string(chat_template(path))
    bos = v["tokens"][v["bos_id"]] if v["bos_id"] >= 0 else ""
    eos = v["tokens"][v["eos_id"]] if v["eos_id"] >= 0 else ""
    cases = []
    for rec in RECORDS:
        user = rec["instruction"] + ("\n\n" + rec["input"] if rec.get("input") else "")
        messages = list(rec.get("history", [])) + [{"role": "user", "content": user}]
        prompt = tmpl.render(messages=messages, add_generation_prompt=True, bos_token=bos, eos_token=eos)
        full = tmpl.render(messages=messages + [{"role": "assistant", "content": rec["output"]}],
                           add_generation_prompt=False, bos_token=bos, eos_token=eos)
        assert full.startswith(prompt)
        prompt_ids = ([v["bos_id"]] if v["add_bos"] else []) + tok.encode(prompt, add_special_tokens=False).ids
        answer_ids = tok.encode(full[len(prompt):], add_special_tokens=False).ids
        whole = ([v["bos_id"]] if v["add_bos"] else []) + tok.encode(full, add_special_tokens=False).ids
        assert whole == prompt_ids + answer_ids, "the prompt/answer boundary changed the tokens"
        cases.append({"record": rec, "ids": prompt_ids + answer_ids,
                      "mask": [0] * len(prompt_ids) + [1] * len(answer_ids), "answer": full[len(prompt):]})
    with open(os.path.join(out_dir, "cases.json"), "w") as f:
        json.dump({"cases": cases}, f, ensure_ascii=False)
    print(f"{len(cases)} SFT cases")


if __name__ == "__main__":
    main()
