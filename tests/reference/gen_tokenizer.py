#!/usr/bin/env python3
"""Reference fixtures for tests/reference/test_tokenizer.cpp.

Trains small byte-level BPE tokenizers with HF `tokenizers` on a generated corpus, in four
pre-tokenizer flavours, saves each tokenizer.json, and writes the ids HF produces for the test
texts. usage: gen_tokenizer.py OUT_DIR
"""
import json
import os
import sys

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tokenizer_corpus import test_texts, training_corpus, unicode_sweep  # noqa: E402

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
          r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2 = LLAMA3.replace(r"\p{N}{1,3}", r"\p{N}")


def pre_tokenizer_for(flavour):
    bl = lambda use_regex: pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=use_regex)  # noqa: E731
    if flavour == "smollm":
        return pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), bl(True)])
    if flavour == "gpt2":
        return bl(True)
    pattern = LLAMA3 if flavour == "llama3" else QWEN2
    return pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(pattern), behavior="isolated"), bl(False)])


def build(flavour, out_dir):
    tok = Tokenizer(models.BPE())
    if flavour == "qwen2":
        tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizer_for(flavour)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=1200, min_frequency=2, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(training_corpus(), trainer=trainer)
    if flavour == "gpt2":
        # Added tokens with whitespace stripping, and a non-special one (always matched).
        tok.add_special_tokens([AddedToken("[MASK]", lstrip=True, rstrip=True, special=True, normalized=False)])
        tok.add_tokens([AddedToken("zebra crossing", special=False, normalized=False)])
    if flavour == "llama3":
        bos = tok.token_to_id("<|endoftext|>")
        tok.post_processor = processors.TemplateProcessing(single="<|endoftext|> $A", special_tokens=[("<|endoftext|>", bos)])
    path = os.path.join(out_dir, "tokenizer.json")
    tok.save(path)
    if flavour == "llama3":
        # Exercise model.ignore_merges as Llama-3's real tokenizer.json sets it.
        with open(path) as f:
            j = json.load(f)
        j["model"]["ignore_merges"] = True
        with open(path, "w") as f:
            json.dump(j, f, ensure_ascii=False)
        tok = Tokenizer.from_file(path)
    if flavour == "smollm":
        with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
            json.dump({"bos_token": "<|im_start|>", "eos_token": {"content": "<|im_end|>"},
                       "pad_token": "<|endoftext|>", "add_bos_token": False}, f)
    return tok


def main():
    root = sys.argv[1]
    for flavour in ["smollm", "gpt2", "llama3", "qwen2"]:
        out_dir = os.path.join(root, flavour)
        os.makedirs(out_dir, exist_ok=True)
        tok = build(flavour, out_dir)
        texts = test_texts() + unicode_sweep()
        if flavour == "gpt2":
            texts += ["a [MASK] b", "a   [MASK]   b", "[MASK]", "the zebra crossing<|im_end|>zebra crossings"]
        cases = []
        for text in texts:
            ids = tok.encode(text, add_special_tokens=False).ids
            model_ids = tok.encode(text, add_special_tokens=True).ids
            tok.encode_special_tokens = True
            plain_ids = tok.encode(text, add_special_tokens=False).ids
            tok.encode_special_tokens = False
            decoded = tok.decode(ids, skip_special_tokens=False)
            decoded_skip = tok.decode(ids, skip_special_tokens=True)
            cases.append({"text": text, "ids": ids, "model_ids": model_ids, "plain_ids": plain_ids,
                          "decoded": decoded, "decoded_skip": decoded_skip})
        with open(os.path.join(out_dir, "cases.json"), "w") as f:
            json.dump({"flavour": flavour, "vocab_size": tok.get_vocab_size(), "cases": cases}, f,
                      ensure_ascii=False)
        print(f"{flavour}: vocab {tok.get_vocab_size()}, {len(cases)} cases")


if __name__ == "__main__":
    main()
