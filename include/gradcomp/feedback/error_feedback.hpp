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
//
// The residual is always finite: a step whose new residual would hold NaN or Inf (a
// non-finite g, an overflowing e + scale * g, a message that decodes to Inf) is rejected
// with gc::error and changes nothing, so a trainer can skip the step (a loss-scale
// overflow) and carry on with its residual intact. docs/error-feedback.md.
#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <istream>
#include <ostream>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../aggregation.hpp"
#include "../backend.hpp"
#include "../concepts.hpp"
#include "../detail/element_rules.hpp"
#include "../detail/strict_fp.hpp"
#include "../error.hpp"
#include "../execution.hpp"
#include "../float16.hpp"
#include "checkpoint.hpp"

namespace gradcomp {

/// Where error_feedback forms the new residual (docs/error-feedback.md, "Memory").
enum class feedback_storage {
  /// 2 d values. The new residual is formed beside the old one and swapped in on success:
  /// every error leaves the state as it was, and undo() can take a step back.
  double_buffered,
  /// d values. The residual is updated in place: no undo(). Errors found before the update
  /// (sizes, scale, a non-finite gradient, the compressor's parameters) change nothing; an
  /// error inside the update (the compressor rejecting p, e + scale * g overflowing) leaves
  /// the residual cleared to zero, since its old value is gone.
  in_place,
};

/// A compressor with state of its own that can take its last compress call back (momentum,
/// ef21, error_feedback): error_feedback::undo takes the wrapped one's call back too, so a
/// step undone by a distributed scheme leaves every layer as it was.
template <class C>
concept undoable_compressor = requires(C& c, const C& cc) {
  { cc.can_undo() } -> std::convertible_to<bool>;
  c.undo();
};

namespace detail {

/// Whether c can take its last call back: a compressor without state of its own always can.
template <class C>
bool wrapped_can_undo(const C& c) noexcept {
  if constexpr (undoable_compressor<C>)
    return c.can_undo();
  else
    return true;
}

template <class C>
constexpr std::string_view compressor_name() {
  if constexpr (requires { std::string_view(C::name); })
    return C::name;
  else
    return {};
}

/// "wrapper<name>" for an adaptor around C (error_feedback<top_k>, ef21<top_k>, ...), or just
/// "wrapper" when C has no name: how the adaptors name themselves in errors and checkpoints.
template <class C>
std::string wrapped_name(std::string_view wrapper) {
  const std::string_view nm = compressor_name<C>();
  return nm.empty() ? std::string(wrapper) : std::string(wrapper) + "<" + std::string(nm) + ">";
}

/// Index of the first non-finite entry of x, or x.size().
template <class T>
std::size_t first_non_finite(std::span<const T> x) {
  for (std::size_t i = 0; i < x.size(); ++i)
    if (!std::isfinite(x[i])) return i;
  return x.size();
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
  /// The messages are C's, so they aggregate as C's do.
  static constexpr aggregation_class aggregation = aggregation_of_v<C>;

  /// Wraps c for vectors of dimension dim; the residual starts at zero.
  error_feedback(C c, std::size_t dim, feedback_storage storage = feedback_storage::double_buffered)
      : compressor_(std::move(c)), residual_(dim), storage_(storage) {
    if (storage != feedback_storage::double_buffered && storage != feedback_storage::in_place)
      detail::fail("error_feedback", "storage ", static_cast<int>(storage), " is not double_buffered or in_place");
    if (storage == feedback_storage::double_buffered) scratch_.resize(dim);
  }

  /// One error-feedback step: p = e + scale * g; m = C(p); e = p - decode(m). Returns m,
  /// which stays valid until the next successful call. On error (wrong size, non-finite
  /// scale, a non-finite new residual, a compressor that rejects p) nothing changes
  /// (in_place storage: see feedback_storage).
  template <execution_policy Policy>
  const Payload& compress(const Policy& policy, std::span<const T> g, T scale = T(1)) {
    step(policy, g, scale, message_);
    return message_;
  }

  /// The same step on a 16-bit gradient (bfloat16, float16; residual and message float32):
  /// g is widened to float32, exactly, into a buffer of dim floats kept for the next call
  /// (allocated on the first 16-bit step), so the result has the bits of the step on the
  /// widened gradient. A GPU back end fuses the widening into its kernel instead.
  template <execution_policy Policy, half_precision H>
    requires std::same_as<T, float>
  const Payload& compress(const Policy& policy, std::span<const H> g, T scale = T(1)) {
    if (g.size() != dim())
      detail::fail("error_feedback", "input size ", g.size(), " does not match the residual dimension ", dim());
    widened_.resize(dim());
    backend::run<backend::widen_hook>(policy, g, std::span<float>(widened_));
    step(policy, std::span<const T>(widened_), scale, message_);
    return message_;
  }

  /// The compressor interface: out = C(e + x), e = e + x - decode(out). out changes only
  /// on success.
  template <execution_policy Policy>
  void compress(const Policy& policy, std::span<const T> x, Payload& out) {
    step(policy, x, T(1), out);
  }

  /// The residual e: everything fed in and not yet sent.
  std::span<const T> error() const noexcept { return residual_; }
  /// The message of the last successful compress(policy, g, scale) call.
  const Payload& message() const noexcept { return message_; }
  /// The wrapped compressor.
  const C& base() const noexcept { return compressor_; }
  C& base() noexcept { return compressor_; }
  std::size_t dim() const noexcept { return residual_.size(); }
  feedback_storage storage() const noexcept { return storage_; }

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

  /// Replaces the residual by e (dim() finite values); metrics and the compressor's state are
  /// kept. For trainers that regroup their tensors (a DDP bucket rebuild moves parameters
  /// between buckets, and their residuals with them). Throws gc::error, changing nothing, if
  /// e has the wrong length or a non-finite value; afterwards there is nothing to undo.
  void assign_error(std::span<const T> e) {
    if (e.size() != dim())
      detail::fail(where().c_str(), "assign_error: got ", e.size(), " values for a residual of dimension ", dim());
    if (const std::size_t i = detail::first_non_finite(e); i < e.size())
      detail::fail(where().c_str(), "assign_error: e[", i, "] = ", e[i], " is not finite (the residual is always finite)");
    std::copy(e.begin(), e.end(), residual_.begin());
    can_undo_ = false;
  }

  /// Adds entries back into the residual, e[indices[j]] += values[j]: the part of the last
  /// message that an exchange did not deliver (sparse_exchange.hpp: a global re-selection
  /// drops entries, which stay here to be sent later). The metrics follow: elements_sent
  /// loses them, total_error takes the residual's new norm. undo() still restores the
  /// residual from before the last compress call. Indices must ascend and stay below dim();
  /// throws gc::error, changing nothing, otherwise or if a sum is not finite.
  template <std::unsigned_integral Index>
  GRADCOMP_NO_FP_CONTRACT void return_unsent(std::span<const Index> indices, std::span<const T> values) {
    GRADCOMP_NO_FP_CONTRACT_BODY
    const std::string w = where() + "::return_unsent";
    if (indices.size() != values.size())
      detail::fail(w.c_str(), indices.size(), " indices but ", values.size(), " values");
    double change = 0.0;
    for (std::size_t j = 0; j < indices.size(); ++j) {
      const auto i = static_cast<std::size_t>(indices[j]);
      if (i >= dim() || (j > 0 && indices[j] <= indices[j - 1]))
        detail::fail(w.c_str(), "index ", i, " at position ", j, " (indices must ascend and stay below ", dim(), ")");
      const T sum = residual_[i] + values[j];
      if (!std::isfinite(sum))
        detail::fail(w.c_str(), "e[", i, "] + ", values[j], " is not finite; the residual is unchanged");
      change += static_cast<double>(sum) * static_cast<double>(sum) -
                static_cast<double>(residual_[i]) * static_cast<double>(residual_[i]);
    }
    for (std::size_t j = 0; j < indices.size(); ++j) residual_[static_cast<std::size_t>(indices[j])] += values[j];
    metrics_.elements_sent -= std::min<std::uint64_t>(metrics_.elements_sent, indices.size());
    metrics_.total_error += change;
  }

  /// Whether undo() would succeed.
  bool can_undo() const noexcept { return can_undo_ && detail::wrapped_can_undo(compressor_); }

  /// Takes back the last compress call: the residual, the metrics and a seeded compressor's
  /// step return to what they were before it (the message is left as it is), and a wrapped
  /// compressor with state of its own (undoable_compressor: momentum, ef21) takes its call
  /// back too. For distributed schemes whose step fails or is skipped on another rank after
  /// this one compressed. Only with double_buffered storage, only the last call, only once,
  /// and not after a call that failed once it had begun forming the new residual (that
  /// overwrote what undo would restore); throws gc::error otherwise, changing nothing.
  void undo() {
    if (!can_undo_) {
      if (storage_ == feedback_storage::in_place)
        detail::fail("error_feedback::undo",
                     "this instance updates its residual in place and keeps nothing to undo "
                     "(construct it with feedback_storage::double_buffered)");
      detail::fail("error_feedback::undo", "there is no compress call to undo");
    }
    if constexpr (undoable_compressor<C>) {
      if (!compressor_.can_undo())
        detail::fail("error_feedback::undo", "the wrapped compressor cannot take its last call back");
      compressor_.undo();
    }
    std::swap(residual_, scratch_);  // scratch_ still holds the residual from before the call
    metrics_ = previous_metrics_;
    if constexpr (seeded_compressor<C>) compressor_.step = previous_step_;
    can_undo_ = false;
  }

  /// Writes the residual, the metrics and the compressor's step (for seeded compressors)
  /// in a versioned binary format with a checksum (feedback/checkpoint.hpp).
  void save(std::ostream& out) const {
    std::uint64_t step = 0;
    if constexpr (seeded_compressor<C>) step = compressor_.step;
    const std::vector<std::byte> bytes = detail::write_feedback_checkpoint<T>(
        detail::compressor_name<C>(), seeded_compressor<C>, step, metrics_, std::span<const T>(residual_));
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    if (!out) detail::fail("error_feedback::save", "writing ", bytes.size(), " bytes to the stream failed");
  }

  /// Restores what save() wrote. Rejects another format version, value type, compressor
  /// or dimension, truncated or corrupted data, and any field that is not in its one valid
  /// form; on error *this is unchanged.
  void load(std::istream& in) {
    const detail::feedback_checkpoint c =
        detail::read_feedback_checkpoint<T>(in, detail::compressor_name<C>(), seeded_compressor<C>, dim());
    c.copy_residual(std::span<T>(residual_));
    metrics_ = c.metrics;
    can_undo_ = false;
    if constexpr (seeded_compressor<C>) compressor_.step = c.step;
  }

 private:
  template <class Policy>
  void step(const Policy& policy, std::span<const T> g, T scale, Payload& out) {
    if (g.size() != dim())
      detail::fail("error_feedback", "input size ", g.size(), " does not match the residual dimension ", dim());
    if (!std::isfinite(scale)) detail::fail("error_feedback", "scale must be finite (got ", scale, ")");
    [[maybe_unused]] std::uint64_t step_before = 0;
    if constexpr (seeded_compressor<C>) step_before = compressor_.step;
    const auto restore_step = [&] {
      if constexpr (seeded_compressor<C>) compressor_.step = step_before;
    };
    double error = 0.0;
    if (storage_ == feedback_storage::double_buffered) {
      // The new residual goes to scratch and the message to staging, so the old state
      // survives anything below; but scratch no longer holds what undo() would restore.
      can_undo_ = false;
      try {
        error = run_step(policy, g, scale, std::span<T>(scratch_));
      } catch (...) {
        restore_step();
        throw;
      }
      if (!std::isfinite(error) && has_non_finite(scratch_)) {
        restore_step();
        undo_wrapped();
        reject_non_finite(g, scale, std::span<const T>(residual_), std::span<const T>(scratch_));
      }
    } else {
      in_place_checks(policy, g);
      try {
        error = run_step(policy, g, scale, std::span<T>(residual_));
      } catch (const error_type& e) {
        restore_step();
        lose_residual();
        throw error_type(std::string(e.what()) + lost_note);
      } catch (...) {
        restore_step();
        lose_residual();
        throw;
      }
      if (!std::isfinite(error) && has_non_finite(residual_)) {
        restore_step();
        undo_wrapped();
        const std::size_t i = detail::first_non_finite(std::span<const T>(residual_));
        lose_residual();
        detail::fail(where().c_str(), "e + scale * x is not finite at [", i,
                     "] (an overflow, or a message that decodes to a non-finite value)", lost_note);
      }
    }
    const std::size_t sent = staging_.sent_elements(), bytes = staging_.wire_bytes();
    // Commit: nothing below throws.
    using std::swap;
    swap(out, staging_);
    previous_metrics_ = metrics_;
    if (storage_ == feedback_storage::double_buffered) {
      swap(residual_, scratch_);
      if constexpr (seeded_compressor<C>) previous_step_ = step_before;
      can_undo_ = true;
    }
    ++metrics_.steps;
    metrics_.elements_sent += sent;
    metrics_.wire_bytes += bytes;
    metrics_.total_error += error;
  }

  /// After the wrapped compressor's call succeeded and the step is rejected: takes that call
  /// back, so a stateful compressor is unchanged too.
  void undo_wrapped() {
    if constexpr (undoable_compressor<C>)
      if (compressor_.can_undo()) compressor_.undo();
  }

  using error_type = gradcomp::error;
  static constexpr const char* lost_note =
      "; error_feedback (in_place storage): the residual was being overwritten and has been cleared to zero";

  /// A back end's fused kernel, or p = e + scale * g; m = C(p); e = p - decode(m); ||e||^2
  /// piece by piece (backend.hpp), into e_new and staging_. e_new may be the residual itself
  /// (in_place): every kernel reads e[i] before it writes e_new[i] and never after.
  template <class Policy>
  double run_step(const Policy& policy, std::span<const T> g, T scale, std::span<T> e_new) {
    return backend::run<backend::feedback_step_hook>(policy, compressor_, std::span<const T>(residual_), g, scale,
                                                     e_new, staging_);
  }

  /// in_place storage: what can be checked before the residual is overwritten.
  template <class Policy>
  void in_place_checks(const Policy& policy, std::span<const T> g) {
    // ||g||^2 is finite iff every g_i is (for float; a double sum of squares can also
    // overflow, hence the exact scan): one parallel read of g on a parallel back end.
    if (!std::isfinite(backend::run<backend::squared_norm_hook>(policy, g))) {
      const std::size_t i = detail::first_non_finite(g);
      if (i < g.size()) reject_input(i, g[i]);
    }
    if constexpr (requires(const C& c) { c.validate(); }) compressor_.validate();
  }

  static bool has_non_finite(std::span<const T> x) { return detail::first_non_finite(x) < x.size(); }

  /// Names the cause of a non-finite new residual and throws; e is the residual before the
  /// step (intact), e_new what the step formed.
  [[noreturn]] void reject_non_finite(std::span<const T> g, T scale, std::span<const T> e,
                                      std::span<const T> e_new) const {
    const std::size_t i = detail::first_non_finite(g);
    if (i < g.size()) reject_input(i, g[i]);
    for (std::size_t j = 0; j < g.size(); ++j) {
      const T p = detail::feedback_element(e[j], g[j], scale);
      if (!std::isfinite(p))
        detail::fail(where().c_str(), "p[", j, "] = e[", j, "] + scale * x[", j, "] = ", e[j], " + ", scale, " * ",
                     g[j], " overflows to ", p, "; error feedback rejects the step and leaves its state unchanged");
    }
    const std::size_t k = detail::first_non_finite(e_new);
    detail::fail(where().c_str(), "the new residual p - decode(m) is not finite at [", k,
                 "] (the compressor's message decodes to a non-finite value); error feedback rejects the step and "
                 "leaves its state unchanged");
  }

  [[noreturn]] void reject_input(std::size_t i, T v) const {
    detail::fail(where().c_str(), "x[", i, "] = ", v,
                 " is not finite; error feedback rejects non-finite input and leaves its state unchanged");
  }

  void lose_residual() {
    std::fill(residual_.begin(), residual_.end(), T(0));
    can_undo_ = false;
  }

  /// "error_feedback<top_k>" (the wrapped compressor's name, when it has one).
  static std::string where() { return detail::wrapped_name<C>("error_feedback"); }

  C compressor_;
  std::vector<T> residual_;
  std::vector<T> scratch_;  // double_buffered: the new residual, swapped with residual_ each step
  std::vector<T> widened_;  // a 16-bit gradient widened to T (empty until the first such step)
  feedback_storage storage_;
  Payload message_;
  Payload staging_;  // the message being formed; swapped into the caller's payload on success
  feedback_metrics metrics_;
  // What undo() restores (the residual before the last call is in scratch_).
  feedback_metrics previous_metrics_;
  std::uint64_t previous_step_ = 0;
  bool can_undo_ = false;
};

}  // namespace gradcomp
