// safetensors layout: u64 little-endian header size, a JSON header {name: {dtype, shape,
// data_offsets}, "__metadata__"}, then the data. Every offset, size and name is checked before a
// view is made: a view over a bad offset would read outside the file instead of failing.
#include "io/safetensors.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <set>

#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/checked.h"
#include "core/error.h"
#include "io/mapped_view.h"

namespace mf {
namespace fs = std::filesystem;

namespace {

struct StDType {
  const char* name;
  DType dtype;
};
constexpr StDType kStDTypes[] = {
    {"F32", DType::F32}, {"F16", DType::F16}, {"BF16", DType::BF16}, {"F64", DType::F64},
    {"I8", DType::I8},   {"I16", DType::I16}, {"I32", DType::I32},   {"I64", DType::I64},
    {"U8", DType::U8},   {"BOOL", DType::BOOL},
};

DType parse_st_dtype(const std::string& s, const std::string& where) {
  for (const StDType& d : kStDTypes)
    if (s == d.name) return d.dtype;
  fail(where, ": unsupported dtype '", s, "' (supported: F32 F16 BF16 F64 I8 I16 I32 I64 U8 BOOL)");
}

uint64_t read_u64_le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = v << 8 | p[i];
  return v;
}

struct Entry {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin, end;
};

Entry parse_entry(const std::string& path, const std::string& name, const nlohmann::json& j,
                  uint64_t data_size) {
  std::string where = cat(path, ": tensor '", name, "'");
  MF_CHECK(j.is_object(), where, ": header entry is not a JSON object");
  MF_CHECK(j.contains("dtype") && j["dtype"].is_string(), where, ": missing or non-string 'dtype'");
  MF_CHECK(j.contains("shape") && j["shape"].is_array(), where, ": missing or non-array 'shape'");
  MF_CHECK(j.contains("data_offsets") && j["data_offsets"].is_array() &&
               j["data_offsets"].size() == 2,
           where, ": 'data_offsets' must be an array [begin, end]");
  Entry e{name, parse_st_dtype(j["dtype"].get<std::string>(), where), {}, 0, 0};
  uint64_t numel = 1;
  for (const auto& d : j["shape"]) {
    MF_CHECK(d.is_number_unsigned(), where, ": shape entry ", d.dump(),
             " is not a non-negative integer");
    uint64_t v = d.get<uint64_t>();
    MF_CHECK(v <= (uint64_t(1) << 62) && !__builtin_mul_overflow(numel, v, &numel) &&
                 numel <= (uint64_t(1) << 62),
             where, ": shape ", j["shape"].dump(), " has too many elements");
    e.shape.push_back(int64_t(v));
  }
  for (const auto& o : j["data_offsets"])
    MF_CHECK(o.is_number_unsigned(), where, ": data_offsets entry ", o.dump(),
             " is not a non-negative integer");
  e.begin = j["data_offsets"][0].get<uint64_t>();
  e.end = j["data_offsets"][1].get<uint64_t>();
  MF_CHECK(e.begin <= e.end, where, ": data_offsets [", e.begin, ", ", e.end, "] are reversed");
  MF_CHECK(e.end <= data_size, where, ": data_offsets [", e.begin, ", ", e.end,
           "] run past the end of the data section (", data_size,
           " bytes; the file may be truncated)");
  const uint64_t expect = checked_mul(numel, uint64_t(dtype_info(e.dtype).block_bytes), where, ": byte size");
  MF_CHECK(e.end - e.begin == expect, where, ": data_offsets [", e.begin, ", ", e.end, "] hold ",
           e.end - e.begin, " bytes but ", j["dtype"].get<std::string>(), " shape ",
           shape_str(e.shape), " needs ", expect);
  return e;
}

}  // namespace

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  SafetensorsFile out;
  out.file = MappedFile::open(path);
  const uint8_t* base = out.file->data();
  size_t size = out.file->size();
  MF_CHECK(size >= 8, path, ": not a safetensors file (", size,
           " bytes, shorter than the 8-byte header length)");
  uint64_t header_len = read_u64_le(base);
  MF_CHECK(header_len <= size - 8, path, ": header length ", header_len,
           " exceeds the file size ", size, " (truncated or not a safetensors file)");
  MF_CHECK(header_len >= 2 && base[8] == '{', path,
           ": header does not start with a JSON object (not a safetensors file?)");
  const char* hdr = reinterpret_cast<const char*>(base + 8);

  // nlohmann keeps the last of duplicate keys silently; a repeated tensor name is corruption.
  std::set<std::string> seen;
  std::string duplicate;
  auto on_event = [&](int depth, nlohmann::json::parse_event_t ev, nlohmann::json& parsed) {
    if (ev == nlohmann::json::parse_event_t::key && depth == 1 && duplicate.empty())
      if (!seen.insert(parsed.get<std::string>()).second) duplicate = parsed.get<std::string>();
    return true;
  };
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(hdr, hdr + header_len, on_event);
  } catch (const nlohmann::json::exception& e) {
    fail(path, ": header is not valid JSON: ", e.what());
  }
  MF_CHECK(header.is_object(), path, ": header is not a JSON object");
  MF_CHECK(duplicate.empty(), path, ": tensor '", duplicate, "' appears twice in the header");

  uint64_t data_start = 8 + header_len;
  uint64_t data_size = size - data_start;
  std::vector<Entry> entries;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      MF_CHECK(it->is_object(), path, ": __metadata__ is not a JSON object");
      for (auto m = it->begin(); m != it->end(); ++m) {
        MF_CHECK(m->is_string(), path, ": __metadata__ value for '", m.key(),
                 "' is not a string");
        out.metadata[m.key()] = m->get<std::string>();
      }
      continue;
    }
    entries.push_back(parse_entry(path, it.key(), *it, data_size));
  }
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  for (size_t i = 1; i < entries.size(); ++i)
    MF_CHECK(entries[i].begin >= entries[i - 1].end || entries[i].begin == entries[i].end ||
                 entries[i - 1].begin == entries[i - 1].end,
             path, ": tensor '", entries[i].name, "' (bytes ", entries[i].begin, "..",
             entries[i].end, ") overlaps tensor '", entries[i - 1].name, "' (bytes ",
             entries[i - 1].begin, "..", entries[i - 1].end, ")");
  for (Entry& e : entries) {
    out.names_in_file_order.push_back(e.name);
    out.tensors.emplace(e.name, mapped_tensor_view(out.file, base + data_start + e.begin, e.dtype,
                                                   std::move(e.shape)));
  }
  return out;
}

