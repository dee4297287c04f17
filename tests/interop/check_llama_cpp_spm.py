#!/usr/bin/env python3
"""llama.cpp (through llama-cpp-python) tokenizes a moeforge-exported SentencePiece GGUF exactly as
moeforge does: ids with BOS and special-token parsing for every text, and its detokenized text
(less the space llama.cpp keeps before the first word) equals the input where a text can
round-trip.
usage: check_llama_cpp_spm.py GGUF TEXTS.json MOEFORGE_IDS.json
"""
import ctypes
import json
import sys

import llama_cpp
from llama_cpp import Llama

PIECE_BUFFER = 1024


def detokenize(llm, ids):
    """llama.cpp's own detokenization (llama_token_to_piece) with a buffer that holds any piece:
    llama-cpp-python's Llama.detokenize gives each piece 32 bytes and silently drops a longer one
    (a small vocabulary trained on few texts has 40-byte CJK pieces)."""
    buf = (ctypes.c_char * PIECE_BUFFER)()
    out = b""
    for t in ids:
        n = llama_cpp.llama_token_to_piece(llm._model.vocab, llama_cpp.llama_token(t), buf, PIECE_BUFFER, 0, False)
        if n < 0 or n > PIECE_BUFFER:
            sys.exit(f"token {t}: a piece of {-n} bytes")
        out += bytes(buf[:n])
    return out


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
            back = detokenize(llm, got[1:]).decode("utf-8", "replace")
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
