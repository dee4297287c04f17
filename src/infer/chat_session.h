// A multi-turn conversation over one model: history, system prompt, prompt rendering with
// the model's chat template, KV-cache reuse between turns, and trimming of the oldest turns
// (always reported through the notice callback) when the context would overflow.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "chat/chat_template.h"
#include "infer/generate.h"

namespace mf {

struct ChatOptions {
  std::string system_prompt;     // empty: none (the template may still add its default)
  GenerateOptions generation;
};

class ChatSession {
 public:
  // The model, tokenizer and template must outlive the session.
  ChatSession(LanguageModel& model, const Tokenizer& tok, const ChatTemplate& tmpl, ChatOptions opts);

  // Adds the user turn, generates the answer (streamed to on_text), records it in history.
  // An answer cancelled through GenerateOptions::cancel stays as the assistant turn with the
  // text written so far (the person saw it, and the model's cache holds it); one cancelled
  // before its first character leaves no trace, the user turn is dropped as well.
  GenerateResult send(const std::string& user_text, const TextCallback& on_text = {});
  void reset();                                    // forgets the turns, keeps the system prompt
  void set_system_prompt(std::string text);        // applies from the next turn on
  // Replaces the conversation (e.g. one read back by load_conversation); the cached tokens it
  // shares with the old one are reused by the next turn.
  void restore(std::string system_prompt, std::vector<ChatMessage> turns);
  const std::string& system_prompt() const { return opts_.system_prompt; }
  const std::vector<ChatMessage>& turns() const { return turns_; }
  // Receives human-readable notices, e.g. "dropped 2 oldest messages to fit the context".
  void set_notice_callback(std::function<void(const std::string&)> cb) { notice_ = std::move(cb); }
  // The messages as the template sees them (system prompt first when set).
  std::vector<ChatMessage> messages() const;
  GenerateOptions& generation_options() { return opts_.generation; }

 private:
  std::vector<int32_t> render_tokens(const std::vector<ChatMessage>& msgs) const;

  ModelContext ctx_;
  const Tokenizer& tok_;
  const ChatTemplate& tmpl_;
  ChatOptions opts_;
  std::vector<ChatMessage> turns_;
  std::function<void(const std::string&)> notice_;
};

}  // namespace mf
