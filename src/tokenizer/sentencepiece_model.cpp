// SentencePiece's tokenizer.model (a ModelProto in protobuf wire format) -> SpmConfig, with a
// small reader of our own: only the fields a tokenizer needs are kept, every length and varint is
// checked against the bytes left, and anything malformed is an error naming the file and field.
//   ModelProto      1: pieces {1: piece, 2: score (float), 3: type}   2: trainer_spec   3: normalizer_spec
//   TrainerSpec     3: model_type (1 Unigram, 2 BPE, 3 Word, 4 Char)  24: treat_whitespace_as_suffix
//                   35: byte_fallback  40-43: unk/bos/eos/pad ids (defaults 0, 1, 2, -1)
//   NormalizerSpec  1: name  2: precompiled_charsmap  3: add_dummy_prefix  4: remove_extra_whitespaces
//                   5: escape_whitespaces (the last three default to true)
#include <cstring>

#include "core/error.h"
#include "core/mapped_file.h"
#include "tokenizer/hf_json_parts.h"
#include "tokenizer/spm_tokenizer.h"

namespace mf {
namespace {

constexpr size_t kMaxModelBytes = size_t(256) << 20;  // real models are under 5 MB
constexpr size_t kMaxPieces = size_t(1) << 24;

// One protobuf message: a bounded cursor over its bytes.
class WireReader {
 public:
  WireReader(const uint8_t* data, size_t size, const std::string& where) : p_(data), end_(data + size), where_(where) {}

  bool done() const { return p_ == end_; }

  uint64_t varint(const char* field) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      MF_CHECK(p_ < end_, where_, ": truncated varint in ", field);
      const uint8_t b = *p_++;
      v |= uint64_t(b & 0x7F) << shift;
      if (!(b & 0x80)) return v;
    }
    fail(where_, ": varint longer than 10 bytes in ", field);
  }

  // Reads a tag; field number and wire type out.
  void tag(uint32_t& field, uint32_t& wire) {
    const uint64_t t = varint("a field tag");
    field = static_cast<uint32_t>(t >> 3);
    wire = static_cast<uint32_t>(t & 7);
    MF_CHECK(field > 0 && (t >> 3) < (uint64_t(1) << 29), where_, ": invalid field number ", (t >> 3));
  }

  std::pair<const uint8_t*, size_t> bytes(const char* field) {
    const uint64_t n = varint(field);
    MF_CHECK(n <= uint64_t(end_ - p_), where_, ": ", field, " claims ", n, " bytes but ", (end_ - p_), " remain");
    const uint8_t* at = p_;
    p_ += n;
    return {at, static_cast<size_t>(n)};
  }

  float fixed32_float(const char* field) {
    MF_CHECK(end_ - p_ >= 4, where_, ": truncated float in ", field);
    uint32_t bits = uint32_t(p_[0]) | uint32_t(p_[1]) << 8 | uint32_t(p_[2]) << 16 | uint32_t(p_[3]) << 24;
    p_ += 4;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
  }

  void skip(uint32_t wire, uint32_t field) {
    switch (wire) {
      case 0: varint("a skipped field"); return;
      case 1: MF_CHECK(end_ - p_ >= 8, where_, ": truncated field ", field); p_ += 8; return;
      case 2: bytes("a skipped field"); return;
      case 5: MF_CHECK(end_ - p_ >= 4, where_, ": truncated field ", field); p_ += 4; return;
      default: fail(where_, ": field ", field, " has wire type ", wire, " (groups and unknown types are not read)");
    }
  }

  void expect(uint32_t wire, uint32_t want, const char* field) {
    MF_CHECK(wire == want, where_, ": ", field, " has wire type ", wire, ", expected ", want);
  }

 private:
  const uint8_t* p_;
  const uint8_t* end_;
  const std::string& where_;
};

int32_t as_int32(uint64_t v, const std::string& where, const char* field) {
  const auto s = static_cast<int64_t>(v);  // protobuf int32: negative values are 10-byte varints
  MF_CHECK(s >= INT32_MIN && s <= INT32_MAX, where, ": ", field, " = ", s, " is not an int32");
  return static_cast<int32_t>(s);
}

struct Trainer {
  int32_t model_type = 1;
  bool byte_fallback = false, whitespace_as_suffix = false;
  int32_t unk = 0, bos = 1, eos = 2, pad = -1;
};

