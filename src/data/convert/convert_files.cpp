#include "data/convert/convert_files.h"

#include <filesystem>
#include <iomanip>
#include <set>

#include "core/mapped_file.h"
#include "core/timer.h"
#include "data/convert/domain_entry.h"

namespace fs = std::filesystem;

namespace mf {
namespace {

const char* kind_name(OutputKind k) {
  switch (k) {
    case OutputKind::instructions: return "instructions";
    case OutputKind::documents: return "documents";
    case OutputKind::companion: return "companion";
  }
  return "?";
}

void write_documents(const std::string& path, const std::vector<std::string>& docs) {
  std::string text;
  for (const std::string& d : docs)
    text += nlohmann::json{{"text", d}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  write_file_atomic(path, text.data(), text.size());
}

}  // namespace

std::vector<ConvertedFile> convert_files(const std::vector<std::string>& paths, const std::string& out_dir,
                                         const ConvertOptions& options, const DomainMap* domains,
                                         std::ostream& progress) {
  MF_CHECK(!paths.empty(), "no input files to convert");
  // Detect everything first, so that a wrong file or a missing domain entry stops the run
  // before anything is written, and companion files are known before the files that need them.
  struct Planned {
    std::string path, source;
    const Format* format;
    DomainEntryChoice entry;  // instruction formats only
  };
  std::vector<Planned> plan;
  std::map<std::string, std::string> companions;
  if (!options.tables.empty()) companions["spider_tables"] = options.tables;
  std::map<std::string, std::string> stems;
  for (const std::string& p : paths) {
    const std::string source = fs::path(p).stem().string();
    const Format& f = options.format.empty() ? detect_data_format(sample_file(p)) : find_data_format(options.format);
    DomainEntryChoice entry;
    if (f.kind == OutputKind::companion) {
      companions.emplace(f.name, p);
    } else {
      auto [it, fresh] = stems.emplace(source, p);
      MF_CHECK(fresh, p, ": same file name as ", it->second, " (both would write ", source, ".jsonl)");
      if (f.kind == OutputKind::instructions) {
        MF_CHECK(domains, p, ": instruction records need a domain map (--domains FILE)");
        entry = choose_domain_entry(*domains, p, source, f.name, options.source);
      }
    }
    plan.push_back({p, source, &f, std::move(entry)});
  }

  fs::create_directories(out_dir);
  std::vector<ConvertedFile> results;
  for (size_t i = 0; i < plan.size(); ++i) {
    const Planned& p = plan[i];
    Timer timer;
    BadRecordPolicy bad(options.skip_bad);
    ConvertInput in{p.path, p.source, companions};
    Converted c = p.format->convert(in, bad);
    ConvertedFile r;
    r.path = p.path;
    r.source = p.source;
    r.format = p.format->name;
    r.kind = p.format->kind;
    r.dropped = c.dropped;
    r.skipped_bad = bad.skipped();
    r.bad_examples = bad.examples();
    if (r.kind == OutputKind::instructions) {
      r.domain_entry = p.entry.entry;
      r.domain_entry_reason = domain_entry_reason_name(p.entry.reason);
      for (SftRecord& rec : c.records) {
        rec.domain = domains->domain_of(rec, r.domain_entry);
        ++r.domains[rec.domain];
      }
      r.output = (fs::path(out_dir) / (p.source + ".jsonl")).string();
      write_sft_jsonl(r.output, c.records);
      r.written = int64_t(c.records.size());
    } else if (r.kind == OutputKind::documents) {
      r.output = (fs::path(out_dir) / (p.source + ".jsonl")).string();
      write_documents(r.output, c.documents);
      r.written = int64_t(c.documents.size());
      for (const std::string& d : c.documents) r.characters += int64_t(d.size());
    }
    progress << "[" << i + 1 << "/" << plan.size() << "] " << p.path << " (" << r.format << "): ";
    if (r.kind == OutputKind::companion) progress << "schema file, used by the files that need it";
    else progress << r.written << (r.kind == OutputKind::documents ? " documents" : " records") << " -> " << r.output;
    if (r.kind == OutputKind::instructions)
      progress << ", domains by sources." << r.domain_entry << " (" << r.domain_entry_reason << ")";
    if (r.dropped) progress << ", " << r.dropped << " dropped (nothing to learn from)";
    if (r.skipped_bad) progress << ", " << r.skipped_bad << " bad records skipped";
    progress << " (" << std::fixed << std::setprecision(1) << timer.seconds() << " s)\n" << std::flush;
    results.push_back(std::move(r));
  }
  const std::string summary = convert_summary_json(results, domains).dump(2) + "\n";
  write_file_atomic((fs::path(out_dir) / "summary.json").string(), summary.data(), summary.size());
  return results;
}

CountTable convert_count_table(const std::vector<ConvertedFile>& files, const DomainMap* domains) {
  CountTable t("source", domains ? domains->domains() : std::vector<std::string>{});
  for (const ConvertedFile& f : files)
    if (f.kind == OutputKind::instructions)
      for (const auto& [domain, n] : f.domains) t.add(f.source, domain, n);
  return t;
}

nlohmann::json convert_summary_json(const std::vector<ConvertedFile>& files, const DomainMap* domains) {
  nlohmann::json j;
  nlohmann::json list = nlohmann::json::array();
  for (const ConvertedFile& f : files) {
    nlohmann::json e = {{"path", f.path},       {"source", f.source},   {"format", f.format},
                        {"kind", kind_name(f.kind)}, {"output", f.output}, {"written", f.written},
                        {"dropped", f.dropped}, {"skipped_bad", f.skipped_bad}, {"bad_examples", f.bad_examples}};
    if (f.kind == OutputKind::instructions) {
      e["domains"] = f.domains;
      e["domain_entry"] = f.domain_entry;
      e["domain_entry_reason"] = f.domain_entry_reason;
    }
    if (f.kind == OutputKind::documents) e["characters"] = f.characters;
    list.push_back(std::move(e));
  }
  j["files"] = std::move(list);
  j["instructions"] = convert_count_table(files, domains).to_json();
  return j;
}

}  // namespace mf
