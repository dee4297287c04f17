#!/usr/bin/env python3
"""llama.cpp (through llama-cpp-python) tokenizes a moeforge-exported SentencePiece GGUF exactly as
moeforge does: ids with BOS and special-token parsing for every text, and its detokenized text
(less the space llama.cpp keeps before the first word) equals the input where a text can
round-trip.
usage: check_llama_cpp_spm.py GGUF TEXTS.json MOEFORGE_IDS.json
"""
import json
import sys

from llama_cpp import Llama


def main():
    gguf, texts_path, ids_path = sys.argv[1:4]
    texts = json.load(open(texts_path))
    expected = json.load(open(ids_path))
    llm = Llama(model_path=gguf, vocab_only=True, verbose=False)
    mismatches, tokens, decode_mismatches = [], 0, 0
    for text, want in zip(texts, expected):
        got = llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)
        tokens += len(want)
        if got != want:
            at = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
            mismatches.append(f"[{text[:60]!r}] at token {at}: llama.cpp {got[at:at + 8]} moeforge {want[at:at + 8]}")
        # Special tokens decode to nothing, and a literal "▁" in the text comes back as a space
        # (in HF's decoder too): those texts cannot round-trip.
        if not any(s in text for s in ("<s>", "</s>", "<unk>", "\u2581")):
            back = llm.detokenize(got[1:]).decode("utf-8", "replace")
            if back != text and back != " " + text:
                decode_mismatches += 1
                print(f"decode differs: {text[:60]!r} -> {back[:60]!r}", file=sys.stderr)
    print(json.dumps({"texts": len(texts), "tokens": tokens, "id_mismatches": len(mismatches),
                      "decode_mismatches": decode_mismatches}))
    for m in mismatches[:5]:
        print(m, file=sys.stderr)
    return 1 if mismatches or decode_mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
