// GGML tensor type ids as stored in GGUF tensor infos, and their mapping to mf::DType.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include "core/dtype.h"

namespace mf {

struct GgmlTypeInfo {
  uint32_t id;
  const char* name;
  int block_elems;
  int block_bytes;
};

// Size facts for every GGML type id this build knows (including ones it cannot compute with,
// so their tensors' extents can still be validated); nullptr for an unknown id.
const GgmlTypeInfo* ggml_type_info(uint32_t id);
// The DType a GGML type loads as, if moeforge supports it.
std::optional<DType> dtype_from_ggml(uint32_t id);
// The GGML type id of a DType; throws mf::Error for types GGUF cannot hold (U8, BOOL).
uint32_t ggml_type_of(DType t);
// "Q4_K (12)" or "unknown (77)", for messages.
std::string ggml_type_label(uint32_t id);

}  // namespace mf
