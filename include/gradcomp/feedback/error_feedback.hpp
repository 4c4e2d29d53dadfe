#pragma once
// error_feedback<C>: the error-feedback adaptor (Seide et al. 2014; Stich et al. 2018;
// Karimireddy et al. 2019) over any compressor C.
//
// Each call computes
//     p = e + scale * g        (the step inside the compressed quantity)
//     m = C(p)                 (what is sent)
//     e = p - decode(m)        (what was not sent, kept for the next step)
// so nothing is lost: the sum of everything sent plus the residual equals the sum of
// everything fed in. For sparsifiers the update is exact: sent entries' residual is 0,
// the others keep p bit for bit.
#include <algorithm>
#include <array>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <istream>
#include <ostream>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "../backend.hpp"
#include "../compress.hpp"
#include "../concepts.hpp"
#include "../detail/reduce.hpp"
#include "../detail/strict_fp.hpp"
#include "../detail/wire.hpp"
#include "../error.hpp"
#include "../execution.hpp"

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

template <class C>
constexpr std::string_view compressor_name() {
  if constexpr (requires { std::string_view(C::name); })
    return C::name;
  else
    return {};
}

}  // namespace detail

template <class C, std::floating_point T = float, class Payload = payload_t<C, T>>
  requires compressor<C, T>
class error_feedback {
 public:
  using compressor_type = C;
  using value_type = T;
  using message_type = Payload;

  template <std::floating_point U>
    requires std::same_as<U, T>
  using payload_type = Payload;

  static constexpr std::string_view name = "error_feedback";

  /// Wraps c for vectors of dimension dim; the residual starts at zero.
  error_feedback(C c, std::size_t dim) : compressor_(std::move(c)), residual_(dim), scratch_(dim) {}

  /// One error-feedback step: p = e + scale * g; m = C(p); e = p - decode(m). Returns m,
  /// which stays valid until the next call. On error (wrong size, non-finite scale, a
  /// compressor that rejects p) the residual and the metrics are unchanged.
  template <execution_policy Policy>
  const Payload& compress(const Policy& policy, std::span<const T> g, T scale = T(1)) {
    step(policy, g, scale, message_);
    return message_;
  }

  /// The compressor interface: out = C(e + x), e = e + x - decode(out).
  template <execution_policy Policy>
  void compress(const Policy& policy, std::span<const T> x, Payload& out) {
    step(policy, x, T(1), out);
  }

  /// The residual e: everything fed in and not yet sent.
  std::span<const T> error() const noexcept { return residual_; }
  /// The message of the last compress(policy, g, scale) call.
  const Payload& message() const noexcept { return message_; }
  /// The wrapped compressor.
  const C& base() const noexcept { return compressor_; }
  C& base() noexcept { return compressor_; }
  std::size_t dim() const noexcept { return residual_.size(); }

  const feedback_metrics& metrics() const noexcept { return metrics_; }
  /// Sent elements over steps * d: 1 for dense messages, k/d for Top-k.
  double average_density() const noexcept {
    if (metrics_.steps == 0 || dim() == 0) return 0.0;
    return static_cast<double>(metrics_.elements_sent) /
           (static_cast<double>(metrics_.steps) * static_cast<double>(dim()));
  }

  /// Zeroes the residual and the metrics (the compressor's own state is kept).
  void reset() {
    std::fill(residual_.begin(), residual_.end(), T(0));
    metrics_ = {};
    can_undo_ = false;
  }

  /// Zeroes the residual only (metrics and the compressor's state are kept): for schemes
  /// that drop their accumulated error at a synchronisation (LIEC-SGD's server).
  void clear_error() {
    std::fill(residual_.begin(), residual_.end(), T(0));
    can_undo_ = false;
  }

  /// Takes back the last compress call: the residual, the metrics and a seeded compressor's
  /// step return to what they were before it (the message is left as it is). For
  /// distributed schemes whose step fails on another rank after this one compressed. Only
  /// the last call can be undone, and only once; throws gc::error otherwise.
  void undo() {
    if (!can_undo_) detail::fail("error_feedback::undo", "there is no compress call to undo");
    std::swap(residual_, scratch_);  // scratch_ still holds the residual from before the call
    metrics_ = previous_metrics_;
    if constexpr (seeded_compressor<C>) compressor_.step = previous_step_;
    can_undo_ = false;
  }

