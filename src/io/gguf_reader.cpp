// GGUF reader. Layout (little-endian): "GGUF", u32 version, u64 n_tensors, u64 n_kv,
// n_kv x {string key, u32 type, value}, n_tensors x {string name, u32 n_dims, u64 ne[n_dims],
// u32 ggml_type, u64 offset}, padding to the alignment, data section. Strings are u64 length +
// bytes; arrays are u32 element type + u64 count + elements.
#include <algorithm>
#include <cstring>
#include <set>

#include "core/checked.h"
#include "core/error.h"
#include "io/ggml_types.h"
#include "io/gguf.h"
#include "io/mapped_view.h"

namespace mf {

namespace {

constexpr int kMaxArrayDepth = 16;
constexpr uint32_t kMaxDims = 4;  // GGML_MAX_DIMS

// Bounds-checked little-endian reads over the mapping. `context` names what is being read so
// that a truncation error says which key or tensor was cut.
class Cursor {
 public:
  Cursor(const MappedFile& f) : path_(f.path()), base_(f.data()), size_(f.size()) {}

  std::string context;

  size_t pos() const { return pos_; }
  uint64_t remaining() const { return size_ - pos_; }

  void need(uint64_t n) const {
    if (n > remaining())
      fail(path_, ": truncated file: reading ", context, " at offset ", pos_, " needs ", n,
           " bytes but only ", remaining(), " remain");
  }
  template <class T>
  T read() {
    need(sizeof(T));
    T v;
    std::memcpy(&v, base_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string read_string() {
    uint64_t n = read<uint64_t>();
    need(n);
    std::string s(reinterpret_cast<const char*>(base_ + pos_), size_t(n));
    pos_ += size_t(n);
    return s;
  }

 private:
  const std::string& path_;
  const uint8_t* base_;
  size_t size_;
  size_t pos_ = 0;
};

// Smallest encoding of one value of type t: bounds the element count an array may claim.
uint64_t min_encoded_size(GgufType t) {
  switch (t) {
    case GgufType::U8: case GgufType::I8: case GgufType::BOOL: return 1;
    case GgufType::U16: case GgufType::I16: return 2;
    case GgufType::U32: case GgufType::I32: case GgufType::F32: return 4;
    case GgufType::U64: case GgufType::I64: case GgufType::F64: case GgufType::STRING: return 8;
    case GgufType::ARRAY: return 12;
  }
  return 1;
}

bool valid_type(uint32_t t) { return t <= uint32_t(GgufType::F64); }

GgufValue read_value(Cursor& c, GgufType type, const std::string& path, const std::string& key,
                     int depth) {
  GgufValue v;
  v.type = type;
  switch (type) {
    case GgufType::U8: v.value = uint64_t(c.read<uint8_t>()); break;
    case GgufType::U16: v.value = uint64_t(c.read<uint16_t>()); break;
    case GgufType::U32: v.value = uint64_t(c.read<uint32_t>()); break;
    case GgufType::U64: v.value = c.read<uint64_t>(); break;
    case GgufType::I8: v.value = int64_t(c.read<int8_t>()); break;
    case GgufType::I16: v.value = int64_t(c.read<int16_t>()); break;
    case GgufType::I32: v.value = int64_t(c.read<int32_t>()); break;
    case GgufType::I64: v.value = c.read<int64_t>(); break;
    case GgufType::F32: v.value = double(c.read<float>()); break;
    case GgufType::F64: v.value = c.read<double>(); break;
    case GgufType::BOOL: {
      uint8_t b = c.read<uint8_t>();
      MF_CHECK(b <= 1, path, ": metadata '", key, "': invalid bool byte ", int(b),
               " at offset ", c.pos() - 1);
      v.value = b == 1;
      break;
    }
    case GgufType::STRING: v.value = c.read_string(); break;
    case GgufType::ARRAY: {
      MF_CHECK(depth < kMaxArrayDepth, path, ": metadata '", key, "': arrays nested deeper than ",
               kMaxArrayDepth);
      uint32_t et = c.read<uint32_t>();
      MF_CHECK(valid_type(et), path, ": metadata '", key, "': unknown array element type ", et);
      v.array_type = GgufType(et);
      uint64_t count = c.read<uint64_t>();
      // A corrupt count must fail here, not in a huge allocation.
      MF_CHECK(count <= c.remaining() / min_encoded_size(v.array_type), path, ": metadata '", key,
               "': array of ", count, " ", gguf_type_name(v.array_type),
               " elements cannot fit in the ", c.remaining(), " bytes left in the file");
      std::vector<GgufValue> elems;
      elems.reserve(size_t(count));
      for (uint64_t i = 0; i < count; ++i)
        elems.push_back(read_value(c, v.array_type, path, key, depth + 1));
      v.value = std::move(elems);
      break;
    }
  }
  return v;
}

size_t read_alignment(const std::string& path, const std::map<std::string, GgufValue>& md) {
  auto it = md.find("general.alignment");
  if (it == md.end()) return 32;
  const GgufValue& a = it->second;
  MF_CHECK(a.type == GgufType::U32 || a.type == GgufType::U64 || a.type == GgufType::U16 ||
               a.type == GgufType::U8,
           path, ": general.alignment must be an unsigned integer, found ",
           gguf_type_name(a.type));
  uint64_t v = a.as_u64();
  MF_CHECK(v > 0 && (v & (v - 1)) == 0 && v <= (1u << 20), path, ": general.alignment ", v,
           " is not a power of two up to 1 MiB");
  return size_t(v);
}

GgufTensorInfo read_tensor_info(Cursor& c, const std::string& path, uint64_t index,
                                size_t alignment) {
  GgufTensorInfo t;
  c.context = cat("the name of tensor #", index);
  t.name = c.read_string();
  MF_CHECK(!t.name.empty(), path, ": tensor #", index, " has an empty name");
  std::string where = cat(path, ": tensor '", t.name, "'");
  c.context = cat("the info of tensor '", t.name, "'");
  uint32_t n_dims = c.read<uint32_t>();
  MF_CHECK(n_dims <= kMaxDims, where, ": ", n_dims, " dimensions (at most ", kMaxDims, ")");
  uint64_t numel = 1;
  for (uint32_t d = 0; d < n_dims; ++d) {
    uint64_t ne = c.read<uint64_t>();
    MF_CHECK(ne <= (uint64_t(1) << 62) && !__builtin_mul_overflow(numel, ne, &numel) &&
                 numel <= (uint64_t(1) << 62),
             where, ": dimension ", d, " = ", ne, " makes the element count overflow");
    t.ne.push_back(ne);
  }
  t.ggml_type = c.read<uint32_t>();
  const GgmlTypeInfo* ti = ggml_type_info(t.ggml_type);
  MF_CHECK(ti, where, ": unknown GGML type ", t.ggml_type);
  uint64_t row = n_dims ? t.ne[0] : 1;
  MF_CHECK(row % uint64_t(ti->block_elems) == 0, where, ": row length ", row,
           " is not a multiple of the ", ti->name, " block size ", ti->block_elems);
  // numel is a whole number of blocks (rows are), so the division is exact; the product can wrap.
  t.nbytes = checked_mul(numel / uint64_t(ti->block_elems), uint64_t(ti->block_bytes), where, ": byte size");
  t.offset = c.read<uint64_t>();
  MF_CHECK(t.offset % alignment == 0, where, ": data offset ", t.offset,
           " is not a multiple of the alignment ", alignment);
  return t;
}

}  // namespace

GgufFile GgufFile::open(const std::string& path) {
  GgufFile g;
  g.path_ = path;
  g.file_ = MappedFile::open(path);
  const MappedFile& f = *g.file_;
  MF_CHECK(f.size() >= 4 && std::memcmp(f.data(), "GGUF", 4) == 0, path,
           ": not a GGUF file (bad magic)");
  Cursor c(f);
  c.context = "the header";
  c.read<uint32_t>();
  g.version_ = c.read<uint32_t>();
  MF_CHECK(g.version_ != 1, path, ": GGUF version 1 is not supported (only versions 2 and 3)");
  MF_CHECK(g.version_ == 2 || g.version_ == 3, path, ": unsupported GGUF version ", g.version_,
           (g.version_ >= 0x01000000u ? " (a big-endian GGUF?)" : ""), "; only 2 and 3 are read");
  uint64_t n_tensors = c.read<uint64_t>();
  uint64_t n_kv = c.read<uint64_t>();
  // Every key/value needs >= 13 bytes and every tensor info >= 24: reject impossible counts.
  MF_CHECK(n_kv <= c.remaining() / 13, path, ": metadata count ", n_kv,
           " cannot fit in a file of ", f.size(), " bytes (corrupt header)");
  MF_CHECK(n_tensors <= c.remaining() / 24, path, ": tensor count ", n_tensors,
           " cannot fit in a file of ", f.size(), " bytes (corrupt header)");

  for (uint64_t i = 0; i < n_kv; ++i) {
    c.context = cat("metadata key #", i);
    std::string key = c.read_string();
    MF_CHECK(!key.empty(), path, ": metadata key #", i, " is empty");
    MF_CHECK(!g.metadata_.count(key), path, ": metadata key '", key, "' appears twice");
    c.context = cat("the value of metadata '", key, "'");
    uint32_t type = c.read<uint32_t>();
    MF_CHECK(valid_type(type), path, ": metadata '", key, "' has unknown value type ", type);
    GgufValue v = read_value(c, GgufType(type), path, key, 0);
    v.key = key;
    g.metadata_order_.push_back(key);
    g.metadata_.emplace(std::move(key), std::move(v));
  }
  g.alignment_ = read_alignment(path, g.metadata_);

  std::set<std::string> names;
  g.infos_.reserve(size_t(n_tensors));
  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensorInfo t = read_tensor_info(c, path, i, g.alignment_);
    MF_CHECK(names.insert(t.name).second, path, ": tensor '", t.name, "' appears twice");
    g.infos_.push_back(std::move(t));
  }
  g.data_offset_ = (uint64_t(c.pos()) + g.alignment_ - 1) / g.alignment_ * g.alignment_;
  uint64_t data_size = g.data_offset_ <= f.size() ? f.size() - g.data_offset_ : 0;
  for (const GgufTensorInfo& t : g.infos_)
    MF_CHECK(t.offset <= data_size && t.nbytes <= data_size - t.offset, path, ": tensor '",
             t.name, "' (", ggml_type_label(t.ggml_type), ", ", t.nbytes, " bytes at data offset ",
             t.offset, ") extends past the end of the file (", f.size(),
             " bytes; truncated?)");

