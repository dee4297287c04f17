// GGUF v3 writer: the inverse of gguf_reader.cpp. The header is assembled in memory, the tensors
// are streamed after it through core/atomic_file, so a crash never leaves a half-written model and
// a large model is never copied into memory to be written.
#include <cstring>
#include <limits>
#include <set>

#include "core/atomic_file.h"
#include "core/error.h"
#include "io/ggml_types.h"
#include "io/gguf.h"

namespace mf {

namespace {

class ByteSink {
 public:
  std::vector<uint8_t> bytes;
  template <class T>
  void put(T v) {
    size_t n = bytes.size();
    bytes.resize(n + sizeof(T));
    std::memcpy(bytes.data() + n, &v, sizeof(T));
  }
  void put_string(const std::string& s) {
    put<uint64_t>(s.size());
    bytes.insert(bytes.end(), s.begin(), s.end());
  }
  void pad_to(size_t alignment) { bytes.resize((bytes.size() + alignment - 1) / alignment * alignment, 0); }
};

template <class T>
T narrow_uint(const GgufValue& v, const std::string& key) {
  uint64_t x = std::get<uint64_t>(v.value);
  MF_CHECK(x <= std::numeric_limits<T>::max(), "GGUF key '", key, "': value ", x,
           " does not fit in ", gguf_type_name(v.type));
  return T(x);
}
template <class T>
T narrow_int(const GgufValue& v, const std::string& key) {
  int64_t x = std::get<int64_t>(v.value);
  MF_CHECK(x >= std::numeric_limits<T>::min() && x <= std::numeric_limits<T>::max(), "GGUF key '",
           key, "': value ", x, " does not fit in ", gguf_type_name(v.type));
  return T(x);
}

// Values are written exactly as typed; a value built by hand with a mismatched variant member
// is caught by std::get and reported with the key.
void put_value(ByteSink& out, const GgufValue& v, const std::string& key) {
  try {
    switch (v.type) {
      case GgufType::U8: out.put(narrow_uint<uint8_t>(v, key)); break;
      case GgufType::U16: out.put(narrow_uint<uint16_t>(v, key)); break;
      case GgufType::U32: out.put(narrow_uint<uint32_t>(v, key)); break;
      case GgufType::U64: out.put(std::get<uint64_t>(v.value)); break;
      case GgufType::I8: out.put(narrow_int<int8_t>(v, key)); break;
      case GgufType::I16: out.put(narrow_int<int16_t>(v, key)); break;
      case GgufType::I32: out.put(narrow_int<int32_t>(v, key)); break;
      case GgufType::I64: out.put(std::get<int64_t>(v.value)); break;
      case GgufType::F32: out.put(float(std::get<double>(v.value))); break;
      case GgufType::F64: out.put(std::get<double>(v.value)); break;
      case GgufType::BOOL: out.put(uint8_t(std::get<bool>(v.value) ? 1 : 0)); break;
      case GgufType::STRING: out.put_string(std::get<std::string>(v.value)); break;
      case GgufType::ARRAY: {
        const auto& elems = std::get<std::vector<GgufValue>>(v.value);
        out.put(uint32_t(v.array_type));
        out.put(uint64_t(elems.size()));
        for (size_t i = 0; i < elems.size(); ++i) {
          MF_CHECK(elems[i].type == v.array_type, "GGUF key '", key, "': array element ", i, " is ",
                   gguf_type_name(elems[i].type), " in an array of ", gguf_type_name(v.array_type));
          put_value(out, elems[i], key);
        }
        break;
      }
      default: fail("GGUF key '", key, "': unknown value type ", uint32_t(v.type));
    }
  } catch (const std::bad_variant_access&) {
    fail("GGUF key '", key, "': the stored value does not match its type ", gguf_type_name(v.type));
  }
}

}  // namespace

void GgufWriter::add_kv(const std::string& key, GgufValue value) {
  MF_CHECK(!key.empty(), "GgufWriter: empty metadata key");
  value.key = key;
  for (auto& [k, v] : kv_)
    if (k == key) {
      v = std::move(value);
      return;
    }
  kv_.emplace_back(key, std::move(value));
}

void GgufWriter::add_tensor(const std::string& name, const Tensor& tensor) {
  MF_CHECK(!name.empty(), "GgufWriter: empty tensor name");
  for (const auto& [n, t] : tensors_) MF_CHECK(n != name, "GgufWriter: tensor '", name, "' added twice");
  MF_CHECK(tensor.defined(), "GgufWriter: tensor '", name, "' has no data");
  MF_CHECK(tensor.ndim() >= 1 && tensor.ndim() <= 4, "GgufWriter: tensor '", name, "' has shape ",
           shape_str(tensor.shape()), "; GGUF holds 1 to 4 dimensions");
  try {
    ggml_type_of(tensor.dtype());
  } catch (const Error& e) {
    fail("GgufWriter: tensor '", name, "': ", e.what());
  }
  tensors_.emplace_back(name, tensor);
}

size_t GgufWriter::alignment() const {
  for (const auto& [k, v] : kv_)
    if (k == "general.alignment") {
      uint64_t a = v.as_u64();
      MF_CHECK(a > 0 && (a & (a - 1)) == 0, "GgufWriter: general.alignment ", a,
               " is not a power of two");
      return size_t(a);
    }
  return 32;
}

void GgufWriter::write(const std::string& path) const {
  const size_t align = alignment();
  ByteSink out;
  out.put<uint32_t>(0x46554747u);  // "GGUF" read as a little-endian u32
  out.put<uint32_t>(3);
  out.put<uint64_t>(tensors_.size());
  out.put<uint64_t>(kv_.size());
  for (const auto& [key, v] : kv_) {
    out.put_string(key);
    out.put(uint32_t(v.type));
    try {
      put_value(out, v, key);
    } catch (const Error& e) {
      fail(path, ": ", e.what());
    }
  }
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors_) {
    out.put_string(name);
    out.put<uint32_t>(uint32_t(t.ndim()));
    for (int d = t.ndim() - 1; d >= 0; --d) out.put<uint64_t>(uint64_t(t.shape()[size_t(d)]));
    out.put<uint32_t>(ggml_type_of(t.dtype()));
    out.put<uint64_t>(offset);
    offset += (t.nbytes() + align - 1) / align * align;
  }
  out.pad_to(align);
  // The header is built in memory (it is small); the tensors go to the file one after another
  // from where they live, so the file is never assembled in memory.
  AtomicFile file(path);
  file.write(out.bytes.data(), out.bytes.size());
  for (const auto& [name, t] : tensors_) {
    if (t.nbytes()) file.write(t.raw(), t.nbytes());
    file.write_zeros((t.nbytes() + align - 1) / align * align - t.nbytes());
  }
  MF_CHECK(file.size() == out.bytes.size() + offset, path, ": wrote ", file.size(), " bytes, expected ",
           out.bytes.size() + offset);
  file.commit();
}

}  // namespace mf
