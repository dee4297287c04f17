#include "model/grad_parts.h"

#include "core/error.h"
#include "model/tensor_names.h"

namespace mf {

int grad_part_of(const ModelConfig& c, const std::string& name) {
  if (name == kFinalNormName) return kHeadGradPart;
  // A tied head writes its gradient into the embedding's, which is final only after the
  // embedding backward; an untied lm_head is final right after the loss.
  if (name == kLmHeadName) return c.tie_word_embeddings ? embedding_grad_part(c) : kHeadGradPart;
  if (name == kEmbedTokensName) return embedding_grad_part(c);
  const std::string layers = "model.layers.";
  if (name.compare(0, layers.size(), layers) == 0) {
    const size_t dot = name.find('.', layers.size());
    const std::string digits = name.substr(layers.size(), dot == std::string::npos ? 0 : dot - layers.size());
    if (!digits.empty() && digits.size() < 9 && digits.find_first_not_of("0123456789") == std::string::npos) {
      const int l = std::stoi(digits);
      if (l < c.num_layers) return layer_grad_part(c, l);
    }
  }
  fail("gradient parts: '", name, "' is not a tensor of this model's head, layers or embedding");
}

}  // namespace mf
