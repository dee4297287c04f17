#include "infer/perplexity.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "model/kv_cache.h"
#include "model/transformer.h"

namespace mf {

namespace {

// log p(token) under softmax(logits), as llama.cpp computes it: the maximum in float, the sum of
// exponentials in double.
double log_prob(const float* logits, int vocab, int32_t token) {
  const float max_logit = *std::max_element(logits, logits + vocab);
  double sum = 0;
  for (int i = 0; i < vocab; ++i) sum += std::exp(logits[i] - max_logit);
  return double(logits[token] - max_logit) - std::log(sum);
}

}  // namespace

PerplexityResult measure_perplexity(Transformer& model, std::span<const int32_t> text_tokens,
                                    const PerplexityOptions& o, const PerplexityProgress& progress) {
  const ModelConfig& c = model.config();
  const int n_ctx = o.n_ctx;
  MF_CHECK(n_ctx >= 4, "perplexity: the context (-c) must be at least 4 tokens, got ", n_ctx);
  MF_CHECK(n_ctx <= c.max_position_embeddings, "perplexity: a context of ", n_ctx,
           " tokens is more than the model's ", c.max_position_embeddings);
  MF_CHECK(o.batch >= 1, "perplexity: the batch (-b) must be at least 1 token, got ", o.batch);
  MF_CHECK(!o.add_bos || (o.bos_id >= 0 && o.bos_id < c.vocab_size), "perplexity: the tokenizer adds BOS but its id ",
           o.bos_id, " is not in the vocabulary");
  const int64_t n_tokens = int64_t(text_tokens.size());
  MF_CHECK(n_tokens >= 2 * int64_t(n_ctx), "perplexity: the text has ", n_tokens, " tokens; a context of ", n_ctx,
           " needs at least ", 2 * int64_t(n_ctx), " (two chunks)");
  for (int32_t t : text_tokens)
    MF_CHECK(t >= 0 && t < c.vocab_size, "perplexity: token id ", t, " is outside the model's vocabulary of ",
             c.vocab_size, " (does the tokenizer belong to this model?)");

  PerplexityResult r;
  r.text_tokens = n_tokens;
  r.n_ctx = n_ctx;
  const int64_t chunk_max = n_tokens / n_ctx;
  r.chunks = int(o.chunks < 0 ? chunk_max : std::min<int64_t>(o.chunks, chunk_max));
  const int n_seq = std::max(1, o.batch / n_ctx);       // chunks side by side in one pass (as llama.cpp,
                                                        // a batch past n_ctx is rounded down to chunks)
  const int slice = std::min(o.batch, n_ctx);           // tokens of each chunk per pass
  const int first = n_ctx / 2;                          // positions before this are context only
  const int vocab = c.vocab_size;
  KVCache cache(c, n_ctx, n_seq, o.kv_cache);
  ForwardOptions fo;
  fo.all_logits = true;
  std::vector<int32_t> rows;
  double nll = 0, nll2 = 0;
  std::vector<double> chunk_nll, chunk_nll2;  // per chunk of a pass: the running estimate goes chunk by chunk
  for (int chunk = 0; chunk < r.chunks; chunk += n_seq) {
    const int seqs = std::min(n_seq, r.chunks - chunk);
    chunk_nll.assign(size_t(seqs), 0.0);
    chunk_nll2.assign(size_t(seqs), 0.0);
    cache.reset();
    for (int begin = 0; begin < n_ctx; begin += slice) {
      const int len = std::min(slice, n_ctx - begin);
      rows.resize(size_t(seqs) * size_t(len));
      for (int s = 0; s < seqs; ++s) {
        const int32_t* src = text_tokens.data() + int64_t(chunk + s) * n_ctx + begin;
        std::copy(src, src + len, rows.begin() + int64_t(s) * len);
        if (begin == 0 && o.add_bos) rows[size_t(s) * size_t(len)] = o.bos_id;  // each chunk starts as a text does
      }
      const Tensor logits = model.forward(rows, seqs, cache, fo);
      // Position p predicts token p + 1 of its chunk; scored: first <= p <= n_ctx - 2.
      for (int s = 0; s < seqs; ++s) {
        const int32_t* chunk_tokens = text_tokens.data() + int64_t(chunk + s) * n_ctx;
        for (int k = 0; k < len; ++k) {
          const int p = begin + k;
          if (p < first || p > n_ctx - 2) continue;
          const double lp = log_prob(logits.data<float>() + (int64_t(s) * len + k) * vocab, vocab, chunk_tokens[p + 1]);
          chunk_nll[size_t(s)] -= lp;
          chunk_nll2[size_t(s)] += lp * lp;
        }
      }
    }
    for (int s = 0; s < seqs; ++s) {
      nll += chunk_nll[size_t(s)];
      nll2 += chunk_nll2[size_t(s)];
      r.scored += n_ctx - 1 - first;
      r.running.push_back(std::exp(nll / double(r.scored)));
      if (progress) progress(chunk + s + 1, r.chunks, r.running.back());
    }
  }
  const double count = double(r.scored);
  r.mean_nll = nll / count;
  r.ppl = std::exp(r.mean_nll);
  const double variance = nll2 / count - r.mean_nll * r.mean_nll;
  r.nll_std_error = variance > 0 && count > 1 ? std::sqrt(variance / (count - 1)) : 0.0;
  r.ppl_error = r.nll_std_error * r.ppl;
  return r;
}

}  // namespace mf