struct NormalizerSpec {
  std::string name;
  size_t charsmap_bytes = 0;
  bool add_dummy_prefix = true, remove_extra_whitespaces = true, escape_whitespaces = true;
};

void read_piece(WireReader r, const std::string& where, SpmConfig& c) {
  std::string piece;
  float score = 0;
  int32_t type = 1;
  while (!r.done()) {
    uint32_t field, wire;
    r.tag(field, wire);
    if (field == 1) {
      r.expect(wire, 2, "pieces.piece");
      auto [at, n] = r.bytes("pieces.piece");
      piece.assign(reinterpret_cast<const char*>(at), n);
    } else if (field == 2) {
      r.expect(wire, 5, "pieces.score");
      score = r.fixed32_float("pieces.score");
    } else if (field == 3) {
      r.expect(wire, 0, "pieces.type");
      type = as_int32(r.varint("pieces.type"), where, "pieces.type");
      MF_CHECK(type >= 1 && type <= 6, where, ": piece ", c.pieces.size(), " has type ", type, " (1..6)");
    } else {
      r.skip(wire, field);
    }
  }
  MF_CHECK(!piece.empty(), where, ": piece ", c.pieces.size(), " is empty");
  c.pieces.push_back(std::move(piece));
  c.scores.push_back(score);
  c.types.push_back(static_cast<SpmPieceType>(type));
}

Trainer read_trainer(WireReader r, const std::string& where) {
  Trainer t;
  while (!r.done()) {
    uint32_t field, wire;
    r.tag(field, wire);
    auto int_field = [&](const char* name) {
      r.expect(wire, 0, name);
      return as_int32(r.varint(name), where, name);
    };
    switch (field) {
      case 3: t.model_type = int_field("trainer_spec.model_type"); break;
      case 24: t.whitespace_as_suffix = int_field("trainer_spec.treat_whitespace_as_suffix") != 0; break;
      case 35: t.byte_fallback = int_field("trainer_spec.byte_fallback") != 0; break;
      case 40: t.unk = int_field("trainer_spec.unk_id"); break;
      case 41: t.bos = int_field("trainer_spec.bos_id"); break;
      case 42: t.eos = int_field("trainer_spec.eos_id"); break;
      case 43: t.pad = int_field("trainer_spec.pad_id"); break;
      default: r.skip(wire, field);
    }
  }
  return t;
}

NormalizerSpec read_normalizer(WireReader r, const std::string& where) {
  NormalizerSpec n;
  while (!r.done()) {
    uint32_t field, wire;
    r.tag(field, wire);
    auto flag = [&](const char* name) {
      r.expect(wire, 0, name);
      return r.varint(name) != 0;
    };
    switch (field) {
      case 1: {
        r.expect(wire, 2, "normalizer_spec.name");
        auto [at, len] = r.bytes("normalizer_spec.name");
        n.name.assign(reinterpret_cast<const char*>(at), len);
        break;
      }
      case 2: {
        r.expect(wire, 2, "normalizer_spec.precompiled_charsmap");
        n.charsmap_bytes = r.bytes("normalizer_spec.precompiled_charsmap").second;
        break;
      }
      case 3: n.add_dummy_prefix = flag("normalizer_spec.add_dummy_prefix"); break;
      case 4: n.remove_extra_whitespaces = flag("normalizer_spec.remove_extra_whitespaces"); break;
      case 5: n.escape_whitespaces = flag("normalizer_spec.escape_whitespaces"); break;
      default: r.skip(wire, field);
    }
  }
  return n;
}

int32_t checked_special(int32_t id, const SpmConfig& c, const char* name) {
  if (id < 0) return -1;
  MF_CHECK(size_t(id) < c.pieces.size(), c.source, ": trainer_spec.", name, " = ", id, " is outside the ",
           c.pieces.size(), " pieces");
  return id;
}

}  // namespace

