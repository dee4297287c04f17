// WikiText (raw): Wikipedia articles, one paragraph per line, headings as " = Title = " and
// " = = Section = = ", text tokenised with spaces around punctuation and " @-@ ", " @,@ ",
// " @.@ " inside hyphenated words and numbers. Each article (a level-1 heading and what follows)
// becomes one document: its title, then section headings and paragraphs as plain lines separated
// by blank lines, with the tokenisation undone.
#include <fstream>

#include "data/convert/detokenize.h"
#include "data/convert/formats.h"
#include "data/convert/text_clean.h"
#include "io/text_check.h"

namespace mf {
namespace {

// The heading level of a line (" = Title = " -> 1, " = = Section = = " -> 2) and its text;
// level 0 for an ordinary line.
std::pair<int, std::string> heading(const std::string& line) {
  const std::string s = trim(line);
  if (s.size() < 3 || s.front() != '=' || s.back() != '=') return {0, ""};
  int level = 0;
  size_t b = 0, e = s.size();
  while (b + 1 < e && s[b] == '=' && s[e - 1] == '=') {
    ++level;
    ++b;
    --e;
    while (b < e && s[b] == ' ') ++b;
    while (e > b && s[e - 1] == ' ') --e;
  }
  if (b >= e) return {0, ""};
  return {level, s.substr(b, e - b)};
}

std::string replace_all(std::string s, std::string_view from, std::string_view to) {
  for (size_t i = s.find(from); i != std::string::npos; i = s.find(from, i + to.size())) s.replace(i, from.size(), to);
  return s;
}

std::string clean(const std::string& line) {
  std::string s = replace_all(line, "\xEF\xBB\xBF", "");  // stray zero-width no-break spaces
  s = replace_all(std::move(s), " @-@ ", "-");
  s = replace_all(std::move(s), " @,@ ", ",");
  s = replace_all(std::move(s), " @.@ ", ".");
  return detokenize(s);
}

Converted convert_articles(const ConvertInput& in, BadRecordPolicy&) {
  Converted out;
  std::ifstream file(in.path, std::ios::binary);
  MF_CHECK(file, in.path, ": cannot open");
  std::string doc, line;
  const auto finish = [&] {
    if (!trim(doc).empty()) out.documents.push_back(trim(doc));
    doc.clear();
  };
  for (int64_t n = 1; std::getline(file, line); ++n) {
    check_text(line, in.path, n);
    if (trim(line).empty()) continue;
    const auto [level, title] = heading(line);
    if (level == 1) finish();
    const std::string text = level ? clean(title) : clean(line);
    if (text.empty()) continue;
    if (!doc.empty()) doc += "\n\n";
    doc += text;
  }
  finish();
  return out;
}

bool looks_like_wikitext(const FileSample& s) {
  if (s.layout != FileSample::Layout::text) return false;
  std::string first;
  for (size_t pos = 0; pos < s.head.size() && trim(first).empty();) {
    const size_t end = s.head.find('\n', pos);
    first = s.head.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
    pos = end == std::string::npos ? s.head.size() : end + 1;
  }
  return heading(first).first > 0 || s.head.find(" @-@ ") != std::string::npos ||
         s.head.find(" @,@ ") != std::string::npos || s.head.find(" @.@ ") != std::string::npos;
}

}  // namespace

Format wikitext_format() {
  Format f;
  f.name = "wikitext";
  f.description = "WikiText raw text (\" = Title = \" headings, @-@ artefacts) -> one {text} document per article";
  f.kind = OutputKind::documents;
  f.sniff = looks_like_wikitext;
  f.convert = convert_articles;
  return f;
}

}  // namespace mf
