// moeforge data mix FILE... -o DIR: unified instruction files -> DIR/{train,validation,test}.jsonl.
#include <iostream>

#include "common.h"
#include "data/mix.h"
#include "data_commands.h"

namespace mf::cli {

int run_data_mix(const std::vector<std::string>& args) {
  std::vector<std::string> inputs;
  MixOptions o;
  std::string out_dir, split_text = "0.9,0.05,0.05";
  std::vector<std::string> ratios, caps;
  bool skip_bad = false;
  ArgParser p("moeforge data mix FILE... -o DIR [--seed S] [--ratio SOURCE=X]... [--cap SOURCE=N]... "
              "[--split T,V,E] [--skip-bad]",
              "Mixes unified instruction JSONL files (from 'moeforge data convert'): removes duplicates (same "
              "instruction, input and output up to case and whitespace; the first is kept), keeps at most N "
              "records of a capped source and a share X of a down-weighted one (X > 1 repeats the source's "
              "records in train only), shuffles with the seed and splits each domain into train/validation/test. "
              "Writes DIR/train.jsonl, DIR/validation.jsonl, DIR/test.jsonl and DIR/counts.json, and prints the "
              "domain x split counts. {\"text\"} pretraining files among the inputs are skipped. The same inputs "
              "and seed give byte-identical files.");
  p.positionals("FILE", "unified instruction JSONL files", &inputs, true);
  p.option("output", 'o', "DIR", "output directory", &out_dir, true);
  p.option("seed", "S", "shuffle and sampling seed (default 0)", &o.seed);
  p.repeated("ratio", "SOURCE=X", "weight of a source's records (0.5 = half of them, 2 = each twice in train)",
             &ratios);
  p.repeated("cap", "SOURCE=N", "keep at most N records of a source", &caps);
  p.option("split", 0, "T,V,E", "train,validation,test fractions (default 0.9,0.05,0.05)", &split_text);
  p.flag("skip-bad", "skip malformed records (counted, first few reported) instead of stopping", &skip_bad);
  p.example("moeforge data mix data/unified/*.jsonl -o data/mix --cap alpaca=20000 --seed 1", "deduplicated, capped, split train/validation/test");
  if (!parse_or_usage(p, args)) return 0;
  try {
    o.split = parse_split(split_text);
    for (const auto& [source, x] : parse_assignments("ratio", ratios)) {
      o.ratio[source] = double(parse_float_arg("ratio", x));
      if (o.ratio[source] < 0) throw UsageError(cat("--ratio ", source, "=", x, ": must be >= 0"));
    }
    for (const auto& [source, n] : parse_assignments("cap", caps))
      o.cap[source] = int64_t(parse_u64_arg("cap", n));
  } catch (const UsageError&) {
    throw;
  } catch (const Error& e) {
    throw UsageError(e.what());
  }
  const MixResult mix = mix_files(inputs, out_dir, o, skip_bad, std::cerr);
  std::cout << "records per domain and split (seed " << o.seed << ", " << mix.duplicates
            << " duplicates removed):\n"
            << mix_count_table(mix).render() << "written to " << out_dir << "/{train,validation,test}.jsonl\n";
  return 0;
}

}  // namespace mf::cli
