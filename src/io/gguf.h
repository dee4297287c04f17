// GGUF (ggml's single-file model format), versions 2 and 3: metadata key/values, tensor infos
// and an aligned data section. Reading maps the file and exposes zero-copy tensor views with
// shapes in PyTorch order (GGUF's ne[] is innermost-first, so it is reversed). Everything is
// validated against the file size before use; errors name the file and the key or tensor.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "core/mapped_file.h"
#include "core/tensor.h"

namespace mf {

enum class GgufType : uint32_t { U8 = 0, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 };

// "u32", "string", "array", ... ("type 99" for an unknown id).
std::string gguf_type_name(GgufType t);

// A metadata value. Unsigned integer types hold uint64_t, signed ones int64_t, F32/F64 double,
// BOOL bool, STRING std::string, ARRAY std::vector<GgufValue> (elements all of `array_type`).
struct GgufValue {
  GgufType type = GgufType::U8;
  std::variant<uint64_t, int64_t, double, bool, std::string, std::vector<GgufValue>> value;
  GgufType array_type = GgufType::U8;  // element type when type == ARRAY
  std::string key;                     // metadata key, for error messages (empty in arrays)

  // Construction with the exact GGUF type (checked: an unsigned type needs a uint64_t, etc.).
  static GgufValue of_uint(GgufType t, uint64_t v);
  static GgufValue of_int(GgufType t, int64_t v);
  static GgufValue of_float(GgufType t, double v);  // F32 or F64
  static GgufValue of_u32(uint32_t v) { return of_uint(GgufType::U32, v); }
  static GgufValue of_i32(int32_t v) { return of_int(GgufType::I32, v); }
  static GgufValue of_u64(uint64_t v) { return of_uint(GgufType::U64, v); }
  static GgufValue of_f32(float v) { return of_float(GgufType::F32, v); }
  static GgufValue of_bool(bool v);
  static GgufValue of_string(std::string v);
  static GgufValue of_array(GgufType elem_type, std::vector<GgufValue> elems);  // checked
  static GgufValue of_string_array(const std::vector<std::string>& v);
  static GgufValue of_f32_array(const std::vector<float>& v);
  static GgufValue of_i32_array(const std::vector<int32_t>& v);

  // Typed accessors; throw mf::Error naming the key on a type mismatch. Integer accessors take
  // any integer type whose value fits; as_f64 takes any number.
  uint64_t as_u64() const;
  int64_t as_i64() const;
  double as_f64() const;
  bool as_bool() const;
  const std::string& as_string() const;
  const std::vector<GgufValue>& as_array() const;
  std::vector<std::string> as_string_array() const;
  std::vector<float> as_f32_array() const;
  std::vector<int32_t> as_i32_array() const;
};

// One tensor info as stored (GGML type id, ne[] innermost-first, offset into the data section).
struct GgufTensorInfo {
  std::string name;
  uint32_t ggml_type = 0;
  std::vector<uint64_t> ne;
  uint64_t offset = 0;
  uint64_t nbytes = 0;
};

class GgufFile {
 public:
  // Validates header, metadata, tensor infos, alignment, offsets and sizes.
  static GgufFile open(const std::string& path);

  uint32_t version() const { return version_; }
  size_t alignment() const { return alignment_; }
  const std::string& path() const { return path_; }
  const std::map<std::string, GgufValue>& metadata() const { return metadata_; }
  const std::vector<std::string>& metadata_keys_in_file_order() const { return metadata_order_; }
  const GgufValue* find(const std::string& key) const;  // nullptr if absent
  const GgufValue& at(const std::string& key) const;    // throws naming key + file

  // Tensors by GGUF name ("blk.0.attn_q.weight"), dtype = native GGML type mapped to mf::DType,
  // shape in PyTorch order (GGUF ne[] reversed), data = zero-copy view into the mapping.
  // Tensors of GGML types moeforge cannot compute with (IQ*, TQ*, ...) are validated but left
  // out here; they are listed in unsupported_tensors().
  const std::map<std::string, Tensor>& tensors() const { return tensors_; }
  std::vector<std::string> tensor_names_in_file_order() const;
  const std::vector<GgufTensorInfo>& tensor_infos() const { return infos_; }
  std::vector<std::string> unsupported_tensors() const;
  // A tensor by name; throws naming the tensor and file if absent or of an unsupported type.
  const Tensor& tensor(const std::string& name) const;
  // Byte offset of the data section in the file.
  uint64_t data_offset() const { return data_offset_; }

 private:
  std::string path_;
  std::shared_ptr<MappedFile> file_;
  uint32_t version_ = 0;
  size_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::map<std::string, GgufValue> metadata_;
  std::vector<std::string> metadata_order_;
  std::vector<GgufTensorInfo> infos_;
  std::map<std::string, Tensor> tensors_;
};

// Builds a GGUF v3 file. Metadata keeps insertion order; tensors are laid out in the order
// added, each at an offset aligned to alignment() ("general.alignment" if set, else 32).
class GgufWriter {
 public:
  // Replaces an existing key's value (keeps its position).
  void add_kv(const std::string& key, GgufValue value);
  // The tensor is kept by reference (shared storage), not copied, until write().
  void add_tensor(const std::string& name, const Tensor& tensor);
  size_t alignment() const;
  // Writes atomically (temporary file + rename).
  void write(const std::string& path) const;

 private:
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::vector<std::pair<std::string, Tensor>> tensors_;
};

}  // namespace mf
