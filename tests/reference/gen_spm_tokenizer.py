#!/usr/bin/env python3
"""Reference fixtures for tests/reference/test_spm_tokenizer.cpp.

Trains two small SentencePiece models with the `sentencepiece` package (BPE with byte fallback
in Llama-2's settings, and Unigram), converts them to tokenizer.json with HF `tokenizers` the way
transformers' converters do (Llama-2's Prepend/Replace chain; Mistral-v0.3's Metaspace "first";
Unigram with Metaspace), and writes what each reference produces for a corpus: the first
~200 KB of every shared dataset (../shared/datasets, when present) in 4 KB chunks, plus emoji,
CJK, code, whitespace runs and other edge cases. Also a byte-level BPE whose Split regex is not
one of moeforge's built-in patterns (PCRE2 runs it).
usage: gen_spm_tokenizer.py OUT_DIR
       gen_spm_tokenizer.py --model-dir OUT_DIR   (only the Llama-2 style tokenizer files and a text,
                                                   for the model tests: tests/e2e/test_spm_llama.cpp)
"""
import glob
import json
import os
import sys

import sentencepiece as spm
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

SAMPLE_BYTES = 200_000
CHUNK_BYTES = 4_000


def dataset_texts():
    """(name, text) for every shared dataset: the first ~200 KB, cut at a line end, in chunks."""
    src = os.environ.get("MOEFORGE_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
    out = []
    for path in sorted(glob.glob(os.path.join(src, "..", "shared", "datasets", "*"))):
        if path.endswith("README.md") or not os.path.isfile(path):
            continue
        with open(path, "rb") as f:
            data = f.read(SAMPLE_BYTES)
        data = data[: data.rfind(b"\n") + 1] or data
        text = data.decode("utf-8", errors="ignore")
        chunk = []
        size = 0
        for line in text.splitlines(keepends=True):
            chunk.append(line)
            size += len(line.encode())
            if size >= CHUNK_BYTES:
                out.append((os.path.basename(path), "".join(chunk)))
                chunk, size = [], 0
        if chunk:
            out.append((os.path.basename(path), "".join(chunk)))
    return out


def edge_texts():
    return [
        "", " ", "  ", "\n", "\t", "Hello world", " Hello world", "  two leading", "trailing  ", "a  b   c    d",
        "Hello\nworld\n\n\nthree newlines", "tabs\tand\t\ttabs", "windows\r\nline\r\nendings",
        "It's, I'm, you're, we've, they'll, he'd, don't",
        "Numbers: 0 1 12 123 1234 12345 3.14159 1,000,000 and 2024-01-01",
        "def f(x):\n    return x ** 2  # square\n\n\nclass A:\n\tpass\n",
        "for (int i = 0; i < n; ++i) {\n        sum += a[i];\n}",
        "日本語のテキストと中文文本。", "한국어 문장입니다.", "Café naïve résumé façade Ångström",
        "Decomposed: Cafe\u0301 nai\u0308ve", "Emoji 😀👍🏽 family 👨‍👩‍👧‍👦 flag 🇫🇷 keycap 1️⃣ 🎉",
        "Привет, мир! Γειά σου κόσμε", "مرحبا بالعالم ١٢٣", "עברית", "हिन्दी भाषा", "ไทย",
        "Unicode spaces:\u00a0nbsp\u3000ideographic\u2003em", "Zero\u200bwidth\u200cjoiners\u200d and BOM\ufeff",
        "rare: \U0001F9FF \U00020000 \U0010FFFD \u2581 literal lower block ▁▁ and ▁x",
        "<s>Hello</s>", "<s> Hello </s>", "a<s>b", "text </s> more <unk> and <s>", "<0x41> is not a byte",
        "\u0000 control \u0007 bell \u001b[31m escape", "x" * 500, "ab " * 200, "  \n  \n\t \n",
        "The quick brown fox jumps over the lazy dog. " * 5, "ŁÓDŹ İstanbul ǅ Σίσυφος ΣΑΣ",
    ]


def train(kind, text_file, prefix):
    common = dict(input=text_file, model_prefix=prefix, vocab_size=900 if kind == "bpe" else 700,
                  character_coverage=0.995, byte_fallback=True, normalization_rule_name="identity",
                  num_threads=2, minloglevel=2, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
                  hard_vocab_limit=False)  # without the shared datasets the corpus is small
    if kind == "bpe":  # Llama-2's trainer settings
        spm.SentencePieceTrainer.train(model_type="bpe", remove_extra_whitespaces=False, split_digits=True,
                                       allow_whitespace_only_pieces=True, **common)
    else:
        spm.SentencePieceTrainer.train(model_type="unigram", **common)
    return spm.SentencePieceProcessor(model_file=prefix + ".model")


def specials(tok):
    for t in ["<unk>", "<s>", "</s>"]:
        tok.add_special_tokens([AddedToken(t, special=True, normalized=False)])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])


