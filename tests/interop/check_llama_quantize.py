#!/usr/bin/env python3
"""moeforge's K-quant export against llama.cpp's own quantizer (llama_model_quantize through
llama-cpp-python) on the same f32 GGUF that moeforge wrote (gen_anchors.py):

- every tensor gets the same GGML type in both files (moeforge's mix rule is llama.cpp's);
- moeforge's quantization error, summed over all quantized tensors, is no larger than llama.cpp's
  (relative RMS against the f32 weights, both dequantized by gguf-py), within MARGIN.

usage: check_llama_quantize.py MANIFEST.json NAME   (NAME: e.g. kq-dense-q4_K_M)
Prints one JSON line with the per-type figures; exit status 0 when everything holds.
"""
import json
import os
import sys
import tempfile

import numpy as np
import gguf
import llama_cpp

# llama_ftype per --type (llama.h), the value llama_model_quantize takes.
FTYPE = {"q4_K_S": 14, "q4_K_M": 15, "q5_K_S": 16, "q5_K_M": 17, "q6_K": 18}
# moeforge's error may exceed llama.cpp's by at most this factor (its search starts from the
# same idea and refines further, so it is expected to be at or below 1).
MARGIN = 1.01


def tensors(path):
    return {t.name: t for t in gguf.GGUFReader(path).tensors}


def dequantized(t):
    return gguf.quants.dequantize(np.asarray(t.data), t.tensor_type).astype(np.float64).reshape(-1)


def main():
    manifest, name = sys.argv[1], sys.argv[2]
    entries = {e["name"]: e for e in json.load(open(manifest))["entries"]}
    e = entries[name]
    model = name[: -len(e["type"]) - 1]
    f32_path = entries[model + "-f32"]["gguf"]
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        theirs_path = os.path.join(tmp, "llama.gguf")
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = FTYPE[e["type"]]
        params.nthread = 2
        rc = llama_cpp.llama_model_quantize(f32_path.encode(), theirs_path.encode(), params)
        if rc != 0:
            print(f"{name}: llama_model_quantize returned {rc}", file=sys.stderr)
            return 1
        ref, ours, theirs = tensors(f32_path), tensors(e["gguf"]), tensors(theirs_path)
        if set(ours) != set(theirs):
            failures.append(f"tensor names differ: {sorted(set(ours) ^ set(theirs))}")
        by_type = {}  # GGML type -> [moeforge squared error, llama.cpp squared error, squared norm]
        for n in sorted(set(ours) & set(theirs)):
            to, tt = ours[n].tensor_type, theirs[n].tensor_type
            if to != tt:
                failures.append(f"{n}: moeforge {to.name}, llama.cpp {tt.name}")
                continue
            if to == gguf.GGMLQuantizationType.F32:
                continue
            x = dequantized(ref[n])
            acc = by_type.setdefault(to.name, [0.0, 0.0, 0.0])
            acc[0] += float(np.sum((dequantized(ours[n]) - x) ** 2))
            acc[1] += float(np.sum((dequantized(theirs[n]) - x) ** 2))
            acc[2] += float(np.sum(x * x))
    figures = {t: {"moeforge_rel_rms": (a[0] / a[2]) ** 0.5, "llama_cpp_rel_rms": (a[1] / a[2]) ** 0.5}
               for t, a in sorted(by_type.items())}
    total = [sum(a[i] for a in by_type.values()) for i in range(3)]
    ratio = (total[0] / total[1]) ** 0.5 if total[1] > 0 else 1.0
    if ratio > MARGIN:
        failures.append(f"moeforge's error is {ratio:.4f} x llama.cpp's (margin {MARGIN})")
    print(json.dumps({"name": name, "error_ratio_moeforge_over_llama_cpp": ratio, "by_type": figures}))
    for f in failures:
        print(f"{name}: {f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
