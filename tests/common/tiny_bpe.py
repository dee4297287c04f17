"""A small byte-level BPE tokenizer trained by HF `tokenizers`, for the test generators that need
a real tokenizer.json: GPT-2's pre-tokenizer and byte-level decoder, optionally a post-processor
that adds BOS as Llama-family tokenizers do."""
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers


def train_byte_level_bpe(lines, vocab_size, special_tokens, bos=None):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special_tokens,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(lines, trainer=trainer)
    if bos is not None:
        tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A",
                                                           special_tokens=[(bos, tok.token_to_id(bos))])
    return tok


def save_for_older_tokenizers(tok, path):
    """Saves `tok` with its merges as "left right" strings, the form every `tokenizers` release
    reads (current ones write pairs, which the < 0.20 that transformers 4.44 pins cannot parse)."""
    import json
    j = json.loads(tok.to_str())
    j["model"]["merges"] = [m if isinstance(m, str) else " ".join(m) for m in j["model"]["merges"]]
    with open(path, "w", encoding="utf-8") as f:
        json.dump(j, f, ensure_ascii=False)