SpmConfig spm_config_from_model_file(const std::string& path) {
  const auto file = MappedFile::open(path);
  MF_CHECK(file->size() <= kMaxModelBytes, path, ": ", file->size(), " bytes is too large for a SentencePiece model");
  SpmConfig c;
  c.source = path;
  Trainer trainer;
  NormalizerSpec norm;
  bool have_trainer = false;
  WireReader r(file->data(), file->size(), path);
  while (!r.done()) {
    uint32_t field, wire;
    r.tag(field, wire);
    if (field == 1) {
      r.expect(wire, 2, "pieces");
      MF_CHECK(c.pieces.size() < kMaxPieces, path, ": more than ", kMaxPieces, " pieces");
      auto [at, n] = r.bytes("pieces");
      read_piece(WireReader(at, n, path), path, c);
    } else if (field == 2) {
      r.expect(wire, 2, "trainer_spec");
      auto [at, n] = r.bytes("trainer_spec");
      trainer = read_trainer(WireReader(at, n, path), path);
      have_trainer = true;
    } else if (field == 3) {
      r.expect(wire, 2, "normalizer_spec");
      auto [at, n] = r.bytes("normalizer_spec");
      norm = read_normalizer(WireReader(at, n, path), path);
    } else {
      r.skip(wire, field);
    }
  }
  MF_CHECK(!c.pieces.empty(), path, ": no pieces (is this a SentencePiece model?)");
  MF_CHECK(have_trainer, path, ": no trainer_spec (is this a SentencePiece model?)");
  if (trainer.model_type == 1) {
    c.algorithm = SpmAlgorithm::Unigram;
    c.float_scores = true;
  } else if (trainer.model_type == 2) {
    c.algorithm = SpmAlgorithm::BpeScores;
    c.resegment_unused = true;
  } else {
    fail(path, ": trainer_spec.model_type ", trainer.model_type, " (", trainer.model_type == 3 ? "WORD" : "CHAR",
         ") is not supported (UNIGRAM, BPE)");
  }
  MF_CHECK(!trainer.whitespace_as_suffix, path, ": treat_whitespace_as_suffix is not supported");
  MF_CHECK(norm.name.empty() || norm.name == "identity" || norm.charsmap_bytes == 0, path, ": normalizer_spec '",
           norm.name, "' (a precompiled character map) is not supported; models trained with "
           "normalization_rule_name=identity (Llama-2, Mistral, TinyLlama) are");
  MF_CHECK(norm.escape_whitespaces, path, ": escape_whitespaces = false is not supported");

  // SentencePiece matches normal and unused pieces in text; control, unknown and byte pieces
  // never. Control pieces are special tokens (as transformers' converter makes them).
  const size_t n = c.pieces.size();
  c.matchable.assign(n, false);
  for (size_t i = 0; i < n; ++i) {
    const SpmPieceType t = c.types[i];
    MF_CHECK(t != SpmPieceType::UserDefined, path, ": piece ", i, " '", c.pieces[i],
             "' is user-defined; SentencePiece matches those inside words after normalization, which moeforge "
             "does not reproduce yet");
    c.matchable[i] = t == SpmPieceType::Normal || t == SpmPieceType::Unused;
    if (t == SpmPieceType::Control || t == SpmPieceType::Unknown)
      c.added.push_back({c.pieces[i], static_cast<int32_t>(i), true});
  }
  c.byte_fallback = trainer.byte_fallback;
  c.fuse_unk = true;
  using Kind = NormalizeStep::Kind;
  if (norm.remove_extra_whitespaces) c.normalizer.steps.push_back({Kind::CollapseSpaces});
  if (norm.add_dummy_prefix) c.normalizer.steps.push_back(NormalizeStep::prepend(" "));
  c.normalizer.steps.push_back(NormalizeStep::replace(" ", std::string(kSpmSpace)));
  c.decode_spaces = true;
  c.decode_bytes = true;
  c.opening = norm.add_dummy_prefix ? SpmConfig::Opening::StripSpace : SpmConfig::Opening::None;
  c.unk_id = checked_special(trainer.unk, c, "unk_id");
  c.bos_id = checked_special(trainer.bos, c, "bos_id");
  c.eos_id = checked_special(trainer.eos, c, "eos_id");
  c.pad_id = checked_special(trainer.pad, c, "pad_id");
  c.add_bos = c.bos_id >= 0;  // as transformers' LlamaTokenizer (add_bos_token defaults to true)

  hf_json::SpecialIds ids{c.bos_id, c.eos_id, c.pad_id, c.unk_id, c.add_bos, false};
  hf_json::read_tokenizer_config(path, [&](const std::string& name) -> int32_t {
    for (size_t i = 0; i < n; ++i)
      if (c.pieces[i] == name) return static_cast<int32_t>(i);
    return -1;
  }, ids);
  c.bos_id = ids.bos, c.eos_id = ids.eos, c.pad_id = ids.pad, c.unk_id = ids.unk;
  c.add_bos = ids.add_bos, c.add_eos = ids.add_eos;
  return c;
}

}  // namespace mf
