// GSM8K: {"question", "answer"}. The answer's worked steps are kept without the calculator
// annotations ("48/2 = <<48/2=24>>24" -> "48/2 = 24"), and its closing "#### 72" line becomes
// the sentence "The answer is 72." so that the final number reads as part of the reply.
#include "data/convert/json_records.h"
#include "data/convert/text_clean.h"

namespace mf {
namespace {

std::string answer_text(const std::string& answer) {
  std::string steps;
  for (size_t i = 0; i < answer.size();) {
    const size_t open = answer.find("<<", i);
    const size_t close = open == std::string::npos ? open : answer.find(">>", open + 2);
    if (close == std::string::npos) {
      steps.append(answer, i, std::string::npos);
      break;
    }
    steps.append(answer, i, open - i);
    i = close + 2;
  }
  const size_t mark = steps.rfind("####");
  if (mark == std::string::npos) throw RecordError("field \"answer\" has no final \"#### N\" line");
  const std::string final_answer = trim(std::string_view(steps).substr(mark + 4));
  if (final_answer.empty()) throw RecordError("field \"answer\" has an empty \"####\" line");
  std::string worked = trim(std::string_view(steps).substr(0, mark));
  return (worked.empty() ? "" : worked + "\n") + "The answer is " + final_answer + ".";
}

}  // namespace

Format gsm8k_format() {
  Format f;
  f.name = "gsm8k";
  f.description = "JSONL of {question, answer} with <<calc>> annotations and a final '#### N': GSM8K";
  f.sniff = [](const FileSample& s) { return has_fields(s, {"question", "answer"}); };
  f.convert = [](const ConvertInput& in, BadRecordPolicy& bad) {
    return convert_json_records(in, bad, [](const nlohmann::json& j) -> std::optional<SftRecord> {
      SftRecord r;
      r.instruction = trim(required_string(j, "question"));
      r.output = answer_text(required_string(j, "answer"));
      if (r.instruction.empty()) return std::nullopt;
      return r;
    });
  };
  return f;
}

}  // namespace mf