def bpe_json(sp, style):
    """transformers' LlamaConverter: vocab and merges from the SentencePiece model."""
    vocab = {sp.id_to_piece(i): i for i in range(sp.get_piece_size())}
    scores = {sp.id_to_piece(i): sp.get_score(i) for i in range(sp.get_piece_size())}
    merges = []
    for piece, score in scores.items():
        local = [(piece[:k], piece[k:], score) for k in range(1, len(piece))
                 if piece[:k] in vocab and piece[k:] in vocab]
        merges.extend(sorted(local, key=lambda m: (vocab[m[0]], vocab[m[1]])))
    merges = [(a, b) for a, b, _ in sorted(merges, key=lambda m: m[2], reverse=True)]
    tok = Tokenizer(models.BPE(vocab, merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    if style == "legacy":   # Llama-2, TinyLlama, Mistral-7B-v0.1
        tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    else:                   # legacy=False converters (Mistral v0.3 and newer Llama tokenizers)
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    specials(tok)
    return tok


def unigram_json(sp, lower):
    vocab = [(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())]
    tok = Tokenizer(models.Unigram(vocab, unk_id=0, byte_fallback=True))
    # transformers' SentencePiece converters collapse space runs with a regex Replace (PCRE2 here).
    tok.normalizer = (normalizers.Sequence([normalizers.Strip(), normalizers.Replace(Regex(" {2,}"), " "),
                                            normalizers.Lowercase(), normalizers.NFC()])
                      if lower else normalizers.NFC())
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tok.decoder = decoders.Sequence([decoders.Metaspace(replacement="▁", prepend_scheme="always"),
                                     decoders.ByteFallback(), decoders.Fuse()])
    specials(tok)
    return tok


# A pre-tokenizer regex none of moeforge's fast paths knows: words with apostrophes kept, digit
# pairs, runs of punctuation, emoji-ish symbols alone, \p{Lu} splits camelCase.
ODD_REGEX = r"\p{Lu}?\p{Ll}+(?:'\p{L}+)?|\p{Lu}+(?!\p{Ll})|\p{N}{1,2}|\s?[\p{P}\p{S}]+|\s+(?!\S)|\s+|."


def odd_regex_json(corpus):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(ODD_REGEX), behavior="isolated"),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=800, min_frequency=2, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus, trainer=trainer)
    return tok


def hf_cases(tok, texts):
    """HF's ids, ids with BOS/EOS, and decoded text; the decoded text only where it differs
    from the input (and the skip_special one only where it differs from that), to keep the
    fixtures small."""
    batch = [t for _, t in texts]
    ids = [e.ids for e in tok.encode_batch(batch, add_special_tokens=False)]
    # BOS/EOS handling is the same for every text: checked on the edge cases only.
    edge = [i for i, (name, _) in enumerate(texts) if name == "edge"]
    model = dict(zip(edge, tok.encode_batch([batch[i] for i in edge], add_special_tokens=True)))
    decoded = tok.decode_batch(ids, skip_special_tokens=False)
    decoded_skip = tok.decode_batch(ids, skip_special_tokens=True)
    cases = []
    for i, text in enumerate(batch):
        case = {"ids": ids[i]}
        if i in model:
            case["model_ids"] = model[i].ids
        if decoded[i] != text:
            case["decoded"] = decoded[i]
        if decoded_skip[i] != decoded[i]:
            case["decoded_skip"] = decoded_skip[i]
        cases.append(case)
    return cases


