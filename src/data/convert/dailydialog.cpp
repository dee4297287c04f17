// DailyDialog: one dialogue per line, each turn ending with "__eou__", text tokenised with spaces
// around punctuation (undone here). Every turn after the first becomes one record: the turn
// before it is the instruction, the turns before that the history. The history keeps at most
// the last kMaxHistoryTurns turns and an even number of them, so that it always opens with a
// user turn and roles alternate up to the record's own user -> assistant pair.
#include <fstream>
#include <regex>

#include "data/convert/detokenize.h"
#include "data/convert/formats.h"
#include "data/convert/text_clean.h"
#include "io/text_check.h"

namespace mf {
namespace {

constexpr size_t kMaxHistoryTurns = 6;
constexpr std::string_view kEndOfUtterance = "__eou__";

// DailyDialog often lacks the space after a full stop ("right.But", "OK.See", "Mr.Smith"). A
// word of two or more letters or a digit before the stop and a capital after it count, so
// abbreviations of single letters ("U.S.A.", "p.m.") stay as they are.
std::string space_after_full_stops(const std::string& s) {
  static const std::regex glued(R"(([A-Za-z]{2,}|[0-9])\.([A-Z]))");
  return std::regex_replace(s, glued, "$1. $2");
}

std::vector<std::string> turns_of(const std::string& line) {
  std::vector<std::string> turns;
  size_t pos = 0;
  while (pos < line.size()) {
    const size_t end = line.find(kEndOfUtterance, pos);
    const std::string turn =
        space_after_full_stops(detokenize(std::string_view(line).substr(pos, end == std::string::npos ? end : end - pos)));
    if (!turn.empty()) turns.push_back(turn);
    if (end == std::string::npos) break;
    pos = end + kEndOfUtterance.size();
  }
  return turns;
}

Converted convert_dialogues(const ConvertInput& in, BadRecordPolicy& bad) {
  Converted out;
  std::ifstream file(in.path, std::ios::binary);
  MF_CHECK(file, in.path, ": cannot open");
  std::string line;
  for (int64_t n = 1; std::getline(file, line); ++n) {
    check_text(line, in.path, n);
    if (trim(line).empty()) continue;
    if (line.find(kEndOfUtterance) == std::string::npos) {
      bad.report(in.path, n, "no \"__eou__\" turn marks: not a DailyDialog dialogue line");
      continue;
    }
    const std::vector<std::string> turns = turns_of(line);
    if (turns.size() < 2) {
      ++out.dropped;
      continue;
    }
    for (size_t reply = 1; reply < turns.size(); ++reply) {
      SftRecord r;
      r.instruction = turns[reply - 1];
      r.output = turns[reply];
      r.source = in.source;
      size_t earlier = std::min(reply - 1, kMaxHistoryTurns);
      earlier -= earlier % 2;
      for (size_t t = reply - 1 - earlier; t < reply - 1; ++t)
        r.history.push_back({(reply - 1 - t) % 2 == 0 ? "user" : "assistant", turns[t]});
      out.records.push_back(std::move(r));
    }
  }
  return out;
}

}  // namespace

Format dailydialog_format() {
  Format f;
  f.name = "dailydialog";
  f.description = "text, one dialogue per line, turns ending in __eou__: DailyDialog";
  f.sniff = [](const FileSample& s) {
    return s.layout == FileSample::Layout::text && s.head.substr(0, s.head.find('\n')).find(kEndOfUtterance) != std::string::npos;
  };
  f.convert = convert_dialogues;
  return f;
}

}  // namespace mf
