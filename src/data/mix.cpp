// The mix in stages: dedupe in input order, per-source subsets (caps, ratios below 1), per-domain
// splits, then repeats for ratios above 1, added to train so no copy lands in validation or test.
// Each shuffle has its own named stream: changing one source's cap does not reshuffle the others.
#include "data/mix.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <sstream>
#include <unordered_set>

#include "core/mapped_file.h"
#include "core/rng.h"
#include "core/timer.h"

namespace fs = std::filesystem;

namespace mf {
namespace {

constexpr std::array<const char*, 3> kSplitNames{"train", "validation", "test"};

// Each shuffle gets its own stream, derived from the seed and a name (FNV-1a), so that changing
// one source's cap does not reshuffle the others.
Rng stream(uint64_t seed, const std::string& name) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : name) h = (h ^ c) * 1099511628211ull;
  return Rng(seed ^ h);
}

template <class T>
void shuffle(std::vector<T>& v, Rng rng) {
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[size_t(rng.below(i))]);
}

void normalize_into(std::string& key, const std::string& s) {
  bool space = false;
  for (char c : s) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      space = true;
      continue;
    }
    if (space && !key.empty() && key.back() != '\x1f') key.push_back(' ');
    space = false;
    key.push_back(c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c);
  }
}

// How many of a domain's n records go to validation and test. Rounded shares, but at least one
// each when the domain has enough records for it, and at least one left for training.
std::pair<size_t, size_t> held_out(size_t n, const std::array<double, 3>& split) {
  size_t val = size_t(std::llround(double(n) * split[1]));
  size_t test = size_t(std::llround(double(n) * split[2]));
  if (split[1] > 0 && val == 0 && n >= 2) val = 1;
  if (split[2] > 0 && test == 0 && n >= 3) test = 1;
  const size_t keep_train = split[0] > 0 && n > 0 ? 1 : 0;
  while (val + test + keep_train > n && test > 0) --test;
  while (val + test + keep_train > n && val > 0) --val;
  return {val, test};
}

void check_sources_exist(const std::map<std::string, std::vector<SftRecord>>& by_source, const std::string& flag,
                         const std::vector<std::string>& named) {
  for (const std::string& s : named) {
    if (by_source.count(s)) continue;
    std::string known;
    for (const auto& [name, recs] : by_source) known += (known.empty() ? "" : ", ") + name;
    fail("--", flag, " ", s, ": no records from a source called '", s, "' (sources: ", known, ")");
  }
}

}  // namespace