  std::vector<const GgufTensorInfo*> by_offset;
  for (const GgufTensorInfo& t : g.infos_) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(), [](auto* a, auto* b) {
    return a->offset != b->offset ? a->offset < b->offset : a->nbytes < b->nbytes;
  });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const GgufTensorInfo& a = *by_offset[i - 1];
    const GgufTensorInfo& b = *by_offset[i];
    MF_CHECK(a.nbytes == 0 || b.offset >= a.offset + a.nbytes, path, ": tensor '", b.name,
             "' (data offset ", b.offset, ") overlaps tensor '", a.name, "' (bytes ", a.offset,
             "..", a.offset + a.nbytes, ")");
  }

  for (const GgufTensorInfo& t : g.infos_) {
    std::optional<DType> dt = dtype_from_ggml(t.ggml_type);
    if (!dt) continue;
    Shape shape(t.ne.rbegin(), t.ne.rend());
    try {
      g.tensors_.emplace(t.name, mapped_tensor_view(g.file_, f.data() + g.data_offset_ + t.offset,
                                                    *dt, std::move(shape)));
    } catch (const Error& e) {
      fail(path, ": tensor '", t.name, "': ", e.what());
    }
  }
  return g;
}

const GgufValue* GgufFile::find(const std::string& key) const {
  auto it = metadata_.find(key);
  return it == metadata_.end() ? nullptr : &it->second;
}

const GgufValue& GgufFile::at(const std::string& key) const {
  const GgufValue* v = find(key);
  MF_CHECK(v, path_, ": required metadata key '", key, "' is missing");
  return *v;
}

std::vector<std::string> GgufFile::tensor_names_in_file_order() const {
  std::vector<std::string> out;
  for (const GgufTensorInfo& t : infos_) out.push_back(t.name);
  return out;
}

std::vector<std::string> GgufFile::unsupported_tensors() const {
  std::vector<std::string> out;
  for (const GgufTensorInfo& t : infos_)
    if (!tensors_.count(t.name)) out.push_back(t.name);
  return out;
}

const Tensor& GgufFile::tensor(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it != tensors_.end()) return it->second;
  for (const GgufTensorInfo& t : infos_)
    if (t.name == name)
      fail(path_, ": tensor '", name, "' has GGML type ", ggml_type_label(t.ggml_type),
           ", which moeforge cannot load");
  fail(path_, ": no tensor named '", name, "'");
}

}  // namespace mf
