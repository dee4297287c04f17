// safetensors files (Hugging Face): read by mmap with zero-copy tensor views, written
// atomically, single files and sharded checkpoint directories (model.safetensors.index.json).
// Every error names the file and, where there is one, the tensor.
#pragma once
#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/mapped_file.h"
#include "core/tensor.h"

namespace mf {

// One .safetensors file, mapped; tensors are views into the mapping (F32/F16/BF16/F64/
// I8/I16/I32/I64/U8/BOOL). The header is fully validated before any tensor is exposed.
struct SafetensorsFile {
  static SafetensorsFile open(const std::string& path);
  std::shared_ptr<MappedFile> file;
  std::map<std::string, Tensor> tensors;
  std::map<std::string, std::string> metadata;  // "__metadata__"
  // Tensor names in the order of their data offsets.
  std::vector<std::string> names_in_file_order;
};

// A path that is a .safetensors file, or a directory holding model.safetensors or
// model.safetensors.index.json + shards. Names are exactly as stored (HF names).
std::map<std::string, Tensor> load_safetensors(const std::string& file_or_dir);

// The safetensors dtype string ("F32", "BF16", ...) of a plain dtype; throws for block formats.
std::string safetensors_dtype_name(DType t);

// A safetensors file written tensor by tensor, for values that are not in Tensors (an
// optimizer's moments) or not all alive at once: the entries (name, dtype, shape) are declared
// first, since the header leads the file, then each entry's bytes are given in that order.
// Atomic (core/atomic_file): nothing appears under the path unless commit() succeeds.
struct SafetensorsEntry {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
};
class SafetensorsStreamWriter {
 public:
  // Validates the entries (names unique and non-empty, dtypes storable, sizes by checked
  // arithmetic) and writes the header. Throws mf::Error naming the file and the tensor.
  SafetensorsStreamWriter(const std::string& path, std::vector<SafetensorsEntry> entries,
                          const std::map<std::string, std::string>& metadata = {});
  ~SafetensorsStreamWriter();
  // The next entry's bytes; `name` and the byte count must be that entry's.
  void write(const std::string& name, const void* bytes, size_t size);
  // Every entry written: flush and publish.
  void commit();

 private:
  std::string path_;
  std::vector<SafetensorsEntry> entries_;
  std::vector<size_t> sizes_;
  size_t next_ = 0;
  std::unique_ptr<class AtomicFile> file_;
};

// Atomic writes (temp + rename). Tensors are written in the order given.
void save_safetensors(const std::string& path,
                      const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// Splits into model-0000i-of-0000n.safetensors + model.safetensors.index.json when larger than
// max_shard_bytes, else writes dir/model.safetensors. Creates dir if needed.
void save_safetensors_dir(const std::string& dir,
                          const std::vector<std::pair<std::string, Tensor>>& tensors,
                          size_t max_shard_bytes,
                          const std::map<std::string, std::string>& metadata = {});

}  // namespace mf
