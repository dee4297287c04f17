#include "infer/chat_input.h"

namespace mf {

namespace {

constexpr std::string_view kFence = "\"\"\"";

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }
bool ends_with(std::string_view s, std::string_view p) { return s.size() >= p.size() && s.substr(s.size() - p.size()) == p; }

}  // namespace

void ChatInputAssembler::clear() {
  text_.clear();
  continuing_ = false;
  in_block_ = false;
}

std::optional<std::string> ChatInputAssembler::finish() {
  std::string out = std::move(text_);
  clear();
  // A paste or a continuation that ended with a newline leaves empty last lines, and a block
  // opened by a bare """ an empty first one; they are no part of the message.
  const size_t first = out.find_first_not_of('\n');
  if (first == std::string::npos) return std::nullopt;
  out.erase(0, first);
  while (out.back() == '\n') out.pop_back();
  return out;
}

std::optional<std::string> ChatInputAssembler::add(std::string_view line, bool ended_inside_paste) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (continuing_) text_.push_back('\n');
  if (in_block_) {
    // Inside a block every line is literal until one ends the block.
    if (ends_with(line, kFence)) {
      text_.append(line.substr(0, line.size() - kFence.size()));
      return finish();
    }
    text_.append(line);
    return std::nullopt;
  }
  if (!continuing_ && starts_with(line, kFence)) {
    line.remove_prefix(kFence.size());
    if (ends_with(line, kFence)) {  // """one line"""
      text_.append(line.substr(0, line.size() - kFence.size()));
      return finish();
    }
    text_.append(line);
    in_block_ = continuing_ = true;
    return std::nullopt;
  }
  if (ends_with(line, "\\")) {
    text_.append(line.substr(0, line.size() - 1));
    continuing_ = true;
    return std::nullopt;
  }
  text_.append(line);
  if (ended_inside_paste) {
    continuing_ = true;
    return std::nullopt;
  }
  return finish();
}

}  // namespace mf
