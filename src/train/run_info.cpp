#include "train/run_info.h"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>

#include "io/json_file.h"
#include "model/config.h"
#include "model/config_json.h"

namespace mf {
namespace fs = std::filesystem;

namespace {

std::string utc_minutes(fs::file_time_type t) {
  const auto sys = std::chrono::file_clock::to_sys(t);
  const std::time_t tt = std::chrono::system_clock::to_time_t(std::chrono::time_point_cast<std::chrono::system_clock::duration>(sys));
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M UTC", &tm);
  return buf;
}

}  // namespace

std::string format_count(int64_t n) {
  char buf[32];
  const double v = double(n);
  if (v >= 1e9) std::snprintf(buf, sizeof buf, "%.2fB", v / 1e9);
  else if (v >= 1e6) std::snprintf(buf, sizeof buf, "%.2fM", v / 1e6);
  else if (v >= 1e3) std::snprintf(buf, sizeof buf, "%.1fK", v / 1e3);
  else std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(n));
  return buf;
}

RunInfo read_run_info(const std::string& run_dir) {
  const fs::path dir(run_dir);
  RunInfo info;
  info.name = dir.filename().string();
  if (info.name.empty()) info.name = dir.parent_path().filename().string();  // "runs/a/"
  const fs::path summary = dir / "summary.json";
  if (fs::exists(summary)) {
    info.finished = true;
    const nlohmann::json s = read_json_file(summary.string());
    if (s.is_object() && s.contains("recipe") && s["recipe"].is_string())
      info.recipe = fs::path(s["recipe"].get<std::string>()).filename().string();
  }
  for (const char* sub : {"model", "best"}) {
    const fs::path config = dir / sub / "config.json";
    if (!fs::exists(config)) continue;
    const ModelConfig c = load_hf_config(config.string());
    info.model = c.model_type + ", " + std::to_string(c.num_layers) + " layers, hidden " + std::to_string(c.hidden_size);
    info.parameters = count_parameters(c, false);
    info.active_parameters = count_parameters(c, true);
    info.routing = describe_moe(c);
    info.expert_names = c.expert_names;
    break;
  }
  std::error_code ec;
  const auto written = fs::last_write_time(dir / "metrics.jsonl", ec);
  if (!ec) info.date = utc_minutes(written);
  return info;
}

std::string describe_run(const RunInfo& info) {
  std::string s;
  auto add = [&](const std::string& part) {
    if (part.empty()) return;
    if (!s.empty()) s += " \xC2\xB7 ";  // middle dot
    s += part;
  };
  add(info.recipe.empty() ? "" : "recipe " + info.recipe);
  if (info.parameters > 0)
    add(format_count(info.parameters) + " parameters" +
        (info.active_parameters != info.parameters ? " (" + format_count(info.active_parameters) + " active)" : ""));
  add(info.model);
  add(info.routing);
  add(info.date);
  if (!info.finished) add("unfinished (no summary.json)");
  return s;
}

}  // namespace mf
