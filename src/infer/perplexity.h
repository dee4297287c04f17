// Perplexity of a text, measured the way llama.cpp's perplexity tool measures it, so the two
// figures can be compared: the whole text tokenized once; non-overlapping chunks of n_ctx tokens,
// each evaluated from an empty cache with its first token replaced by BOS when the tokenizer adds
// one; only the second half of each chunk scored (every scored token sees at least n_ctx/2 of
// context); the running estimate after each chunk; the final figure exp(mean NLL) with the
// standard error of the mean NLL carried through exp.
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "model/kv_cache.h"

namespace mf {

class Transformer;

struct PerplexityOptions {
  int n_ctx = 512;    // tokens per chunk (llama.cpp's -c)
  int chunks = -1;    // at most this many chunks; -1: as many as the text holds
  // Tokens per forward pass (llama.cpp's -b): a batch of n_ctx or more evaluates batch/n_ctx
  // whole chunks side by side; a smaller one evaluates a chunk in slices. The figure is the same.
  int batch = 512;
  bool add_bos = false;
  int32_t bos_id = -1;
  KVCacheTypes kv_cache;  // the KV cache's element types (llama.cpp's -ctk/-ctv)
};

struct PerplexityResult {
  int64_t text_tokens = 0;       // the whole tokenized text
  int chunks = 0, n_ctx = 0;
  int64_t scored = 0;            // tokens scored: chunks * (n_ctx - 1 - n_ctx/2)
  double mean_nll = 0, nll_std_error = 0;
  double ppl = 0, ppl_error = 0; // exp(mean_nll) and its standard error
  std::vector<double> running;   // the estimate after each chunk
};

// Called after each chunk: chunks done, chunks in all, the running estimate.
using PerplexityProgress = std::function<void(int done, int total, double running_ppl)>;

// Throws mf::Error when the text has fewer than 2 * n_ctx tokens (llama.cpp's rule) or the
// options are out of range.
PerplexityResult measure_perplexity(Transformer& model, std::span<const int32_t> text_tokens,
                                    const PerplexityOptions& opts, const PerplexityProgress& progress = {});

}  // namespace mf