namespace {

void add_file_tensors(std::map<std::string, Tensor>& all,
                      std::map<std::string, std::string>& origin, const std::string& path) {
  SafetensorsFile f = SafetensorsFile::open(path);
  for (auto& [name, t] : f.tensors) {
    auto [it, inserted] = all.emplace(name, t);
    MF_CHECK(inserted, path, ": tensor '", name, "' is also stored in ", origin[name]);
    origin[name] = path;
  }
}

std::map<std::string, Tensor> load_sharded(const fs::path& index_path) {
  std::string ip = index_path.string();
  nlohmann::json index;
  try {
    index = nlohmann::json::parse(read_text_file(ip));
  } catch (const nlohmann::json::exception& e) {
    fail(ip, ": invalid JSON: ", e.what());
  }
  MF_CHECK(index.is_object() && index.contains("weight_map") && index["weight_map"].is_object(),
           ip, ": no \"weight_map\" object");
  std::map<std::string, std::string> wanted;  // tensor -> shard file name
  std::set<std::string> shards;
  for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it) {
    MF_CHECK(it->is_string(), ip, ": weight_map entry for tensor '", it.key(),
             "' is not a file name");
    std::string shard = it->get<std::string>();
    MF_CHECK(!shard.empty() && shard.find('/') == std::string::npos && shard != "." &&
                 shard != "..",
             ip, ": weight_map entry for tensor '", it.key(), "' names '", shard,
             "', which is not a file in this directory");
    wanted[it.key()] = shard;
    shards.insert(shard);
  }
  std::map<std::string, Tensor> all;
  std::map<std::string, std::string> origin;
  fs::path dir = index_path.parent_path();
  for (const std::string& s : shards) add_file_tensors(all, origin, (dir / s).string());
  for (const auto& [name, shard] : wanted) {
    auto it = origin.find(name);
    MF_CHECK(it != origin.end(), ip, ": tensor '", name, "' is listed in shard ", shard,
             " but no shard holds it");
    MF_CHECK(fs::path(it->second).filename() == shard, ip, ": tensor '", name,
             "' is listed in shard ", shard, " but stored in ", it->second);
  }
  return all;
}

}  // namespace

std::map<std::string, Tensor> load_safetensors(const std::string& file_or_dir) {
  fs::path p(file_or_dir);
  std::error_code ec;
  if (!fs::is_directory(p, ec)) return SafetensorsFile::open(file_or_dir).tensors;
  if (fs::exists(p / "model.safetensors.index.json"))
    return load_sharded(p / "model.safetensors.index.json");
  if (fs::exists(p / "model.safetensors"))
    return SafetensorsFile::open((p / "model.safetensors").string()).tensors;
  fail(file_or_dir, ": directory has neither model.safetensors nor model.safetensors.index.json");
}

std::string safetensors_dtype_name(DType t) {
  for (const StDType& d : kStDTypes)
    if (d.dtype == t) return d.name;
  fail("dtype ", dtype_name(t), " cannot be stored in safetensors (no block-quantized types)");
}

