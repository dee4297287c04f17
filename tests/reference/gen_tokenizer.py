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


def training_corpus():
    """A small generated corpus (no network) the BPE trainers learn from."""
    words = ("the quick brown fox jumps over the lazy dog while a model learns to route tokens "
             "between experts and every expert sees only the tokens its router sends it").split()
    lines = []
    for i in range(400):
        a, b, c = words[i % len(words)], words[(i * 7) % len(words)], words[(i * 13) % len(words)]
        lines.append(f"{a.capitalize()} {b} {c}, {i * 37 % 1000} times; it's {a}'s turn.")
        lines.append(f"def {a}_{b}(x, y):\n\treturn x * {i} + y  # {c}\n")
        lines.append(f"    if ({a} == {i % 10}) {{ {b}++; }}\r\n")
    lines += ["日本語のテキストと中文文本。", "한국어 문장입니다.", "Café naïve résumé façade Ångström",
              "😀 👍🏽 👨‍👩‍👧‍👦 🇫🇷", "Привет, мир! Γειά σου κόσμε", "مرحبا بالعالم ١٢٣"] * 20
    return lines


def test_texts():
    """What the C++ tests must encode exactly as HF does."""
    return [
        "",
        "Hello world",
        "Hello, world! How are you today?",
        " leading space",
        "trailing space ",
        "   three leading spaces",
        "multiple   spaces   between    words",
        "tabs\tand\t\ttabs\t",
        "line one\nline two\n\nline four\n",
        "windows\r\nline\r\n\r\nendings",
        "  \n  \n\t \n",
        " ",
        "\n",
        "\t\t",
        "It's, I'm, you're, we've, they'll, he'd, don't",
        "IT'S, I'M, YOU'RE, WE'VE, THEY'LL, HE'D, DON'T and x'ſ and 'Ll",
        "'s 'S ' s '' '",
        "x'ſt I'Sx 'LLama 'REal 'vE",
        "Done.\r\n\r\nNext!\r\n?\n b;\n\n",
        "Numbers: 0 1 12 123 1234 12345 3.14159 1,000,000 and 2024-01-01",
        "Arabic-Indic ١٢٣٤٥ roman Ⅻ superscript x² fractions ½ ¾",
        "Punctuation!!! ??? ... --- ((())) [[]] {{}} @#$%^&*_+=|\\/<>~`",
        "def f(x):\n    return x ** 2  # square\n\n\nclass A:\n\tpass\n",
        "for (int i = 0; i < n; ++i) {\n        sum += a[i];\n}",
        "日本語のテキストと中文文本。",
        "한국어 문장입니다.",
        "Café naïve résumé façade Ångström",
        "Decomposed: Cafe\u0301 nai\u0308ve A\u030angstro\u0308m",
        "Marks out of order: a\u0323\u0301 a\u0301\u0323 q\u0307\u0323",
        "Hangul jamo: \u1100\u1161\u11a8 \u1112\u1161\u11ab",
        "Emoji 😀👍🏽 family 👨‍👩‍👧‍👦 flag 🇫🇷 keycap 1️⃣",
        "Привет, мир! Γειά σου κόσμε",
        "مرحبا بالعالم",
        "Unicode spaces:\u00a0nbsp\u3000ideographic\u2003em\u2028line\u2029para\u0085nel",
        "Zero\u200bwidth\u200cjoiners\u200d and BOM\ufeff",
        "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
        "inline<|endoftext|>special<|im_end|><|im_start|>",
        "not quite <|im_start| or <|im_end or |im_end|>",
        "The quick brown fox jumps over the lazy dog while a model learns to route tokens.",
        "x" * 300,
        "ab" * 150 + " " + "1" * 40,
        "mixed123abc456 ab12cd 9x 1.5e10 0xFF",
        "   \t  mixed whitespace before text",
        "end with newline and spaces\n   ",
        "emoji at end 🎉",
        "a\u0301\u0302\u0303\u0304",
        "ǅungla ʰmodifier ǈ Titlecase",
    ]


def unicode_sweep():
    """Strings sampling the whole code space, so every character class table is exercised."""
    cps = [cp for cp in range(0x80, 0x110000, 131) if not (0xD800 <= cp < 0xE000)]
    texts = []
    for i in range(0, len(cps), 200):
        chunk = cps[i:i + 200]
        # Alternate separators so letters/numbers/others meet spaces and each other.
        s = "".join(chr(cp) + (" " if j % 3 == 0 else "a" if j % 3 == 1 else "") for j, cp in enumerate(chunk))
        texts.append(s)
    return texts


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


def nfc_cases():
    """Inputs for NFC, with HF's own NFC normalizer output: every canonical decomposition,
    decomposed, and random base letters followed by combining marks in random order.

    Only characters that Unicode 3.2 already had: `tokenizers` normalizes with an old copy of
    the Unicode data (it misses e.g. the class of U+1ABF, Unicode 14, and the composition
    U+11935 U+11930 -> U+11938, Unicode 13) while our tables are Unicode 16, so for marks
    and compositions newer than that copy the two legitimately differ."""
    import random
    import unicodedata
    from tokenizers import normalizers
    old = unicodedata.ucd_3_2_0

    def known(cp):
        return old.category(chr(cp)) != "Cn" and not 0xD800 <= cp < 0xE000

    decomposable = [cp for cp in range(0xA0, 0x30000)
                    if known(cp) and old.decomposition(chr(cp)) and not old.decomposition(chr(cp)).startswith("<")]
    texts = []
    for i in range(0, len(decomposable), 60):
        texts.append(" ".join(unicodedata.normalize("NFD", chr(cp)) for cp in decomposable[i:i + 60]))
    texts.append("".join(chr(cp) for cp in range(0xAC00, 0xD7A4, 7)))  # precomposed Hangul
    marks = [cp for cp in range(0x300, 0x2000) if known(cp) and old.combining(chr(cp))]
    rng = random.Random(1234)
    bases = "aeiouAEIOUnNcCsSzZyYwWkKgGhHrR\u0391\u03b1\u0415\u0435\u1100\u1161\u11a8"
    for _ in range(40):
        texts.append("".join(rng.choice(bases) + "".join(chr(rng.choice(marks)) for _ in range(rng.randint(0, 4)))
                             for _ in range(30)))
    nfc = normalizers.NFC()
    return [{"text": t, "nfc": nfc.normalize_str(t)} for t in texts]


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
            pieces = [piece for piece, _ in tok.pre_tokenizer.pre_tokenize_str(text)]
            cases.append({"text": text, "ids": ids, "pieces": pieces, "model_ids": model_ids, "plain_ids": plain_ids,
                          "decoded": decoded, "decoded_skip": decoded_skip})
        with open(os.path.join(out_dir, "cases.json"), "w") as f:
            json.dump({"flavour": flavour, "vocab_size": tok.get_vocab_size(), "cases": cases}, f,
                      ensure_ascii=False)
    with open(os.path.join(root, "nfc.json"), "w") as f:
        json.dump(nfc_cases(), f, ensure_ascii=False)
        print(f"{flavour}: vocab {tok.get_vocab_size()}, {len(cases)} cases")


if __name__ == "__main__":
    main()
