#!/usr/bin/env python3
"""The other direction: directories that transformers itself saves (`save_pretrained`) load in
moeforge as the same model. A seeded random tiny MixtralForCausalLM (per-expert w1/w2/w3 layout)
or Qwen2MoeForCausalLM (shared expert with its gate, a dense first layer, top-k without
renormalisation, q/k/v biases) is saved with the fixtures' tokenizer; moeforge's perplexity
(`moeforge perplexity --json`, llama.cpp's method) must equal the one from transformers' fp32
logits within 1e-5 relative, and the greedy continuations must be the same.
usage: check_transformers_saved.py MANIFEST.json NAME   (NAME: mixtral-saved | qwen2-moe-saved)
"""
import json
import os
import subprocess
import sys
import tempfile

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
from transformers.utils import logging

from check_transformers import TOLERANCE, greedy_bytes, perplexity, same_continuation

COMMON = {"hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 256,
          "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": False, "initializer_range": 0.2,
          "eos_token_id": 0}
CONFIGS = {
    "mixtral-saved": ("mixtral", {"intermediate_size": 96, "num_hidden_layers": 2, "num_local_experts": 4,
                                  "num_experts_per_tok": 2}),
    "qwen2-moe-saved": ("qwen2_moe", {"intermediate_size": 96, "moe_intermediate_size": 48,
                                      "shared_expert_intermediate_size": 32, "num_hidden_layers": 3,
                                      "num_experts": 4, "num_experts_per_tok": 2, "norm_topk_prob": False,
                                      "decoder_sparse_step": 1, "mlp_only_layers": [0]}),
}


def main():
    manifest, name = sys.argv[1], sys.argv[2]
    dense = next(x for x in json.load(open(manifest))["hf"] if x["name"] == "dense-hf")
    model_type, keys = CONFIGS[name]
    logging.set_verbosity_error()
    tok = AutoTokenizer.from_pretrained(dense["dir"])
    config = AutoConfig.for_model(model_type, vocab_size=len(tok), **COMMON, **keys)
    torch.manual_seed(7)
    model = AutoModelForCausalLM.from_config(config, torch_dtype=torch.float32)
    model.eval()
    with tempfile.TemporaryDirectory() as d:
        model.save_pretrained(d, safe_serialization=True)
        tok.save_pretrained(d)
        text = open(dense["text"], encoding="utf-8").read()
        tokens = tok(text)["input_ids"]
        run = lambda *a: subprocess.run([os.environ["MOEFORGE_BIN"], *a], check=True, capture_output=True).stdout  # noqa: E731
        mf = json.loads(run("perplexity", "-m", d, "-f", dense["text"], "-c", str(dense["n_ctx"]), "--json", "--quiet"))
        mf_greedy = run("generate", "-m", d, "-p", dense["prompt"], "--max-tokens", "12", "--temperature", "0")[:-1]
        files = sorted(os.listdir(d))
    failures = []
    ppl, running = perplexity(model, tokens, dense["n_ctx"])
    rel = abs(ppl - mf["ppl"]) / mf["ppl"]
    worst = max(abs(a - b) / b for a, b in zip(running, mf["running_ppl"]))
    if mf["text_tokens"] != len(tokens):
        failures.append(f"moeforge read {mf['text_tokens']} tokens, transformers {len(tokens)}")
    if rel > TOLERANCE or worst > TOLERANCE:
        failures.append(f"perplexity {mf['ppl']:.6f} vs transformers {ppl:.6f}: {rel:.2e} relative (worst {worst:.2e})")
    greedy = greedy_bytes(model, tok, dense["prompt"])
    if not same_continuation(greedy, mf_greedy):
        failures.append(f"greedy continuation: moeforge {mf_greedy!r}, transformers {greedy!r}")
    print(json.dumps({"name": name, "saved_by": type(model).__name__, "files": files, "transformers_ppl": ppl,
                      "moeforge_ppl": mf["ppl"], "relative": rel, "worst_chunk_relative": worst}))
    for f in failures:
        print(f"{name}: {f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
