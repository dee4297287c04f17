#!/usr/bin/env python3
"""llama.cpp (through llama-cpp-python) on the GGUF files moeforge wrote (gen_anchors.py):
it must load each one, report the architecture and expert count moeforge wrote, tokenize the
text into the same tokens, give the same perplexity by llama.cpp's method within the tolerance
of the file's weight type, and continue the prompt greedily with the same tokens while the
choice is not a near-tie. llama.cpp runs with its f32 attention paths (no flash attention, f32
KV cache), so the weight type is the only difference between the engines.
usage: check_llama_cpp.py MANIFEST.json NAME; exit status 0 when everything holds.
"""
import json
import math
import sys

import numpy as np
from llama_cpp import Llama

# Relative perplexity tolerance per weight type, and why. moeforge multiplies every weight type
# with fp32 activations; llama.cpp's CPU dot products first convert the activations to the
# weights' own type: f16 or bf16 rounding for those files, 8-bit blocks (Q8_0 / Q8_1) for the
# quantized ones. f32 files have no such step: the figures agree to rounding.
# Measured 2026-12-02 (final / worst chunk): f32 4e-9 / 5e-8; f16 4e-6 / 4e-5; bf16 5e-5 / 5e-4;
# q8_0 2e-4 / 1.1e-3; q4_0 2e-4 / 1.6e-3; q4_1 3e-5 / 4e-4; SmolLM2 q4_1 5.1e-3 / 1.1e-2.
# K-quant mixes (llama.cpp turns the activations into Q8_K: one scale per 256 values, coarser
# than Q8_0's 32), 2026-12-06 on the 256-wide models: q4_K_M 3e-4 / 3.8e-3 dense, 2e-4 / 2e-3
# MoE; q6_K 5e-4 / 1.4e-3 dense, 2e-4 / 1.5e-3 MoE.
TOLERANCE = {"f32": 1e-6, "f16": 5e-4, "bf16": 5e-3, "q8_0": 1e-2, "q4_0": 2e-2, "q4_1": 2e-2,
             "q4_K_M": 2e-2, "q6_K": 1e-2}
# Greedy tokens are compared until the first step where llama.cpp's top two logits are closer
# than this: past a near-tie either engine may take either token.
TIE_MARGIN = {"f32": 1e-3, "f16": 5e-2, "bf16": 2e-1, "q8_0": 2e-1, "q4_0": 5e-1, "q4_1": 5e-1,
              "q4_K_M": 5e-1, "q6_K": 2e-1}


def log_prob(row, token):
    mx = np.float32(row.max())
    return float(row[token] - mx) - math.log(float(np.exp((row - mx).astype(np.float64)).sum()))


def perplexity(llm, tokens, n_ctx):
    first = n_ctx // 2
    nll = nll2 = 0.0
    count = 0
    running = []
    for i in range(len(tokens) // n_ctx):
        chunk = tokens[i * n_ctx:(i + 1) * n_ctx]
        llm.reset()
        llm.eval(chunk)
        scores = np.asarray(llm.scores[:n_ctx], dtype=np.float32)
        for p in range(first, n_ctx - 1):
            lp = log_prob(scores[p], chunk[p + 1])
            nll -= lp
            nll2 += lp * lp
        count += n_ctx - 1 - first
        running.append(math.exp(nll / count))
    mean = nll / count
    return math.exp(mean), running


def greedy(llm, prompt_tokens, n, eos, margin):
    llm.reset()
    llm.eval(prompt_tokens)
    out = []
    for _ in range(n):
        row = np.asarray(llm.scores[llm.n_tokens - 1], dtype=np.float32)
        top2 = np.sort(row)[-2:]
        tok = int(row.argmax())
        if top2[1] - top2[0] < margin:
            return out, True  # a near-tie: stop comparing here
        out.append(tok)
        if tok == eos:
            break
        llm.eval([tok])
    return out, False


def main():
    manifest, name = sys.argv[1], sys.argv[2]
    e = next(x for x in json.load(open(manifest))["entries"] if x["name"] == name)
    failures = []
    llm = Llama(model_path=e["gguf"], n_ctx=e["n_ctx"], n_batch=e["n_ctx"], logits_all=True, n_threads=2,
                verbose=False, flash_attn=False, type_k=0, type_v=0)
    md = llm.metadata
    if md.get("general.architecture") != "llama":
        failures.append(f"architecture {md.get('general.architecture')!r}, expected 'llama'")
    experts = int(md.get("llama.expert_count", "0"))
    if experts != e["experts"]:
        failures.append(f"llama.expert_count {experts}, expected {e['experts']}")

    text = open(e["text"], "rb").read()
    tokens = llm.tokenize(text, add_bos=False, special=False)
    mf = e["moeforge_ppl"]
    if len(tokens) != mf["text_tokens"]:
        failures.append(f"{len(tokens)} tokens, moeforge {mf['text_tokens']}")
    ppl, running = perplexity(llm, tokens, e["n_ctx"])
    rel = abs(ppl - mf["ppl"]) / mf["ppl"]
    worst_chunk = max(abs(a - b) / b for a, b in zip(running, mf["running_ppl"]))
    tol = TOLERANCE[e["type"]]
    if rel > tol or worst_chunk > tol:
        failures.append(f"perplexity {ppl:.6f} vs moeforge {mf['ppl']:.6f}: {rel:.2e} relative "
                        f"(worst chunk {worst_chunk:.2e}), tolerance {tol:.0e}")

    prompt = llm.tokenize(e["prompt"].encode(), add_bos=False, special=True)
    eos = int(md.get("tokenizer.ggml.eos_token_id", "-1"))
    ids, tie = greedy(llm, prompt, 12, eos, TIE_MARGIN[e["type"]])
    ours = llm.detokenize(ids)
    theirs = bytes.fromhex(e["moeforge_greedy_hex"])
    if not theirs.startswith(ours) or (not tie and ours != theirs):
        failures.append(f"greedy continuation {ours!r} vs moeforge {theirs!r}")

    print(json.dumps({"name": name, "type": e["type"], "experts": experts, "tokens": len(tokens),
                      "llama_cpp_ppl": ppl, "moeforge_ppl": mf["ppl"], "relative": rel,
                      "worst_chunk_relative": worst_chunk, "greedy_tokens_compared": len(ids),
                      "stopped_at_near_tie": tie}))
    for f in failures:
        print(f"{name}: {f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