  /// Writes the residual, the metrics and the compressor's step (for seeded compressors)
  /// in a versioned binary format with a checksum.
  void save(std::ostream& out) const {
    const std::vector<std::byte> bytes = serialize();
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    if (!out) detail::fail("error_feedback::save", "writing ", bytes.size(), " bytes to the stream failed");
  }

  /// Restores what save() wrote. Rejects another format version, value type, compressor
  /// or dimension, and truncated or corrupted data; on error *this is unchanged.
  void load(std::istream& in) {
    const char* where = "error_feedback::load";
    std::array<std::byte, fixed_prefix> prefix;
    read_exactly(in, prefix, "header");
    detail::byte_reader r(prefix, where);
    if (r.get<std::uint32_t>("magic") != magic) detail::fail(where, "not an error_feedback checkpoint (bad magic)");
    const auto version = r.get<std::uint32_t>("version");
    if (version != format_version)
      detail::fail(where, "unsupported checkpoint version ", version, " (this build reads ", format_version, ")");
    const auto value_bytes = r.get<std::uint32_t>("value type");
    if (value_bytes != sizeof(T))
      detail::fail(where, "value type mismatch: checkpoint holds ", value_bytes * 8, "-bit floats, this instance ",
                   sizeof(T) * 8, "-bit");
    const auto name_length = r.get<std::uint32_t>("name length");
    const auto dim64 = r.get<std::uint64_t>("dimension");
    if (dim64 != dim()) detail::fail(where, "dimension mismatch: checkpoint has d = ", dim64, ", this instance ", dim());
    const std::string_view expected = detail::compressor_name<C>();
    if (name_length != expected.size())
      detail::fail(where, "compressor mismatch: checkpoint name has ", name_length, " bytes, expected '", expected, "'");

    // The whole checkpoint in one buffer: the prefix already read, then the rest.
    std::vector<std::byte> all(body_bytes(expected.size()));
    std::copy(prefix.begin(), prefix.end(), all.begin());
    read_exactly(in, std::span<std::byte>(all).subspan(fixed_prefix), "body");
    detail::byte_reader body(std::span<const std::byte>(all).subspan(fixed_prefix), where);
    const auto name_bytes = body.take(expected.size(), "compressor name");
    if (std::string_view(reinterpret_cast<const char*>(name_bytes.data()), name_bytes.size()) != expected)
      detail::fail(where, "compressor mismatch: checkpoint is for another compressor, expected '", expected, "'");
    feedback_metrics m;
    m.steps = body.get<std::uint64_t>("steps");
    m.elements_sent = body.get<std::uint64_t>("elements sent");
    m.wire_bytes = body.get<std::uint64_t>("wire bytes");
    m.total_error = body.get<double>("total error");
    const auto has_step = body.get<std::uint8_t>("step flag");
    const auto step = body.get<std::uint64_t>("compressor step");
    const auto residual_bytes = body.take(dim() * sizeof(T), "residual");
    const auto checksum_offset = all.size() - 8;
    const auto stored = body.get<std::uint64_t>("checksum");
    body.finish();
    if (detail::fnv1a(std::span<const std::byte>(all).first(checksum_offset)) != stored)
      detail::fail(where, "checksum mismatch: the checkpoint is corrupted");
    if (has_step != (seeded_compressor<C> ? 1 : 0)) detail::fail(where, "compressor state flag ", has_step, " is invalid");
    // NaN is a state save() can write (a NaN gradient propagates into the residual);
    // a negative sum of squares is not.
    if (m.total_error < 0.0) detail::fail(where, "total error ", m.total_error, " is negative");

    detail::copy_le_array(residual_bytes, residual_.data(), dim());
    metrics_ = m;
    can_undo_ = false;
    if constexpr (seeded_compressor<C>) compressor_.step = step;
  }

