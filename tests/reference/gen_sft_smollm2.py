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


# Whole conversations (chat-format data, loss_on_history): every assistant turn is scored.
CONVERSATIONS = [
    {"instruction": "And in a week?", "output": "1440 times 7 is 10080 minutes.", "loss_on_history": True,
     "history": [{"role": "user", "content": "How many minutes are there in a day?"},
                 {"role": "assistant", "content": "24 hours times 60 minutes is 1440 minutes."}]},
    {"instruction": "Only the names, sorted.", "output": "SELECT name FROM users ORDER BY name;", "loss_on_history": True,
     "history": [{"role": "system", "content": "You help with SQL."},
                 {"role": "user", "content": "Select every row of the table users."},
                 {"role": "assistant", "content": "SELECT * FROM users;"}]},
    {"instruction": "One more?", "output": "Élan ✓", "loss_on_history": True,
     "history": [{"role": "user", "content": "A synonym for happy?"}, {"role": "assistant", "content": "Cheerful."},
                 {"role": "user", "content": "Another?"}, {"role": "assistant", "content": "Content.\n\n  (mostly)"}]},
]


def conversation_case(rec, tmpl, tok, v, bos, eos):
    """Ids and mask found independently of moeforge's prefix rendering: the whole conversation
    is rendered and tokenized in one piece with character offsets, and a token is scored when it
    lies inside an assistant turn's ChatML body, "content<|im_end|>\n", found by searching the
    rendered text turn by turn."""
    messages = list(rec["history"]) + [{"role": "user", "content": rec["instruction"]},
                                       {"role": "assistant", "content": rec["output"]}]
    full = tmpl.render(messages=messages, add_generation_prompt=False, bos_token=bos, eos_token=eos)
    spans, cursor = [], 0
    for m in messages:
        head = "<|im_start|>" + m["role"] + "\n"
        start = full.index(head + m["content"] + "<|im_end|>\n", cursor) + len(head)
        end = start + len(m["content"]) + len("<|im_end|>\n")
        if m["role"] == "assistant":
            spans.append((start, end))
        cursor = end
    enc = tok.encode(full, add_special_tokens=False)
    ids = ([v["bos_id"]] if v["add_bos"] else []) + enc.ids
    mask = [0] * (len(ids) - len(enc.ids))
    for a, b in enc.offsets:
        inside = [s <= a and b <= e for s, e in spans]
        straddles = [a < s < b or a < e < b for s, e in spans]
        assert not any(straddles), "a token crosses an assistant turn's boundary"
        mask.append(1 if any(inside) else 0)
    return {"record": rec, "ids": ids, "mask": mask, "scored": [full[s:e] for s, e in spans]}


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
    conversations = [conversation_case(rec, tmpl, tok, v, bos, eos) for rec in CONVERSATIONS]
    with open(os.path.join(out_dir, "cases.json"), "w") as f:
        json.dump({"cases": cases, "conversations": conversations}, f, ensure_ascii=False)
    print(f"{len(cases)} SFT cases, {len(conversations)} conversations")


if __name__ == "__main__":
    main()
