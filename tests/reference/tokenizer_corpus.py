"""Test texts shared by gen_tokenizer.py and gen_tokenizer_smollm2.py."""


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