 private:
  static constexpr std::uint32_t magic = 0x46454347;  // "GCEF" little-endian
  static constexpr std::uint32_t format_version = 1;
  static constexpr std::size_t fixed_prefix = 4 + 4 + 4 + 4 + 8;  // magic, version, value bytes, name length, dim

  std::size_t body_bytes(std::size_t name_length) const {
    const char* where = "error_feedback";
    std::size_t n = fixed_prefix + name_length + 8 * 4 + 1 + 8;
    n = detail::checked_add(n, detail::checked_mul(dim(), sizeof(T), where, "residual size"), where, "checkpoint size");
    return detail::checked_add(n, 8, where, "checkpoint size");  // checksum
  }

  std::vector<std::byte> serialize() const {
    const std::string_view nm = detail::compressor_name<C>();
    std::vector<std::byte> bytes(body_bytes(nm.size()));
    detail::byte_writer w(bytes, "error_feedback::save");
    w.put(magic);
    w.put(format_version);
    w.put(static_cast<std::uint32_t>(sizeof(T)));
    w.put(static_cast<std::uint32_t>(nm.size()));
    w.put(static_cast<std::uint64_t>(dim()));
    w.put_bytes(reinterpret_cast<const std::byte*>(nm.data()), nm.size());
    w.put(metrics_.steps);
    w.put(metrics_.elements_sent);
    w.put(metrics_.wire_bytes);
    w.put(metrics_.total_error);
    std::uint64_t step = 0;
    if constexpr (seeded_compressor<C>) step = compressor_.step;
    w.put(static_cast<std::uint8_t>(seeded_compressor<C> ? 1 : 0));
    w.put(step);
    w.put_array(residual_.data(), residual_.size());
    w.put(detail::fnv1a(std::span<const std::byte>(bytes).first(w.written())));
    return bytes;
  }

  static void read_exactly(std::istream& in, std::span<std::byte> dst, const char* what) {
    in.read(reinterpret_cast<char*>(dst.data()), static_cast<std::streamsize>(dst.size()));
    if (static_cast<std::size_t>(in.gcount()) != dst.size())
      detail::fail("error_feedback::load", "truncated checkpoint: ", what, " needs ", dst.size(), " bytes, got ",
                   in.gcount());
  }

  template <class Policy>
  void step(const Policy& policy, std::span<const T> g, T scale, Payload& out) {
    if (g.size() != dim())
      detail::fail("error_feedback", "input size ", g.size(), " does not match the residual dimension ", dim());
    if (!std::isfinite(scale)) detail::fail("error_feedback", "scale must be finite (got ", scale, ")");
    // The new residual goes to scratch, so the old one survives a compressor that throws.
    const std::span<const T> e(residual_);
    const std::span<T> e_new(scratch_);
    [[maybe_unused]] std::uint64_t step_before = 0;
    if constexpr (seeded_compressor<C>) step_before = compressor_.step;
    // A back end's fused kernel, or p = e + scale * g; m = C(p); e = p - decode(m); ||e||^2
    // piece by piece (backend.hpp).
    const double error = backend::run<backend::feedback_step_hook>(policy, compressor_, e, g, scale, e_new, out);
    const std::size_t sent = out.sent_elements(), bytes = out.wire_bytes();
    std::swap(residual_, scratch_);  // commit only once nothing can throw
    previous_metrics_ = metrics_;
    if constexpr (seeded_compressor<C>) previous_step_ = step_before;
    can_undo_ = true;
    ++metrics_.steps;
    metrics_.elements_sent += sent;
    metrics_.wire_bytes += bytes;
    metrics_.total_error += error;
  }

  C compressor_;
  std::vector<T> residual_;
  std::vector<T> scratch_;  // p = e + scale * g; swapped with residual_ each step
  Payload message_;
  feedback_metrics metrics_;
  // What undo() restores (the residual before the last call is in scratch_).
  feedback_metrics previous_metrics_;
  std::uint64_t previous_step_ = 0;
  bool can_undo_ = false;
};

}  // namespace gradcomp
