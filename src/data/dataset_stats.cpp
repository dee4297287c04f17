#include "data/dataset_stats.h"

#include <algorithm>
#include <filesystem>
#include <iomanip>
#include <sstream>

#include "data/sft_record.h"

namespace mf {

LengthStats length_stats(std::vector<int64_t> v) {
  LengthStats s;
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  s.count = int64_t(v.size());
  double sum = 0;
  for (int64_t x : v) sum += double(x);
  s.mean = sum / double(v.size());
  s.median = v[v.size() / 2];
  s.p95 = v[std::min(v.size() - 1, size_t(double(v.size()) * 0.95))];
  s.max = v.back();
  return s;
}

DatasetStats dataset_stats(const std::vector<std::string>& paths) {
  DatasetStats out;
  std::map<std::string, std::vector<int64_t>> prompt, answer;
  std::map<std::string, int64_t> turns;
  std::vector<std::string> sources;  // in the order met
  std::map<std::pair<std::string, std::string>, int64_t> counts;
  for (const std::string& path : paths) {
    BadRecordPolicy strict;
    std::vector<int64_t> docs;
    bool text_file = false, first = true;
    const std::string stem = std::filesystem::path(path).stem().string();
    read_jsonl(path, strict, [&](const nlohmann::json& j, int64_t) {
      if (first) text_file = j.contains("text") && !j.contains("instruction");
      first = false;
      if (text_file) {
        docs.push_back(int64_t(required_string(j, "text").size()));
        return;
      }
      const SftRecord r = sft_record_from_json(j);
      const std::string domain = r.domain.empty() ? "(none)" : r.domain;
      const std::string source = r.source.empty() ? stem : r.source;
      if (std::find(sources.begin(), sources.end(), source) == sources.end()) sources.push_back(source);
      ++counts[{source, domain}];
      prompt[domain].push_back(int64_t(user_message(r).size()));
      answer[domain].push_back(int64_t(r.output.size()));
      turns[domain] += int64_t(r.history.size());
    });
    if (text_file) out.documents[path] = length_stats(std::move(docs));
  }
  std::vector<std::string> domains;  // columns in name order
  for (const auto& [domain, v] : prompt) domains.push_back(domain);
  out.counts = CountTable("source", domains);
  for (const std::string& source : sources)
    for (const std::string& domain : domains)
      if (auto it = counts.find({source, domain}); it != counts.end()) out.counts.add(source, domain, it->second);
  for (auto& [domain, v] : prompt) {
    out.history_turns[domain] = double(turns[domain]) / double(v.size());
    out.prompt[domain] = length_stats(std::move(v));
  }
  for (auto& [domain, v] : answer) out.answer[domain] = length_stats(std::move(v));
  return out;
}

std::string render_dataset_stats(const DatasetStats& s) {
  std::ostringstream out;
  const auto figures = [&](const LengthStats& l) {
    out << std::setw(8) << std::llround(l.mean) << std::setw(8) << l.median << std::setw(8) << l.p95 << std::setw(8)
        << l.max;
  };
  if (!s.prompt.empty()) {
    out << "instruction records (source x domain):\n" << s.counts.render() << "\n";
    out << "lengths in characters:\n"
        << std::left << std::setw(14) << "" << std::setw(34) << "  prompt (instruction + input)" << std::setw(32)
        << "  output" << "  history\n"
        << std::setw(14) << "domain" << std::right;
    for (int i = 0; i < 2; ++i) out << std::setw(8) << "mean" << std::setw(8) << "median" << std::setw(8) << "p95" << std::setw(8) << "max";
    out << std::setw(9) << "turns" << "\n";
    for (const auto& [domain, p] : s.prompt) {
      out << std::left << std::setw(14) << domain << std::right;
      figures(p);
      figures(s.answer.at(domain));
      out << std::fixed << std::setprecision(2) << std::setw(9) << s.history_turns.at(domain) << "\n";
    }
  }
  for (const auto& [file, d] : s.documents) {
    out << (s.prompt.empty() ? "" : "\n") << file << ": " << d.count << " documents, characters mean "
        << std::llround(d.mean) << ", median " << d.median << ", p95 " << d.p95 << ", max " << d.max << "\n";
  }
  return out.str();
}

}  // namespace mf
