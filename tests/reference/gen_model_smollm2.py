#!/usr/bin/env python3
"""Reference fixtures for tests/reference/test_model_smollm2.cpp: the acceptance test of the
inference path on the real SmolLM2-135M-Instruct GGUF (Q4_1).

Renders a two-message chat with the GGUF's own chat template (jinja2, configured as
transformers does), tokenizes it with HF `tokenizers` built from the GGUF vocabulary, and runs
the PyTorch reference forward (tests/reference/torch_ref) on the weights as the `gguf` package
dequantizes them (Q/K rows un-permuted to the HF layout). Writes the prompt, its ids, the
logits at every position and the greedy continuation. When the model is not cached it writes
only a note and the C++ test skips. usage: gen_model_smollm2.py OUT_DIR
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_ref  # noqa: E402
from gen_tokenizer_smollm2 import hf_tokenizer, model_or_note, read_gguf_tokenizer  # noqa: E402

MESSAGES = [
    {"role": "system", "content": "You are a concise assistant."},
    {"role": "user", "content": "What is the capital of France?"},
]
GREEDY_STEPS = 8


def render_chat(template, bos, eos):
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[jinja2.ext.loopcontrols])
    return env.from_string(template).render(messages=MESSAGES, add_generation_prompt=True,
                                            bos_token=bos, eos_token=eos)


def main():
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    path = model_or_note(out_dir)
    if path is None:
        return
    import gguf
    reader = gguf.GGUFReader(path)
    f = reader.fields["tokenizer.chat_template"]
    template = bytes(f.parts[f.data[0]]).decode("utf-8")
    v = read_gguf_tokenizer(path)
    prompt = render_chat(template, v["tokens"][v["bos_id"]], v["tokens"][v["eos_id"]])
    ids = hf_tokenizer(v).encode(prompt, add_special_tokens=False).ids

    torch.set_num_threads(2)
    d, sd = torch_ref.read_llama_gguf(path)
    cfg = torch_ref.Config(d)
    logits, _ = torch_ref.forward(cfg, sd, torch.tensor([ids]))
    logits = logits[0].contiguous()
    logits.numpy().tofile(os.path.join(out_dir, "logits.f32"))

    # Greedy continuation, recomputed from scratch each step (no cache to get wrong).
    seq = list(ids)
    for _ in range(GREEDY_STEPS):
        step, _ = torch_ref.forward(cfg, sd, torch.tensor([seq]))
        seq.append(int(step[0, -1].argmax()))
    with open(os.path.join(out_dir, "ref.json"), "w") as fo:
        json.dump({"messages": MESSAGES, "prompt": prompt, "ids": ids, "T": len(ids),
                   "vocab": cfg.vocab_size, "greedy": seq[len(ids):], "config": d}, fo, ensure_ascii=False)
    print(f"SmolLM2 reference: {len(ids)} prompt tokens, logits {tuple(logits.shape)}, "
          f"greedy {seq[len(ids):]}")


if __name__ == "__main__":
    main()
