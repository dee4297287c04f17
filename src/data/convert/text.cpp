// Plain text for pretraining (Tiny Shakespeare and the like). The text is cut at blank lines
// into paragraphs (a speech, a stanza) and consecutive paragraphs are packed, in order, into
// documents of up to kDocumentChars characters; a paragraph is never split, so one longer than
// that is a document of its own. Whole files as one document would put a single end-of-text
// token in a million characters; one document per speech would put one every ~150 characters.
#include <fstream>

#include "data/convert/formats.h"
#include "data/convert/text_clean.h"
#include "io/text_check.h"

namespace mf {
namespace {

constexpr size_t kDocumentChars = 4000;

Converted convert_text(const ConvertInput& in, BadRecordPolicy&) {
  Converted out;
  std::ifstream file(in.path, std::ios::binary);
  MF_CHECK(file, in.path, ": cannot open");
  std::string doc, paragraph, line;
  const auto end_paragraph = [&] {
    std::string p = trim(paragraph);
    paragraph.clear();
    if (p.empty()) return;
    if (!doc.empty() && doc.size() + 2 + p.size() > kDocumentChars) {
      out.documents.push_back(std::move(doc));
      doc.clear();
    }
    doc += (doc.empty() ? "" : "\n\n") + p;
  };
  for (int64_t n = 1; std::getline(file, line); ++n) {
    check_text(line, in.path, n);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (trim(line).empty()) end_paragraph();
    else paragraph += line + "\n";
  }
  end_paragraph();
  if (!doc.empty()) out.documents.push_back(std::move(doc));
  return out;
}

}  // namespace

Format text_format() {
  Format f;
  f.name = "text";
  f.description = "plain text -> {text} documents of blank-line paragraphs packed up to 4000 characters";
  f.kind = OutputKind::documents;
  f.sniff = [](const FileSample& s) { return s.layout == FileSample::Layout::text; };
  f.convert = convert_text;
  return f;
}

}  // namespace mf