def write(out_dir, name, obj):
    with open(os.path.join(out_dir, name), "w") as f:
        f.write(json.dumps(obj, ensure_ascii=False))  # dumps: the C encoder (dump streams in Python)


def model_dir(out):
    """tokenizer.json (Llama-2 chain), tokenizer.model, tokenizer_config.json and text.txt."""
    os.makedirs(out, exist_ok=True)
    data = dataset_texts()
    # Without the shared datasets: the edge cases that are plain text. text.txt is scored by
    # `moeforge perplexity` (which refuses a NUL byte) and read back by Python in text mode (which
    # turns \r\n into \n), and special-token strings would be parsed as tokens.
    def plain(t):
        return all(c.isprintable() or c in "\n\t" for c in t) and not any(s in t for s in ("<s>", "</s>", "<unk>"))
    text = "".join(t for name, t in data if name == "tinyshakespeare.txt")[:60_000] or "\n".join(
        [t for t in edge_texts() if plain(t)] * 20)
    train_file = os.path.join(out, "train.txt")
    with open(train_file, "w") as f:
        f.write(text + "\n".join(edge_texts()))
    sp = train("bpe", train_file, os.path.join(out, "spm"))
    os.replace(os.path.join(out, "spm.model"), os.path.join(out, "tokenizer.model"))
    j = json.loads(bpe_json(sp, "legacy").to_str())
    # "a b" merges: the interop environment's older `tokenizers` reads only that form (pieces
    # never contain a space, so it is unambiguous).
    j["model"]["merges"] = [m if isinstance(m, str) else " ".join(m) for m in j["model"]["merges"]]
    write(out, "tokenizer.json", j)
    write(out, "tokenizer_config.json", {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
                                         "add_bos_token": True, "add_eos_token": False})
    with open(os.path.join(out, "text.txt"), "w") as f:
        f.write(text[:6000])


def main():
    if sys.argv[1] == "--model-dir":
        model_dir(sys.argv[2])
        return
    root = sys.argv[1]
    os.makedirs(root, exist_ok=True)
    data = dataset_texts()
    edges = [("edge", t) for t in edge_texts()]
    texts = data + edges
    train_file = os.path.join(root, "train.txt")
    with open(train_file, "w") as f:
        for _, t in data[::6] or edges:
            f.write(t)
        for _, t in edges * 3:
            f.write(t + "\n")
    models_made = {"bpe": train("bpe", train_file, os.path.join(root, "spm_bpe")),
                   "unigram": train("unigram", train_file, os.path.join(root, "spm_unigram"))}

    flavours = {"bpe_legacy": bpe_json(models_made["bpe"], "legacy"),
                "bpe_metaspace": bpe_json(models_made["bpe"], "metaspace"),
                "unigram": unigram_json(models_made["unigram"], lower=False),
                "unigram_lower": unigram_json(models_made["unigram"], lower=True),
                "odd_regex": odd_regex_json([t for _, t in data[::3]] + edge_texts())}
    for name, tok in flavours.items():
        d = os.path.join(root, name)
        os.makedirs(d, exist_ok=True)
        tok.save(os.path.join(d, "tokenizer.json"))
        if name != "odd_regex":
            write(d, "tokenizer_config.json", {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
                                               "add_bos_token": True, "add_eos_token": False})
        write(d, "cases.json", {"vocab_size": tok.get_vocab_size(), "cases": hf_cases(tok, texts)})

    # SentencePiece itself, for tokenizer.model: ids and decoded text of every text.
    for kind, sp in models_made.items():
        all_ids = sp.encode([t for _, t in texts])
        cases = []
        for (_, t), ids in zip(texts, all_ids):
            case = {"ids": ids}
            if sp.decode(ids) != t:
                case["decoded"] = sp.decode(ids)
            cases.append(case)
        write(root, f"spm_{kind}_cases.json", {"vocab_size": sp.get_piece_size(), "cases": cases})
    write(root, "texts.json", [{"source": n, "text": t} for n, t in texts])
    write(root, "summary.json", {"texts": len(texts), "dataset_chunks": len(data),
                                 "datasets": sorted({n for n, _ in data}), "odd_regex": ODD_REGEX})


if __name__ == "__main__":
    main()
