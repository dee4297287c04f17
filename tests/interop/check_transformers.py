#!/usr/bin/env python3
"""transformers on the HF directories moeforge wrote (gen_anchors.py): AutoModelForCausalLM must
load each one as the architecture its config names with no missing, unexpected or mismatched
weights and no custom code; AutoTokenizer must tokenize the text into the tokens moeforge used;
and the perplexity by llama.cpp's method, computed from transformers' logits in fp32, must equal
moeforge's within 1e-5 relative (both engines compute in fp32).
usage: check_transformers.py MANIFEST.json NAME; exit status 0 when everything holds.
"""
import json
import math
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.utils import logging

TOLERANCE = 1e-5


def main():
    manifest, name = sys.argv[1], sys.argv[2]
    e = next(x for x in json.load(open(manifest))["hf"] if x["name"] == name)
    failures = []
    logging.set_verbosity_error()
    model, info = AutoModelForCausalLM.from_pretrained(e["dir"], torch_dtype=torch.float32, output_loading_info=True)
    model.eval()
    for kind in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs"):
        if info.get(kind):
            failures.append(f"{kind}: {list(info[kind])[:5]}")
    arch = type(model).__name__
    expected = "MixtralForCausalLM" if e["experts"] else "LlamaForCausalLM"
    if arch != expected:
        failures.append(f"loaded as {arch}, expected {expected}")
    tok = AutoTokenizer.from_pretrained(e["dir"])
    tokens = tok(open(e["text"], encoding="utf-8").read())["input_ids"]
    mf = e["moeforge_ppl"]
    if len(tokens) != mf["text_tokens"]:
        failures.append(f"{len(tokens)} tokens, moeforge {mf['text_tokens']}")

    n_ctx, first = e["n_ctx"], e["n_ctx"] // 2
    nll, count, running = 0.0, 0, []
    with torch.no_grad():
        for i in range(len(tokens) // n_ctx):
            chunk = tokens[i * n_ctx:(i + 1) * n_ctx]
            logits = model(torch.tensor([chunk])).logits[0].float()
            for p in range(first, n_ctx - 1):
                row = logits[p]
                mx = row.max()
                lp = float(row[chunk[p + 1]] - mx) - math.log(torch.exp(row - mx).double().sum().item())
                nll -= lp
            count += n_ctx - 1 - first
            running.append(math.exp(nll / count))
    ppl = math.exp(nll / count)
    rel = abs(ppl - mf["ppl"]) / mf["ppl"]
    worst = max(abs(a - b) / b for a, b in zip(running, mf["running_ppl"]))
    if rel > TOLERANCE or worst > TOLERANCE:
        failures.append(f"perplexity {ppl:.6f} vs moeforge {mf['ppl']:.6f}: {rel:.2e} relative (worst chunk {worst:.2e})")
    print(json.dumps({"name": name, "loaded_as": arch, "tokens": len(tokens), "transformers_ppl": ppl,
                      "moeforge_ppl": mf["ppl"], "relative": rel, "worst_chunk_relative": worst}))
    for f in failures:
        print(f"{name}: {f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
