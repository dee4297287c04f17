// GgufValue keeps each value's exact GGUF type, checked at construction, so the writer stores every
// key with the type it was given. Reading is lenient instead: any integer type whose value fits is
// accepted, and an error in an array element names the array's key.
#include <limits>

#include "core/error.h"
#include "io/gguf.h"

namespace mf {

std::string gguf_type_name(GgufType t) {
  static const char* const kNames[] = {"u8",   "i8",     "u16",   "i16", "u32", "i32", "f32",
                                       "bool", "string", "array", "u64", "i64", "f64"};
  auto i = static_cast<uint32_t>(t);
  return i < 13 ? kNames[i] : cat("type ", i);
}

namespace {

bool is_unsigned(GgufType t) {
  return t == GgufType::U8 || t == GgufType::U16 || t == GgufType::U32 || t == GgufType::U64;
}
bool is_signed(GgufType t) {
  return t == GgufType::I8 || t == GgufType::I16 || t == GgufType::I32 || t == GgufType::I64;
}
bool is_float(GgufType t) { return t == GgufType::F32 || t == GgufType::F64; }

std::string label(const GgufValue& v) {
  return v.key.empty() ? std::string("GGUF value") : cat("GGUF key '", v.key, "'");
}

[[noreturn]] void mismatch(const GgufValue& v, const char* wanted) {
  std::string found = gguf_type_name(v.type);
  if (v.type == GgufType::ARRAY) found = cat("array of ", gguf_type_name(v.array_type));
  fail(label(v), ": expected ", wanted, ", found ", found);
}

// Element accessors report the array's key, not the (unnamed) element.
template <class T, class Get>
std::vector<T> convert_array(const GgufValue& v, const char* wanted, Get get) {
  if (v.type != GgufType::ARRAY) mismatch(v, wanted);
  const auto& elems = std::get<std::vector<GgufValue>>(v.value);
  std::vector<T> out;
  out.reserve(elems.size());
  for (size_t i = 0; i < elems.size(); ++i) {
    try {
      out.push_back(get(elems[i]));
    } catch (const Error& e) {
      fail(label(v), " element ", i, ": ", e.what());
    }
  }
  return out;
}

}  // namespace

GgufValue GgufValue::of_uint(GgufType t, uint64_t x) {
  MF_CHECK(is_unsigned(t), "GgufValue::of_uint: ", gguf_type_name(t), " is not an unsigned type");
  GgufValue v;
  v.type = t;
  v.value = x;
  return v;
}

GgufValue GgufValue::of_int(GgufType t, int64_t x) {
  MF_CHECK(is_signed(t), "GgufValue::of_int: ", gguf_type_name(t), " is not a signed type");
  GgufValue v;
  v.type = t;
  v.value = x;
  return v;
}

GgufValue GgufValue::of_float(GgufType t, double x) {
  MF_CHECK(is_float(t), "GgufValue::of_float: ", gguf_type_name(t), " is not a float type");
  GgufValue v;
  v.type = t;
  v.value = x;
  return v;
}

GgufValue GgufValue::of_bool(bool x) {
  GgufValue v;
  v.type = GgufType::BOOL;
  v.value = x;
  return v;
}

GgufValue GgufValue::of_string(std::string x) {
  GgufValue v;
  v.type = GgufType::STRING;
  v.value = std::move(x);
  return v;
}

GgufValue GgufValue::of_array(GgufType elem_type, std::vector<GgufValue> elems) {
  for (size_t i = 0; i < elems.size(); ++i)
    MF_CHECK(elems[i].type == elem_type, "GgufValue::of_array: element ", i, " is ",
             gguf_type_name(elems[i].type), ", not ", gguf_type_name(elem_type));
  GgufValue v;
  v.type = GgufType::ARRAY;
  v.array_type = elem_type;
  v.value = std::move(elems);
  return v;
}

GgufValue GgufValue::of_string_array(const std::vector<std::string>& xs) {
  std::vector<GgufValue> elems;
  elems.reserve(xs.size());
  for (const auto& s : xs) elems.push_back(of_string(s));
  return of_array(GgufType::STRING, std::move(elems));
}

GgufValue GgufValue::of_f32_array(const std::vector<float>& xs) {
  std::vector<GgufValue> elems;
  elems.reserve(xs.size());
  for (float x : xs) elems.push_back(of_f32(x));
  return of_array(GgufType::F32, std::move(elems));
}

GgufValue GgufValue::of_i32_array(const std::vector<int32_t>& xs) {
  std::vector<GgufValue> elems;
  elems.reserve(xs.size());
  for (int32_t x : xs) elems.push_back(of_i32(x));
  return of_array(GgufType::I32, std::move(elems));
}

uint64_t GgufValue::as_u64() const {
  if (is_unsigned(type)) return std::get<uint64_t>(value);
  if (is_signed(type)) {
    int64_t x = std::get<int64_t>(value);
    MF_CHECK(x >= 0, label(*this), ": value ", x, " is negative where an unsigned one is needed");
    return uint64_t(x);
  }
  mismatch(*this, "an integer");
}

int64_t GgufValue::as_i64() const {
  if (is_signed(type)) return std::get<int64_t>(value);
  if (is_unsigned(type)) {
    uint64_t x = std::get<uint64_t>(value);
    MF_CHECK(x <= uint64_t(std::numeric_limits<int64_t>::max()), label(*this), ": value ", x,
             " does not fit in int64");
    return int64_t(x);
  }
  mismatch(*this, "an integer");
}

double GgufValue::as_f64() const {
  if (is_float(type)) return std::get<double>(value);
  if (is_unsigned(type)) return double(std::get<uint64_t>(value));
  if (is_signed(type)) return double(std::get<int64_t>(value));
  mismatch(*this, "a number");
}

bool GgufValue::as_bool() const {
  if (type != GgufType::BOOL) mismatch(*this, "bool");
  return std::get<bool>(value);
}

const std::string& GgufValue::as_string() const {
  if (type != GgufType::STRING) mismatch(*this, "string");
  return std::get<std::string>(value);
}

const std::vector<GgufValue>& GgufValue::as_array() const {
  if (type != GgufType::ARRAY) mismatch(*this, "array");
  return std::get<std::vector<GgufValue>>(value);
}

std::vector<std::string> GgufValue::as_string_array() const {
  if (type == GgufType::ARRAY && array_type != GgufType::STRING)
    mismatch(*this, "array of string");
  return convert_array<std::string>(*this, "array of string",
                                    [](const GgufValue& e) { return e.as_string(); });
}

std::vector<float> GgufValue::as_f32_array() const {
  return convert_array<float>(*this, "array of numbers",
                              [](const GgufValue& e) { return float(e.as_f64()); });
}

std::vector<int32_t> GgufValue::as_i32_array() const {
  return convert_array<int32_t>(*this, "array of integers", [](const GgufValue& e) {
    int64_t x = e.as_i64();
    MF_CHECK(x >= std::numeric_limits<int32_t>::min() && x <= std::numeric_limits<int32_t>::max(),
             "value ", x, " does not fit in int32");
    return int32_t(x);
  });
}

}  // namespace mf
