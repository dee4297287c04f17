#include "data/convert/formats.h"

#include <filesystem>
#include <fstream>
#include <sstream>

namespace mf {
namespace {

constexpr size_t kHeadBytes = 64 * 1024;

// Stops read_json_array after the first element.
struct FirstElementRead {};

// Where the first record starts (after a UTF-8 BOM and whitespace) and what that says.
std::pair<size_t, FileSample::Layout> first_byte(const std::string& head) {
  size_t i = head.compare(0, 3, "\xEF\xBB\xBF") == 0 ? 3 : 0;
  while (i < head.size() && (head[i] == ' ' || head[i] == '\t' || head[i] == '\r' || head[i] == '\n')) ++i;
  if (i < head.size() && head[i] == '[') return {i, FileSample::Layout::json_array};
  if (i < head.size() && head[i] == '{') return {i, FileSample::Layout::json_lines};
  return {i, FileSample::Layout::text};
}

std::string read_head(const std::string& path, size_t bytes) {
  MF_CHECK(std::filesystem::is_regular_file(path), path, ": no such file");
  std::ifstream in(path, std::ios::binary);
  MF_CHECK(in, path, ": cannot open");
  std::string head(bytes, '\0');
  in.read(head.data(), std::streamsize(bytes));
  head.resize(size_t(in.gcount()));
  return head;
}

}  // namespace

FileSample::Layout file_layout(const std::string& path) {
  // Leading whitespace before the first record is short in any real file.
  return first_byte(read_head(path, 4096)).second;
}

FileSample sample_file(const std::string& path) {
  FileSample s;
  s.path = path;
  s.head = read_head(path, kHeadBytes);
  const auto [i, layout] = first_byte(s.head);
  s.layout = layout;
  if (layout == FileSample::Layout::json_array) {
    BadRecordPolicy keep_going(true);
    try {
      read_json_array(path, keep_going, [&](const nlohmann::json& j, int64_t) {
        s.first = j;
        throw FirstElementRead{};
      });
    } catch (const FirstElementRead&) {
    } catch (const Error&) {
      // Not a readable array after all; the converter reports the details.
    }
  } else if (layout == FileSample::Layout::json_lines) {
    const size_t end = s.head.find('\n', i);
    const nlohmann::json j = nlohmann::json::parse(s.head.substr(i, end == std::string::npos ? end : end - i),
                                                   nullptr, /*allow_exceptions=*/false);
    if (j.is_object()) s.first = j;
  }
  return s;
}

const std::vector<Format>& data_formats() {
#define MF_LIST_FORMAT(name) name##_format(),
  static const std::vector<Format> formats{MF_DATA_FORMATS(MF_LIST_FORMAT)};
#undef MF_LIST_FORMAT
  return formats;
}

const Format& find_data_format(const std::string& name) {
  std::ostringstream known;
  for (const Format& f : data_formats()) {
    if (f.name == name) return f;
    known << (known.tellp() > 0 ? ", " : "") << f.name;
  }
  fail("unknown format '", name, "' (known: ", known.str(), ")");
}

const Format& detect_data_format(const FileSample& sample) {
  MF_CHECK(sample.head.find_first_not_of(" \t\r\n") != std::string::npos, sample.path,
           ": empty file, no record to tell the format from (pass --format to convert it anyway)");
  for (const Format& f : data_formats())
    if (f.sniff(sample)) return f;
  std::string what = "plain text no text format claims";
  if (sample.first.is_object()) {
    what = "its first record has the fields";
    for (const auto& [key, value] : sample.first.items()) what += " \"" + key + "\"";
  } else if (sample.layout != FileSample::Layout::text) {
    what = "its first record is not a readable JSON object";
  }
  fail(sample.path, ": cannot tell the dataset format (", what, "); pass --format");
}

}  // namespace mf
