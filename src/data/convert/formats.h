// Dataset formats `moeforge data convert` understands. Each format lives in its own file under
// src/data/convert/ and defines `Format NAME_format()`; MF_DATA_FORMATS below is the registry.
// Adding a format is one new file plus one line there.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/records.h"
#include "data/sft_record.h"

namespace mf {

// Every format, in detection order: the first one whose sniff accepts a file wins, so formats
// with more specific fields come before looser ones (dolly's "context" before the plain
// instruction/response pair; wikitext's headings before generic text).
#define MF_DATA_FORMATS(X) \
  X(spider_tables)         \
  X(spider)                \
  X(dolly)                 \
  X(instruct_response)     \
  X(alpaca)                \
  X(gsm8k)                 \
  X(hh_rlhf)               \
  X(messages)              \
  X(sharegpt)              \
  X(prompt_completion)     \
  X(dailydialog)           \
  X(wikitext)              \
  X(text)

// What a file looks like, read once to detect its format.
struct FileSample {
  enum class Layout { json_array, json_lines, text };
  std::string path;
  Layout layout = Layout::text;
  nlohmann::json first;  // the first record of a JSON file when it parsed as an object, else null
  std::string head;      // the first few KiB of the file
};
FileSample sample_file(const std::string& path);
// Only the layout (from the first non-blank byte: '[', '{' or anything else).
FileSample::Layout file_layout(const std::string& path);

enum class OutputKind {
  instructions,  // unified instruction records (SftRecord)
  documents,     // pretraining documents, written as {"text"} JSONL
  companion,     // read by another format's conversion, not converted on its own (spider's schemas)
};

struct ConvertInput {
  std::string path;
  std::string source;  // the file stem; names the output file and the domain-map entry
  // Companion files by format name (e.g. "spider_tables" -> path), given explicitly or found.
  std::map<std::string, std::string> companions;
};

struct Converted {
  std::vector<SftRecord> records;      // instruction formats (domain still unset)
  std::vector<std::string> documents;  // document formats
  // Well-formed records left out because they hold nothing to learn from (an empty answer, a
  // one-turn dialogue). Malformed records go through BadRecordPolicy instead.
  int64_t dropped = 0;
};

struct Format {
  std::string name;
  std::string description;  // one line for --help
  OutputKind kind = OutputKind::instructions;
  std::function<bool(const FileSample&)> sniff;
  std::function<Converted(const ConvertInput&, BadRecordPolicy&)> convert;
};

#define MF_DECLARE_FORMAT(name) Format name##_format();
MF_DATA_FORMATS(MF_DECLARE_FORMAT)
#undef MF_DECLARE_FORMAT

// The registry, in detection order.
const std::vector<Format>& data_formats();
// The format called `name`; mf::Error listing the known names otherwise.
const Format& find_data_format(const std::string& name);
// The first format whose sniff accepts the file; mf::Error naming the file if none does.
const Format& detect_data_format(const FileSample& sample);

}  // namespace mf
