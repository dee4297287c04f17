#!/usr/bin/env python3
"""Llama-2 / TinyLlama / Mistral as users bring them: a seeded random tiny LlamaForCausalLM and a
MistralForCausalLM with a sliding window shorter than the context, saved by transformers with a
SentencePiece tokenizer (tokenizer.json for Llama; tokenizer.model alone for Mistral, so that
path is read end to end). moeforge's perplexity (llama.cpp's method) must equal transformers'
fp32 one within 1e-5 relative, it must read the same number of tokens, and the 12-token greedy
continuations must agree.
usage: spm_llama_check.py TOKENIZER_DIR WORK_DIR   (MOEFORGE_BIN names the CLI)
"""
import json
import os
import shutil
import subprocess
import sys

import torch
from tokenizers import Tokenizer
from transformers import AutoConfig, AutoModelForCausalLM
from transformers.utils import logging

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "interop"))
from check_transformers import TOLERANCE, perplexity, same_continuation  # noqa: E402

BOS = 1

COMMON = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
          "num_key_value_heads": 2, "max_position_embeddings": 256, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
          "tie_word_embeddings": False, "initializer_range": 0.2, "bos_token_id": 1, "eos_token_id": 2}
MODELS = {"llama": ("llama", {}, ["tokenizer.json", "tokenizer_config.json", "tokenizer.model"]),
          "mistral-window": ("mistral", {"sliding_window": 12}, ["tokenizer.model", "tokenizer_config.json"])}
N_CTX = 32
PROMPT = "ROMEO: Shall I"


def greedy(model, tok, prompt):
    ids = tok.encode(prompt, add_special_tokens=True).ids
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), max_new_tokens=12, do_sample=False, pad_token_id=2, eos_token_id=None)
    return tok.decode(out[0][len(ids):].tolist(), skip_special_tokens=True).encode("utf-8")


def check(name, tok_dir, work):
    model_type, keys, files = MODELS[name]
    tok = Tokenizer.from_file(os.path.join(tok_dir, "tokenizer.json"))
    config = AutoConfig.for_model(model_type, vocab_size=tok.get_vocab_size(), **COMMON, **keys)
    torch.manual_seed(11)
    model = AutoModelForCausalLM.from_config(config, torch_dtype=torch.float32, attn_implementation="eager")
    model.eval()
    d = os.path.join(work, name)
    model.save_pretrained(d, safe_serialization=True)
    for f in files:
        shutil.copy(os.path.join(tok_dir, f), d)
    text_path = os.path.join(tok_dir, "text.txt")
    text = open(text_path, encoding="utf-8").read()
    tokens = tok.encode(text, add_special_tokens=True).ids
    run = lambda *a: subprocess.run([os.environ["MOEFORGE_BIN"], *a], check=True, capture_output=True).stdout  # noqa: E731
    mf = json.loads(run("perplexity", "-m", d, "-f", text_path, "-c", str(N_CTX), "--json", "--quiet"))
    mf_greedy = run("generate", "-m", d, "-p", PROMPT, "--max-tokens", "12", "--temperature", "0")[:-1]
    failures = []
    # llama.cpp's method with a tokenizer that adds BOS: every chunk starts with BOS.
    chunked = list(tokens)
    for i in range(0, len(chunked) - N_CTX + 1, N_CTX):
        chunked[i] = BOS
    ppl, running = perplexity(model, chunked, N_CTX)
    rel = abs(ppl - mf["ppl"]) / mf["ppl"]
    worst = max(abs(a - b) / b for a, b in zip(running, mf["running_ppl"]))
    if mf["text_tokens"] != len(tokens):
        failures.append(f"moeforge read {mf['text_tokens']} tokens, transformers' tokenizer {len(tokens)}")
    if rel > TOLERANCE or worst > TOLERANCE:
        failures.append(f"perplexity {mf['ppl']:.6f} vs transformers {ppl:.6f}: {rel:.2e} relative (worst {worst:.2e})")
    ref = greedy(model, tok, PROMPT)
    if not same_continuation(ref, mf_greedy):
        failures.append(f"greedy continuation: moeforge {mf_greedy!r}, transformers {ref!r}")
    print(json.dumps({"name": name, "arch": type(model).__name__, "tokenizer_files": files, "tokens": len(tokens),
                      "transformers_ppl": ppl, "moeforge_ppl": mf["ppl"], "relative": rel,
                      "worst_chunk_relative": worst, "greedy": mf_greedy.decode("utf-8", "replace")}))
    return [f"{name}: {f}" for f in failures]


def main():
    tok_dir, work = sys.argv[1], sys.argv[2]
    logging.set_verbosity_error()
    failures = []
    for name in MODELS:
        failures += check(name, tok_dir, work)
    for f in failures:
        print(f, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
