// Where the trainer's batches come from: pretraining windows over a token stream, or
// length-bucketed instruction examples. The trainer only sees micro-batches, the validation
// batches, and an opaque position it saves in checkpoints to resume exactly.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/rng.h"

namespace mf {

struct Batch {
  std::vector<int32_t> tokens, targets;  // [rows, cols]; a target < 0 carries no loss (prompt, padding)
  int rows = 0, cols = 0;
  int64_t real_tokens = 0;               // positions that are not padding (for tokens/s)
  // Instruction data: per row, the record's domain (an index into TrainingData::domain_names()).
  // Empty for pretraining windows.
  std::vector<int32_t> row_domain;
};

class TrainingData {
 public:
  virtual ~TrainingData() = default;
  // The next training micro-batch.
  virtual void next(Batch& out) = 0;
  // The fixed validation batches (the same tokens at every evaluation).
  virtual size_t eval_batches() const = 0;
  virtual void eval_batch(size_t i, Batch& out) const = 0;
  // The sampling position as JSON text, and back (checkpoints).
  virtual std::string state() const = 0;
  virtual void set_state(const std::string& state) = 0;
  // The domains that Batch::row_domain indexes (instruction data); empty otherwise.
  virtual const std::vector<std::string>& domain_names() const {
    static const std::vector<std::string> none;
    return none;
  }
};

// An Rng state as JSON and back, for the sources' state().
nlohmann::json rng_state_to_json(const Rng::State& s);
Rng::State rng_state_from_json(const nlohmann::json& j);

}  // namespace mf
