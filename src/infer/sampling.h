// Next-token selection with Hugging Face semantics: repetition penalty first, then
// temperature, top-k, top-p (nucleus) and min-p, then a seeded draw. temperature 0 = greedy.
#pragma once
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "core/rng.h"

namespace mf {

struct SamplingParams {
  float temperature = 0.0f;     // 0: greedy (argmax, lowest id wins ties)
  int top_k = 0;                // 0: off
  float top_p = 1.0f;           // 1: off
  float min_p = 0.0f;           // 0: off; keeps p >= min_p * max p
  float repeat_penalty = 1.0f;  // 1: off; HF: positive logits / penalty, negative * penalty
  int repeat_last_n = 0;        // penalise only the last n history tokens; 0: all of them
  uint64_t seed = 0;
  // Throws mf::Error naming the bad field (negative temperature, top_p outside (0,1], ...).
  void validate() const;
};

class Sampler {
 public:
  explicit Sampler(SamplingParams params);

  // `history`: the tokens the repetition penalty looks at (prompt + generated so far).
  int32_t sample(std::span<const float> logits, std::span<const int32_t> history);

  // The distribution the draw is taken from: (token, probability) after every filter,
  // most probable first; greedy gives one entry with probability 1.
  std::vector<std::pair<int32_t, double>> distribution(std::span<const float> logits,
                                                       std::span<const int32_t> history) const;

  const SamplingParams& params() const { return params_; }
  void reseed(uint64_t seed) { rng_.reseed(seed); }

 private:
  SamplingParams params_;
  Rng rng_;
};

// In place: each distinct token of `seen` has its logit divided by `penalty` when positive,
// multiplied when negative (HF RepetitionPenaltyLogitsProcessor). Out-of-range ids are ignored.
void apply_repetition_penalty(std::span<float> logits, std::span<const int32_t> seen, float penalty);

// In place, OpenAI's frequency and presence penalties over the tokens generated so far (not the
// prompt): logit[j] -= count_j * frequency + (count_j > 0) * presence. Unlike the repetition
// penalty above they subtract, so they act the same on positive and negative logits, and the
// frequency term grows with every repeat. Out-of-range ids are ignored.
void apply_frequency_presence_penalties(std::span<float> logits, std::span<const int32_t> generated, float frequency,
                                        float presence);

}  // namespace mf