std::array<double, 3> parse_split(const std::string& text) {
  std::array<double, 3> out{};
  std::stringstream ss(text);
  std::string part;
  size_t n = 0;
  while (std::getline(ss, part, ',')) {
    MF_CHECK(n < 3, "--split ", text, ": expected three fractions train,validation,test");
    size_t used = 0;
    double v = -1;
    try {
      v = std::stod(part, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    MF_CHECK(used == part.size() && v >= 0 && v <= 1, "--split ", text, ": '", part, "' is not a fraction in [0, 1]");
    out[n++] = v;
  }
  MF_CHECK(n == 3, "--split ", text, ": expected three fractions train,validation,test");
  MF_CHECK(std::abs(out[0] + out[1] + out[2] - 1.0) < 1e-6, "--split ", text, ": the fractions sum to ",
           out[0] + out[1] + out[2], ", not 1");
  return out;
}

std::string dedupe_key(const SftRecord& r) {
  std::string key;
  key.reserve(r.instruction.size() + r.input.size() + r.output.size() + 2);
  normalize_into(key, r.instruction);
  key.push_back('\x1f');
  normalize_into(key, r.input);
  key.push_back('\x1f');
  normalize_into(key, r.output);
  // A whole conversation is trained on every answer it holds: two conversations that end in the
  // same exchange are different records. Other records' history is context and stays out.
  if (r.loss_on_history)
    for (const ChatTurn& t : r.history) {
      key.push_back('\x1f');
      key += t.role;
      key.push_back('\x1f');
      normalize_into(key, t.content);
    }
  return key;
}

MixResult mix_records(std::vector<SftRecord> records, const MixOptions& o) {
  MixResult out;
  for (const auto& [source, x] : o.ratio) MF_CHECK(x >= 0 && std::isfinite(x), "--ratio ", source, "=", x, ": must be >= 0");
  for (const auto& [source, n] : o.cap) MF_CHECK(n >= 0, "--cap ", source, "=", n, ": must be >= 0");

  std::map<std::string, std::vector<SftRecord>> by_source;
  {
    std::unordered_set<std::string> seen;
    for (SftRecord& r : records) {
      MF_CHECK(!r.domain.empty() && !r.source.empty(), "mix: a record without a domain or source (instruction: \"",
               r.instruction.substr(0, 60), "\")");
      if (!seen.insert(dedupe_key(r)).second) {
        ++out.duplicates;
        continue;
      }
      by_source[r.source].push_back(std::move(r));
    }
  }
  std::vector<std::string> named;
  for (const auto& [s, x] : o.cap) named.push_back(s);
  check_sources_exist(by_source, "cap", named);
  named.clear();
  for (const auto& [s, x] : o.ratio) named.push_back(s);
  check_sources_exist(by_source, "ratio", named);

  // Per source: a seeded subset when capped or down-weighted.
  std::map<std::string, std::vector<SftRecord>> by_domain;
  for (auto& [source, recs] : by_source) {
    out.unique[source] = int64_t(recs.size());
    shuffle(recs, stream(o.seed, "select:" + source));
    size_t keep = recs.size();
    if (auto it = o.cap.find(source); it != o.cap.end()) keep = std::min(keep, size_t(it->second));
    if (auto it = o.ratio.find(source); it != o.ratio.end() && it->second < 1)
      keep = size_t(std::llround(double(keep) * it->second));
    recs.resize(keep);
    out.kept[source] = int64_t(keep);
    for (SftRecord& r : recs) by_domain[r.domain].push_back(std::move(r));
  }

  // Per domain: shuffle, then validation and test slices off the front, the rest trains.
  for (auto& [domain, recs] : by_domain) {
    shuffle(recs, stream(o.seed, "split:" + domain));
    const auto [val, test] = held_out(recs.size(), o.split);
    for (size_t i = 0; i < recs.size(); ++i) {
      std::vector<SftRecord>& dst = i < val ? out.validation : i < val + test ? out.test : out.train;
      dst.push_back(std::move(recs[i]));
    }
  }

  // Up-weighted sources repeat in train only: whole copies, then a seeded share for the fraction.
  std::vector<SftRecord> extra;
  for (const auto& [source, x] : o.ratio) {
    if (x <= 1) continue;
    std::vector<const SftRecord*> mine;
    for (const SftRecord& r : out.train)
      if (r.source == source) mine.push_back(&r);
    const size_t total_extra = size_t(std::llround(double(mine.size()) * (x - 1)));
    for (size_t k = 0; k < total_extra / std::max<size_t>(mine.size(), 1); ++k)
      for (const SftRecord* r : mine) extra.push_back(*r);
    shuffle(mine, stream(o.seed, "repeat:" + source));
    for (size_t k = 0; k < total_extra % std::max<size_t>(mine.size(), 1); ++k) extra.push_back(*mine[k]);
  }
  for (SftRecord& r : extra) out.train.push_back(std::move(r));

  shuffle(out.train, stream(o.seed, "order:train"));
  shuffle(out.validation, stream(o.seed, "order:validation"));
  shuffle(out.test, stream(o.seed, "order:test"));
  return out;
}

CountTable mix_count_table(const MixResult& mix) {
  CountTable t("domain", {kSplitNames.begin(), kSplitNames.end()});
  const std::array<const std::vector<SftRecord>*, 3> splits{&mix.train, &mix.validation, &mix.test};
  std::map<std::string, std::array<int64_t, 3>> counts;  // domains in name order
  for (size_t s = 0; s < 3; ++s)
    for (const SftRecord& r : *splits[s]) ++counts[r.domain][s];
  for (const auto& [domain, c] : counts)
    for (size_t s = 0; s < 3; ++s) t.add(domain, kSplitNames[s], c[s]);
  return t;
}

MixResult mix_files(const std::vector<std::string>& paths, const std::string& out_dir, const MixOptions& options,
                    bool skip_bad, std::ostream& progress) {
  MF_CHECK(!paths.empty(), "no input files to mix");
  Timer timer;
  std::vector<SftRecord> records;
  BadRecordPolicy bad(skip_bad);
  std::vector<std::string> used;
  for (const std::string& path : paths) {
    MF_CHECK(fs::is_regular_file(path), path, ": no such file");
    bool pretraining_text = false;
    const size_t before = records.size();
    const std::string stem = fs::path(path).stem().string();
    struct TextFile {};
    try {
      read_jsonl(path, bad, [&](const nlohmann::json& j, int64_t) {
        if (records.size() == before && j.contains("text") && !j.contains("instruction")) throw TextFile{};
        SftRecord r = sft_record_from_json(j);
        if (r.domain.empty()) throw RecordError("no \"domain\" (convert the source with 'moeforge data convert')");
        if (r.source.empty()) r.source = stem;
        records.push_back(std::move(r));
      });
    } catch (const TextFile&) {
      pretraining_text = true;
    }
    if (pretraining_text) {
      progress << "skipping " << path << ": pretraining {\"text\"} documents, not instruction records\n";
      continue;
    }
    used.push_back(path);
    progress << "read " << path << ": " << records.size() - before << " records\n" << std::flush;
  }
  MF_CHECK(!used.empty(), "none of the inputs holds instruction records");
  if (bad.skipped()) {
    progress << "skipped " << bad.skipped() << " bad records, e.g.\n";
    for (size_t i = 0; i < bad.examples().size() && i < 3; ++i) progress << "  " << bad.examples()[i] << "\n";
  }
  MixResult mix = mix_records(std::move(records), options);
  progress << "removed " << mix.duplicates << " duplicates; writing " << out_dir << "\n" << std::flush;

  fs::create_directories(out_dir);
  write_sft_jsonl((fs::path(out_dir) / "train.jsonl").string(), mix.train);
  write_sft_jsonl((fs::path(out_dir) / "validation.jsonl").string(), mix.validation);
  write_sft_jsonl((fs::path(out_dir) / "test.jsonl").string(), mix.test);
  nlohmann::json counts;
  counts["inputs"] = used;
  counts["seed"] = options.seed;
  counts["split"] = options.split;
  counts["duplicates_removed"] = mix.duplicates;
  counts["bad_records_skipped"] = bad.skipped();
  counts["unique_per_source"] = mix.unique;
  counts["kept_per_source"] = mix.kept;
  counts["ratio"] = options.ratio;
  counts["cap"] = options.cap;
  counts["counts"] = mix_count_table(mix).to_json();
  const std::string text = counts.dump(2) + "\n";
  write_file_atomic((fs::path(out_dir) / "counts.json").string(), text.data(), text.size());
  progress << "mixed in " << std::fixed << std::setprecision(1) << timer.seconds() << " s\n";
  return mix;
}

}  // namespace mf
