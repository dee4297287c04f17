#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace mf {

std::vector<int32_t> encode_for_model(const Tokenizer& tok, std::string_view text, bool parse_special) {
  std::vector<int32_t> ids;
  if (tok.add_bos && tok.bos_id >= 0) ids.push_back(tok.bos_id);
  const std::vector<int32_t> body = tok.encode(text, parse_special);
  ids.insert(ids.end(), body.begin(), body.end());
  if (tok.add_eos && tok.eos_id >= 0) ids.push_back(tok.eos_id);
  return ids;
}

StreamDecoder::StreamDecoder(const Tokenizer& tok, bool skip_special) : tok_(tok), skip_special_(skip_special) {}

std::string StreamDecoder::push(int32_t id) {
  if (skip_special_ && tok_.is_special(id)) return {};
  pending_ += opening_ ? tok_.opening_token_bytes(id, opening_) : tok_.token_bytes(id);
  const size_t ready = unicode::complete_utf8_prefix(pending_);
  std::string out = pending_.substr(0, ready);
  pending_.erase(0, ready);
  return out;
}

std::string StreamDecoder::flush() {
  std::string out;
  out.swap(pending_);
  opening_ = true;
  return out;
}

}  // namespace mf
