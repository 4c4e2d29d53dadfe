#pragma once
// error_feedback's checkpoint format (version 1), and the metrics it carries.
//
//   field                                                          bytes
//   magic "GCEF", format version (1), value bytes, name length     4 x u32
//   d                                                              u64
//   compressor name (e.g. "top_k")                                 name length
//   steps, elements sent, wire bytes                               3 x u64
//   total error                                                    f64
//   has-step flag, compressor step                                 u8, u64
//   residual                                                       d x value bytes
//   FNV-1a 64 checksum of everything before                        u64
// All little-endian. Every field has exactly one valid value or range: the flag is 1 for a
// seeded compressor and 0 otherwise, the step is 0 when there is none, the total error is a
// non-negative number (+Inf allowed: a sum of squares can overflow a double), every residual
// entry is finite (error_feedback never holds a non-finite residual), and a checkpoint with
// no steps has sent nothing. read_feedback_checkpoint rejects anything else, so two
// checkpoints of the same state are the same bytes.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <istream>
#include <span>
#include <string_view>
#include <vector>

#include "../detail/bits.hpp"
#include "../detail/wire.hpp"
#include "../error.hpp"

namespace gradcomp {

/// Running totals of an error_feedback instance.
struct feedback_metrics {
  std::uint64_t steps = 0;          // compress calls
  std::uint64_t elements_sent = 0;  // sum of sent_elements(m)
  std::uint64_t wire_bytes = 0;     // sum of wire_bytes(m)
  double total_error = 0.0;         // sum over steps of ||e||^2 after the step
};

namespace detail {

/// FNV-1a, 64-bit: a checksum that catches corrupted checkpoint bytes.
inline std::uint64_t fnv1a(std::span<const std::byte> bytes, std::uint64_t h = 0xcbf29ce484222325ULL) {
  for (const std::byte b : bytes) h = (h ^ std::to_integer<std::uint64_t>(b)) * 0x100000001b3ULL;
  return h;
}

struct feedback_checkpoint_format {
  static constexpr std::uint32_t magic = 0x46454347;  // "GCEF" little-endian
  static constexpr std::uint32_t version = 1;
  static constexpr std::size_t fixed_prefix = 4 + 4 + 4 + 4 + 8;  // magic, version, value bytes, name length, dim

  /// The whole checkpoint's size for a compressor name of name_length bytes.
  static std::size_t bytes(std::size_t name_length, std::size_t dim, std::size_t value_bytes) {
    const char* where = "error_feedback";
    std::size_t n = fixed_prefix + name_length + 8 * 4 + 1 + 8;
    n = checked_add(n, checked_mul(dim, value_bytes, where, "residual size"), where, "checkpoint size");
    return checked_add(n, 8, where, "checkpoint size");  // checksum
  }
};

/// What a checkpoint holds (the residual stays in the checkpoint's bytes until the caller
/// copies it, so that reading needs no second d-sized buffer).
struct feedback_checkpoint {
  feedback_metrics metrics;
  std::uint64_t step = 0;           // the compressor's step (0 unless seeded)
  std::vector<std::byte> bytes;     // the whole checkpoint
  std::size_t residual_offset = 0;  // where the residual starts in bytes

