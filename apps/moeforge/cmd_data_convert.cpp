// moeforge data convert FILE... -o DIR: dataset files -> DIR/<stem>.jsonl with domains, and a
// source x domain summary (printed and written to DIR/summary.json).
#include <filesystem>
#include <iostream>
#include <memory>

#include "common.h"
#include "data/convert/convert_files.h"
#include "data_commands.h"

namespace mf::cli {
namespace {

// Used when --domains is not given and the command runs from the repository root.
constexpr const char* kDefaultDomainMap = "examples/data/domains.yaml";

std::string formats_help() {
  std::string s = "Formats (detected from the first record or the text unless --format is given):\n";
  for (const Format& f : data_formats()) {
    std::string name = "  " + f.name;
    name.resize(22, ' ');
    s += name + f.description + "\n";
  }
  return s;
}

void print_summary(const std::vector<ConvertedFile>& files, const DomainMap* domains, const std::string& out_dir) {
  const CountTable table = convert_count_table(files, domains);
  if (!table.rows().empty()) std::cout << "instruction records (source x domain):\n" << table.render();
  // Which entry of the map assigned each file's domains: with files named as users name them,
  // that is not always the entry of the same name.
  bool entries = false;
  for (const ConvertedFile& f : files) {
    if (f.kind != OutputKind::instructions) continue;
    if (!entries) std::cout << "\ndomain map entries:\n";
    entries = true;
    std::cout << "  " << f.source << ": sources." << f.domain_entry << " (" << f.domain_entry_reason << ")\n";
  }
  bool header = false;
  for (const ConvertedFile& f : files) {
    if (f.kind != OutputKind::documents) continue;
    if (!header) std::cout << "\npretraining documents ({\"text\"}):\n";
    header = true;
    std::cout << "  " << f.source << ": " << f.written << " documents, " << f.characters << " characters\n";
  }
  for (const ConvertedFile& f : files)
    if (f.dropped)
      std::cout << "dropped from " << f.source << ": " << f.dropped
                << " (nothing to learn from: an empty answer, a one-turn dialogue, a conversation without an answer)\n";
  for (const ConvertedFile& f : files) {
    if (!f.skipped_bad) continue;
    std::cout << "skipped bad records in " << f.path << ": " << f.skipped_bad << "\n";
    for (size_t i = 0; i < f.bad_examples.size() && i < 3; ++i) std::cout << "  " << f.bad_examples[i] << "\n";
  }
  std::cout << "summary: " << (std::filesystem::path(out_dir) / "summary.json").string() << "\n";
}

}  // namespace

int run_data_convert(const std::vector<std::string>& args) {
  std::vector<std::string> inputs;
  ConvertOptions o;
  std::string out_dir, domains_path;
  ArgParser p("moeforge data convert FILE... -o DIR [--format F] [--domains FILE] [--source NAME] [--tables FILE] "
              "[--skip-bad]",
              "Converts dataset files to the unified instruction JSONL {instruction, input?, output, domain, source, "
              "history?}, one DIR/<stem>.jsonl per input (plain text -> DIR/<stem>.jsonl of {\"text\"} documents), "
              "assigns domains with the domain map, prints a source x domain table and writes DIR/summary.json.\n\n" +
                  formats_help());
  p.positionals("FILE", "dataset files (any supported format; see below)", &inputs, true);
  p.option("output", 'o', "DIR", "output directory", &out_dir, true);
  p.option("format", 0, "F", "the format of every input, instead of detecting it", &o.format);
  p.option("domains", 0, "FILE", cat("domain map YAML (default ", kDefaultDomainMap, " when it exists)"), &domains_path);
  p.option("source", 0, "NAME", "the domain-map entry (sources.NAME) that assigns the domains of every input's "
           "records (default: the entry of the file's stem, else the one named after its detected format)", &o.source);
  p.option("tables", 0, "FILE", "Spider's schema file (default: a spider_tables input, or spider_tables.json "
           "beside the questions)", &o.tables);
  p.flag("skip-bad", "skip malformed records (counted, first few reported) instead of stopping", &o.skip_bad);
  p.example("moeforge data convert alpaca.json gsm8k/train.jsonl -o data/unified", "unified instruction JSONL with domains (docs/data.md)");
  p.example("moeforge data convert chats.jsonl -o data/chats --source alpaca_sample", "a chat dataset, domains by the Alpaca rules");
  if (!parse_or_usage(p, args)) return 0;
  if (!o.format.empty()) {
    try {
      find_data_format(o.format);
    } catch (const Error& e) {
      throw UsageError(cat("--format: ", e.what()));
    }
  }
  if (domains_path.empty() && std::filesystem::is_regular_file(kDefaultDomainMap)) domains_path = kDefaultDomainMap;
  std::unique_ptr<DomainMap> domains;
  if (!domains_path.empty()) domains = std::make_unique<DomainMap>(DomainMap::load(domains_path));
  const std::vector<ConvertedFile> files = convert_files(inputs, out_dir, o, domains.get(), std::cerr);
  print_summary(files, domains.get(), out_dir);
  return 0;
}

}  // namespace mf::cli
