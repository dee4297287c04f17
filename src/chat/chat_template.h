// Chat templates: turn a conversation into the prompt text a model was trained on, by
// rendering the model's own Jinja2 template (tokenizer_config.json "chat_template" or GGUF
// "tokenizer.chat_template") with the variables transformers passes.
#pragma once
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace mf {

namespace jinja {
class Template;
}

struct ChatMessage {
  std::string role;      // "system" | "user" | "assistant" (templates may allow others)
  std::string content;
};

class ChatTemplate {
 public:
  // Parses once; throws mf::Error naming `origin` and the line:col of a syntax error.
  ChatTemplate(std::string source, std::string bos_token, std::string eos_token,
               std::string origin = "chat_template");
  ~ChatTemplate();
  ChatTemplate(ChatTemplate&&) noexcept;
  ChatTemplate& operator=(ChatTemplate&&) noexcept;

  // Renders with messages, add_generation_prompt, bos_token and eos_token.
  std::string render(std::span<const ChatMessage> messages, bool add_generation_prompt) const;
  const std::string& source() const { return source_; }
  // "chatml" | "llama3" | "mistral" | "llama2" | "gemma" | "zephyr" | "unknown"
  std::string family() const;

 private:
  std::string source_, bos_, eos_;
  std::unique_ptr<jinja::Template> tmpl_;
};

// The ChatML template used when a model ships none (what SmolLM2/Qwen2 style models use).
const std::string& default_chatml_template();
// Recognises a template's family by the markers it emits.
std::string chat_template_family(const std::string& source);

}  // namespace mf
