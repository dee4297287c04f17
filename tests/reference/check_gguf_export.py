#!/usr/bin/env python3
"""Reads a GGUF that moeforge exported (test_gguf_export.cpp) with the `gguf` package and checks
it against the expectations the C++ test wrote beside it (expected.json): architecture and
hyperparameter keys, the tokenizer and chat template, and every tensor's name, GGML type and
shape. usage: check_gguf_export.py FILE.gguf EXPECTED.json; exit status 0 when all hold."""
import json
import sys

import gguf


def field_value(reader, key):
    f = reader.fields.get(key)
    if f is None:
        return None
    if f.types and f.types[0] == gguf.GGUFValueType.ARRAY:
        if f.types[-1] == gguf.GGUFValueType.STRING:
            return [bytes(f.parts[i]).decode("utf-8") for i in f.data]
        return [f.parts[i].tolist()[0] for i in f.data]
    if f.types[0] == gguf.GGUFValueType.STRING:
        return bytes(f.parts[f.data[0]]).decode("utf-8")
    return f.parts[f.data[0]].tolist()[0]


def main():
    path, expected_path = sys.argv[1], sys.argv[2]
    want = json.load(open(expected_path))
    r = gguf.GGUFReader(path)
    problems = []
    for key, value in want["kv"].items():
        got = field_value(r, key)
        if isinstance(value, float):
            ok = got is not None and abs(got - value) <= 1e-6 * max(1.0, abs(value))
        else:
            ok = got == value
        if not ok:
            problems.append(f"{key}: got {got!r}, want {value!r}")
    tokens = field_value(r, "tokenizer.ggml.tokens")
    if tokens is None or len(tokens) != want["vocab_size"]:
        problems.append(f"tokenizer.ggml.tokens: {None if tokens is None else len(tokens)} tokens, want {want['vocab_size']}")
    tensors = {t.name: t for t in r.tensors}
    if set(tensors) != set(want["tensors"]):
        problems.append(f"tensor names differ: extra {sorted(set(tensors) - set(want['tensors']))}, "
                        f"missing {sorted(set(want['tensors']) - set(tensors))}")
    for name, spec in want["tensors"].items():
        t = tensors.get(name)
        if t is None:
            continue
        shape = [int(x) for x in reversed(t.shape.tolist())]  # gguf lists ne (innermost first)
        if shape != spec["shape"]:
            problems.append(f"{name}: shape {shape}, want {spec['shape']}")
        if t.tensor_type.name != spec["type"]:
            problems.append(f"{name}: type {t.tensor_type.name}, want {spec['type']}")
    for p in problems:
        print("MISMATCH", p)
    print(f"checked {len(want['kv'])} keys and {len(want['tensors'])} tensors: {len(problems)} problems")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