namespace {

// The 8-byte length and JSON header of a file holding `entries` in order (data offsets from the
// end of the header), padded with spaces so the data starts 8-byte aligned as the reference
// writer does; `sizes` gets each entry's byte count.
std::string header_bytes(const std::string& path, const std::vector<SafetensorsEntry>& entries,
                         const std::map<std::string, std::string>& metadata, std::vector<size_t>& sizes) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  std::set<std::string> names;
  sizes.clear();
  for (const SafetensorsEntry& e : entries) {
    MF_CHECK(!e.name.empty() && e.name != "__metadata__", path, ": invalid tensor name '", e.name, "'");
    MF_CHECK(names.insert(e.name).second, path, ": tensor '", e.name, "' given twice");
    std::string dt;
    size_t bytes = 0;
    try {
      dt = safetensors_dtype_name(e.dtype);  // plain dtypes only: one element per block
      uint64_t numel = 1;
      for (int64_t d : e.shape) {
        MF_CHECK(d >= 0, "negative dimension ", d);
        numel = checked_mul(numel, uint64_t(d), "element count");
      }
      bytes = size_t(checked_mul(numel, uint64_t(dtype_info(e.dtype).block_bytes), "byte size"));
    } catch (const Error& err) {
      fail(path, ": tensor '", e.name, "': ", err.what());
    }
    header[e.name] = {{"dtype", dt}, {"shape", e.shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    sizes.push_back(bytes);
  }
  std::string json = header.dump();
  json.append((8 - json.size() % 8) % 8, ' ');
  std::string out(8, '\0');
  const uint64_t n = json.size();
  for (int i = 0; i < 8; ++i) out[size_t(i)] = char(uint8_t(n >> (8 * i)));
  return out + json;
}

}  // namespace

SafetensorsStreamWriter::SafetensorsStreamWriter(const std::string& path, std::vector<SafetensorsEntry> entries,
                                                 const std::map<std::string, std::string>& metadata)
    : path_(path), entries_(std::move(entries)) {
  const std::string header = header_bytes(path_, entries_, metadata, sizes_);
  file_ = std::make_unique<AtomicFile>(path_);
  file_->write(header.data(), header.size());
}

SafetensorsStreamWriter::~SafetensorsStreamWriter() = default;

void SafetensorsStreamWriter::write(const std::string& name, const void* bytes, size_t size) {
  MF_CHECK(next_ < entries_.size(), path_, ": tensor '", name, "' written after the ", entries_.size(),
           " declared ones");
  MF_CHECK(name == entries_[next_].name, path_, ": tensor '", name, "' written where '", entries_[next_].name,
           "' was declared");
  MF_CHECK(size == sizes_[next_], path_, ": tensor '", name, "' has ", size, " bytes, declared ", sizes_[next_]);
  if (size) file_->write(bytes, size);
  ++next_;
}

void SafetensorsStreamWriter::commit() {
  MF_CHECK(next_ == entries_.size(), path_, ": ", entries_.size() - next_, " declared tensors were not written (next: '",
           next_ < entries_.size() ? entries_[next_].name : std::string(), "')");
  file_->commit();
}

void save_safetensors(const std::string& path,
                      const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  // Tensor by tensor from where each one lives (often a memory-mapped source file): the file is
  // never assembled in memory, which for a 2.6 GB model was the peak of a whole training run.
  std::vector<SafetensorsEntry> entries;
  for (const auto& [name, t] : tensors) {
    MF_CHECK(t.defined(), path, ": tensor '", name, "' has no data");
    entries.push_back({name, t.dtype(), t.shape()});
  }
  SafetensorsStreamWriter writer(path, std::move(entries), metadata);
  for (const auto& [name, t] : tensors) writer.write(name, t.raw(), t.nbytes());
  writer.commit();
}

void save_safetensors_dir(const std::string& dir,
                          const std::vector<std::pair<std::string, Tensor>>& tensors,
                          size_t max_shard_bytes, const std::map<std::string, std::string>& metadata) {
  fs::path d(dir);
  std::error_code ec;
  fs::create_directories(d, ec);
  MF_CHECK(fs::is_directory(d), dir, ": cannot create directory: ", ec.message());
  size_t total = 0;
  for (const auto& [name, t] : tensors) total += t.nbytes();
  if (total <= max_shard_bytes) {
    save_safetensors((d / "model.safetensors").string(), tensors, metadata);
    return;
  }
  // Greedy packing in the given order; a tensor larger than the limit gets a shard of its own.
  std::vector<std::vector<std::pair<std::string, Tensor>>> shards(1);
  size_t current = 0;
  for (const auto& nt : tensors) {
    size_t b = nt.second.nbytes();
    if (!shards.back().empty() && current + b > max_shard_bytes) {
      shards.emplace_back();
      current = 0;
    }
    shards.back().push_back(nt);
    current += b;
  }
  nlohmann::ordered_json weight_map = nlohmann::ordered_json::object();
  for (size_t i = 0; i < shards.size(); ++i) {
    char fname[64];
    std::snprintf(fname, sizeof fname, "model-%05zu-of-%05zu.safetensors", i + 1, shards.size());
    save_safetensors((d / fname).string(), shards[i], metadata);
    for (const auto& nt : shards[i]) weight_map[nt.first] = fname;
  }
  nlohmann::ordered_json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  std::string text = index.dump(2) + "\n";
  write_file_atomic((d / "model.safetensors.index.json").string(), text.data(), text.size());
}

}  // namespace mf