  template <class T>
  void copy_residual(std::span<T> out) const {
    copy_le_array(std::span<const std::byte>(bytes).subspan(residual_offset, out.size() * sizeof(T)), out.data(),
                  out.size());
  }
};

/// The checkpoint of an error_feedback state, in the format above.
template <class T>
std::vector<std::byte> write_feedback_checkpoint(std::string_view name, bool seeded, std::uint64_t step,
                                                 const feedback_metrics& m, std::span<const T> residual) {
  std::vector<std::byte> bytes(feedback_checkpoint_format::bytes(name.size(), residual.size(), sizeof(T)));
  byte_writer w(bytes, "error_feedback::save");
  w.put(feedback_checkpoint_format::magic);
  w.put(feedback_checkpoint_format::version);
  w.put(static_cast<std::uint32_t>(sizeof(T)));
  w.put(static_cast<std::uint32_t>(name.size()));
  w.put(static_cast<std::uint64_t>(residual.size()));
  w.put_bytes(reinterpret_cast<const std::byte*>(name.data()), name.size());
  w.put(m.steps);
  w.put(m.elements_sent);
  w.put(m.wire_bytes);
  w.put(m.total_error);
  w.put(static_cast<std::uint8_t>(seeded ? 1 : 0));
  w.put(seeded ? step : std::uint64_t{0});
  w.put_array(residual.data(), residual.size());
  w.put(fnv1a(std::span<const std::byte>(bytes).first(w.written())));
  return bytes;
}

inline void read_exactly(std::istream& in, std::span<std::byte> dst, const char* what) {
  in.read(reinterpret_cast<char*>(dst.data()), static_cast<std::streamsize>(dst.size()));
  if (static_cast<std::size_t>(in.gcount()) != dst.size())
    fail("error_feedback::load", "truncated checkpoint: ", what, " needs ", dst.size(), " bytes, got ", in.gcount());
}

/// Reads and validates one checkpoint for an error_feedback<C, T> of dimension dim whose
/// compressor is called `name` and is seeded or not. Throws gc::error naming the first bad
/// field; reads no further than the checkpoint's own bytes.
template <class T>
feedback_checkpoint read_feedback_checkpoint(std::istream& in, std::string_view name, bool seeded, std::size_t dim) {
  const char* where = "error_feedback::load";
  using format = feedback_checkpoint_format;
  std::array<std::byte, format::fixed_prefix> prefix;
  read_exactly(in, prefix, "header");
  byte_reader r(prefix, where);
  if (r.get<std::uint32_t>("magic") != format::magic) fail(where, "not an error_feedback checkpoint (bad magic)");
  const auto version = r.get<std::uint32_t>("version");
  if (version != format::version)
    fail(where, "unsupported checkpoint version ", version, " (this build reads ", format::version, ")");
  const auto value_bytes = r.get<std::uint32_t>("value type");
  if (value_bytes != sizeof(T))
    fail(where, "value type mismatch: checkpoint holds ", value_bytes * 8, "-bit floats, this instance ", sizeof(T) * 8,
         "-bit");
  const auto name_length = r.get<std::uint32_t>("name length");
  const auto dim64 = r.get<std::uint64_t>("dimension");
  if (dim64 != dim) fail(where, "dimension mismatch: checkpoint has d = ", dim64, ", this instance ", dim);
  if (name_length != name.size())
    fail(where, "compressor mismatch: checkpoint name has ", name_length, " bytes, expected '", name, "'");

  // The whole checkpoint in one buffer: the prefix already read, then the rest.
  feedback_checkpoint c;
  c.bytes.resize(format::bytes(name.size(), dim, sizeof(T)));
  std::copy(prefix.begin(), prefix.end(), c.bytes.begin());
  read_exactly(in, std::span<std::byte>(c.bytes).subspan(format::fixed_prefix), "body");
  byte_reader body(std::span<const std::byte>(c.bytes).subspan(format::fixed_prefix), where);
  const auto name_bytes = body.take(name.size(), "compressor name");
  if (std::string_view(reinterpret_cast<const char*>(name_bytes.data()), name_bytes.size()) != name)
    fail(where, "compressor mismatch: checkpoint is for another compressor, expected '", name, "'");
  feedback_metrics& m = c.metrics;
  m.steps = body.get<std::uint64_t>("steps");
  m.elements_sent = body.get<std::uint64_t>("elements sent");
  m.wire_bytes = body.get<std::uint64_t>("wire bytes");
  m.total_error = body.get<double>("total error");
  const auto has_step = body.get<std::uint8_t>("step flag");
  c.step = body.get<std::uint64_t>("compressor step");
  c.residual_offset = format::fixed_prefix + name.size() + 8 * 4 + 1 + 8;
  const auto residual = body.take(dim * sizeof(T), "residual");
  const auto checksum_offset = c.bytes.size() - 8;
  const auto stored = body.get<std::uint64_t>("checksum");
  body.finish();
  if (fnv1a(std::span<const std::byte>(c.bytes).first(checksum_offset)) != stored)
    fail(where, "checksum mismatch: the checkpoint is corrupted");

  // Fields the format ignores for this compressor must hold their one valid value.
  if (has_step != (seeded ? 1 : 0))
    fail(where, "compressor state flag ", has_step, " is invalid for '", name, "' (must be ", seeded ? 1 : 0, ")");
  if (!seeded && c.step != 0) fail(where, "compressor step ", c.step, " must be 0: '", name, "' has no step");
  // A sum of squares is never negative or NaN; it may overflow to +Inf.
  if (!(m.total_error >= 0.0)) fail(where, "total error ", m.total_error, " is negative or not a number");
  if (m.steps == 0 && (m.elements_sent != 0 || m.wire_bytes != 0 || m.total_error != 0.0))
    fail(where, "metrics of a checkpoint with 0 steps must be 0 (elements sent ", m.elements_sent, ", wire bytes ",
         m.wire_bytes, ", total error ", m.total_error, ")");
  // error_feedback rejects every step that would leave a non-finite residual.
  for (std::size_t i = 0; i < dim; ++i) {
    T v;
    copy_le_array(residual.subspan(i * sizeof(T), sizeof(T)), &v, 1);
    if (!std::isfinite(v)) fail(where, "residual[", i, "] = ", v, " is not finite");
  }
  return c;
}

}  // namespace detail

}  // namespace gradcomp
