#!/usr/bin/env python3
"""Reference fixtures for tests/reference/test_tokenizer_smollm2.cpp.

Reads the SmolLM2-135M-Instruct GGUF's tokenizer.ggml.* with the `gguf` package, writes them as
JSON (the C++ test builds a BpeVocab from it, the same data a GGUF reader hands over), builds
an HF `tokenizers` Tokenizer from the same vocab and merges with SmolLM2's pre-tokenizer
(Digits individual, then ByteLevel without prefix space) and writes its ids for the shared test
texts, a ChatML chat, and a long text. When the model is not cached it writes only a note,
and the C++ test skips. usage: gen_tokenizer_smollm2.py OUT_DIR
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_tokenizer import test_texts, unicode_sweep  # noqa: E402

NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def model_path():
    cache = os.environ.get("MOEFORGE_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "moeforge"))
    return os.path.join(cache, NAME)


def model_or_note(out_dir):
    """The cached GGUF's path, or None after leaving a note for the C++ test (which then skips)."""
    path = model_path()
    if os.path.exists(path):
        return path
    with open(os.path.join(out_dir, "absent.txt"), "w") as f:
        f.write(f"{path} not found; run scripts/fetch-smollm2.sh\n")
    print(f"SKIP: {path} not found")
    return None


def read_gguf_tokenizer(path):
    import gguf
    r = gguf.GGUFReader(path)

    def field(key):
        return r.fields.get(key)

    def strings(key):
        f = field(key)
        return [bytes(f.parts[i]).decode("utf-8") for i in f.data]

    def scalar(key, default):
        f = field(key)
        return default if f is None else f.parts[f.data[0]].tolist()[0]

    types = [int(field("tokenizer.ggml.token_type").parts[i][0]) for i in field("tokenizer.ggml.token_type").data]
    return {
        "tokens": strings("tokenizer.ggml.tokens"),
        "merges": strings("tokenizer.ggml.merges"),
        "token_types": types,
        "pre": bytes(field("tokenizer.ggml.pre").parts[field("tokenizer.ggml.pre").data[0]]).decode(),
        "bos_id": scalar("tokenizer.ggml.bos_token_id", -1),
        "eos_id": scalar("tokenizer.ggml.eos_token_id", -1),
        "pad_id": scalar("tokenizer.ggml.padding_token_id", -1),
        "unk_id": scalar("tokenizer.ggml.unknown_token_id", -1),
        "add_bos": bool(scalar("tokenizer.ggml.add_bos_token", False)),
    }


def hf_tokenizer(v):
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    vocab = {t: i for i, t in enumerate(v["tokens"])}
    merges = [tuple(m.split(" ", 1)) for m in v["merges"]]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t, ty in zip(v["tokens"], v["token_types"]) if ty == 3])
    return tok


CHAT = ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        "<|im_start|>user\nWhat's 2+2? Explain it in 3 short steps, then write `print(2 + 2)`.<|im_end|>\n"
        "<|im_start|>assistant\n")


def main():
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    path = model_or_note(out_dir)
    if path is None:
        return
    v = read_gguf_tokenizer(path)
    with open(os.path.join(out_dir, "vocab.json"), "w") as f:
        json.dump(v, f, ensure_ascii=False)
    tok = hf_tokenizer(v)
    cases = []
    for text in test_texts() + unicode_sweep() + [CHAT]:
        ids = tok.encode(text, add_special_tokens=False).ids
        cases.append({"text": text, "ids": ids, "decoded": tok.decode(ids, skip_special_tokens=False)})
    long_text = "\n".join(test_texts()) * 100
    t0 = time.perf_counter()
    long_ids = tok.encode(long_text, add_special_tokens=False).ids
    hf_seconds = time.perf_counter() - t0
    with open(os.path.join(out_dir, "cases.json"), "w") as f:
        json.dump({"cases": cases, "chat": CHAT, "long_text": long_text, "long_ids": long_ids,
                   "hf_long_seconds": hf_seconds}, f, ensure_ascii=False)
    print(f"vocab {len(v['tokens'])}, merges {len(v['merges'])}, pre {v['pre']}, {len(cases)} cases, "
          f"long text {len(long_text)} bytes -> {len(long_ids)} ids in {hf_seconds:.3f}s (HF)")


if __name__ == "__main__":
    main()
