// A training run as its recipe describes it, made ready by the library: the tokenizer (built from
// the text, the init model's own, or a file), the chat template that goes with it, the training
// data (instruction examples, or token windows through the token cache) and the initial weights;
// and, once the trainer has run, what goes beside its outputs (tokenizer files, the sample,
// summary.json). `moeforge train` keeps only its flags, the device choice, the call and the
// summary line.
#pragma once
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "data/token_windows.h"
#include "chat/chat_template.h"
#include "model/weights.h"
#include "tokenizer/tokenizer.h"
#include "train/recipe.h"
#include "train/sft_inputs.h"
#include "train/trainer.h"
#include "train/training_data.h"

namespace mf {

struct TrainingSession {
  Recipe recipe;
  bool sft = false;                       // instruction data (else pretraining text)
  std::unique_ptr<Tokenizer> tokenizer;
  std::unique_ptr<ChatTemplate> chat;     // instruction data only
  SftExamples sft_train, sft_valid;       // instruction data: what `data` reads
  TokenSplit split;                       // pretraining text: what `data` reads
  std::unique_ptr<TrainingData> data;
  ModelWeights weights;                   // moved out by whoever builds the training model
  std::string data_sizes;                 // "N train / M valid examples" (or tokens)

  TrainingSession() = default;
  TrainingSession(const TrainingSession&) = delete;  // `data` refers to the examples or split
  TrainingSession& operator=(const TrainingSession&) = delete;
};

// Throws mf::Error naming the recipe, file or key that is wrong. quiet: no progress on stderr.
std::unique_ptr<TrainingSession> prepare_training_session(const Recipe& recipe, bool quiet);

// The tokenizer files (and chat template) beside an exported model directory, so that it loads
// on its own: the trainer's export hook, called for best/ at each new best and for model/.
void write_session_tokenizer(const TrainingSession& session, const std::string& model_dir);

// After training: the tokenizer beside the exported model (and the best one), the recipe's
// sample (sample.txt), and summary.json in the run directory. Returns the summary.
nlohmann::json finish_training_session(const TrainingSession& session, const TrainResult& result, bool quiet);

}  // namespace mf
