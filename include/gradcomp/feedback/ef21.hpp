#pragma once
// ef21<C>: EF21 (Richtarik, Sokolov and Fatkhullin 2021, "EF21: a new, simpler, theoretically
// better, and practically faster error feedback"), the alternative to classic error feedback.
//
// Each worker keeps an estimate h of its (scaled) gradient, zero at the start, and each call
// computes
//     m = C(scale * g - h)     (what is sent: the change of the estimate, compressed)
//     h = h + decode(m)        (the estimate moves by exactly what the receivers add)
// Receivers keep the mean of the workers' estimates the same way (H += mean_j decode(m_j))
// and step with H. Classic error feedback compresses the accumulated error e + scale * g and
// keeps what was not sent; EF21 compresses the distance to the estimate and keeps the
// estimate, so its state never grows with the step count, and with a delta-contraction its
// error ||scale * g - h||^2 shrinks geometrically while the gradient settles (the paper's
// Lyapunov term; the total of it is metrics().total_error).
//
// Its state and checkpoint are error feedback's: a d-vector (the estimate), the metrics and
// a seeded compressor's step, in feedback/checkpoint.hpp's format under the name
// "ef21<C>", so that neither kind of checkpoint loads into the other. The estimate is always
// finite: a step that would make it (or its input) non-finite throws and changes nothing.
#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <istream>
#include <ostream>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "../aggregation.hpp"
#include "../backend.hpp"
#include "../concepts.hpp"
#include "../error.hpp"
#include "../execution.hpp"
#include "checkpoint.hpp"
#include "error_feedback.hpp"

namespace gradcomp {

template <class C, std::floating_point T = float, class Payload = payload_t<C, T>>
  requires compressor<C, T>
class ef21 {
 public:
  using compressor_type = C;
  using value_type = T;
  using message_type = Payload;

  template <std::floating_point U>
    requires std::same_as<U, T>
  using payload_type = Payload;

  static constexpr std::string_view name = "ef21";
  /// The messages are C's, so they aggregate as C's do.
  static constexpr aggregation_class aggregation = aggregation_of_v<C>;

  /// Wraps c for vectors of dimension dim; the estimate starts at zero.
  ef21(C c, std::size_t dim) : compressor_(std::move(c)), minus_h_(dim), scratch_(dim) {}

  /// One EF21 step: m = C(scale * g - h); h += decode(m). Returns m, valid until the next
  /// successful call. On error (a wrong size, a non-finite scale or g, an estimate that
  /// would overflow, the compressor rejecting its input) nothing changes.
  template <execution_policy Policy>
  const Payload& compress(const Policy& policy, std::span<const T> g, T scale = T(1)) {
    step(policy, g, scale, message_);
    return message_;
  }

  /// The compressor interface: out = C(x - h); h += decode(out). out changes only on success.
  template <execution_policy Policy>
  void compress(const Policy& policy, std::span<const T> x, Payload& out) {
    step(policy, x, T(1), out);
  }

  /// The estimate h (a copy: the state is kept negated, -h, so that scale * g - h is the
  /// error-feedback input -h + scale * g, computed by every back end's kernel for it).
  std::vector<T> estimate() const {
    std::vector<T> h(dim());
    std::transform(minus_h_.begin(), minus_h_.end(), h.begin(), negated);
    return h;
  }
  /// The message of the last successful compress(policy, g, scale) call.
  const Payload& message() const noexcept { return message_; }
  /// The wrapped compressor.
  const C& base() const noexcept { return compressor_; }
  C& base() noexcept { return compressor_; }
  std::size_t dim() const noexcept { return minus_h_.size(); }

  /// steps, elements and bytes sent, and total_error: the sum over steps of
  /// ||scale * g - h||^2 after the step (EF21's compression error).
  const feedback_metrics& metrics() const noexcept { return metrics_; }
  /// Sent elements over steps * d.
  double average_density() const noexcept {
    if (metrics_.steps == 0 || dim() == 0) return 0.0;
    return static_cast<double>(metrics_.elements_sent) /
           (static_cast<double>(metrics_.steps) * static_cast<double>(dim()));
  }

  /// Zeroes the estimate and the metrics (the compressor's own state is kept).
  void reset() {
    std::fill(minus_h_.begin(), minus_h_.end(), T(0));
    metrics_ = {};
    can_undo_ = false;
  }

  /// Whether undo() would succeed.
  bool can_undo() const noexcept { return can_undo_ && detail::wrapped_can_undo(compressor_); }

  /// Takes back the last successful compress call: the estimate, the metrics, a seeded C's
  /// step, and C's own call when C can take it back. For distributed schemes whose step
  /// fails or is skipped on another rank after this one compressed (error_feedback::undo
  /// calls it). Only the last call, only once; throws gc::error otherwise, changing nothing.
  void undo() {
    if (!can_undo()) detail::fail(where().c_str(), "undo: there is no compress call to take back");
    if constexpr (undoable_compressor<C>) compressor_.undo();
    std::swap(minus_h_, scratch_);  // scratch_ still holds -h from before the call
    metrics_ = previous_metrics_;
    if constexpr (seeded_compressor<C>) compressor_.step = previous_step_;
    can_undo_ = false;
  }

  /// Replaces the estimate by h (dim() finite values), for example with the first gradient
  /// sent uncompressed (the paper's h^0 = g^0 option). Throws gc::error, changing nothing, if
  /// h has the wrong length or a non-finite value.
  void assign_estimate(std::span<const T> h) {
    if (h.size() != dim())
      detail::fail(where().c_str(), "assign_estimate: got ", h.size(), " values for an estimate of dimension ", dim());
    if (const std::size_t i = detail::first_non_finite(h); i < h.size())
      detail::fail(where().c_str(), "assign_estimate: h[", i, "] = ", h[i], " is not finite");
    std::transform(h.begin(), h.end(), minus_h_.begin(), negated);
    can_undo_ = false;
  }

  /// Writes the estimate, the metrics and the compressor's step (for seeded compressors) in
  /// error feedback's checkpoint format (feedback/checkpoint.hpp), named "ef21<C>".
  void save(std::ostream& out) const {
    std::uint64_t step = 0;
    if constexpr (seeded_compressor<C>) step = compressor_.step;
    const std::vector<T> h = estimate();
    const std::vector<std::byte> bytes =
        detail::write_feedback_checkpoint<T>(where(), seeded_compressor<C>, step, metrics_, std::span<const T>(h));
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    if (!out) detail::fail("ef21::save", "writing ", bytes.size(), " bytes to the stream failed");
  }

  /// Restores what save() wrote; rejects what error_feedback::load rejects, and a checkpoint
  /// of another kind (an error_feedback's). On error *this is unchanged.
  void load(std::istream& in) {
    const detail::feedback_checkpoint c = detail::read_feedback_checkpoint<T>(in, where(), seeded_compressor<C>, dim());
    c.copy_residual(std::span<T>(scratch_));
    std::transform(scratch_.begin(), scratch_.end(), minus_h_.begin(), negated);
    metrics_ = c.metrics;
    can_undo_ = false;
    if constexpr (seeded_compressor<C>) compressor_.step = c.step;
  }

 private:
  /// -v, exactly, except that zero is +0 either way: h and -h hold the same values, and an
  /// estimate that is 0 reads as +0 as the sum h + decode(m) from +0 would.
  static T negated(T v) noexcept { return T(0) - v; }

  template <class Policy>
  void step(const Policy& policy, std::span<const T> g, T scale, Payload& out) {
    if (g.size() != dim())
      detail::fail(where().c_str(), "input size ", g.size(), " does not match the estimate dimension ", dim());
    if (!std::isfinite(scale)) detail::fail(where().c_str(), "scale must be finite (got ", scale, ")");
    [[maybe_unused]] std::uint64_t step_before = 0;
    if constexpr (seeded_compressor<C>) step_before = compressor_.step;
    can_undo_ = false;  // scratch_ is about to be overwritten
    // After C's call succeeded: restore a seeded C's step, take a stateful C's call back, throw.
    const auto fail_restoring_step = [&](auto&&... what) {
      if constexpr (seeded_compressor<C>) compressor_.step = step_before;
      if constexpr (undoable_compressor<C>)
        if (compressor_.can_undo()) compressor_.undo();
      detail::fail(where().c_str(), what...);
    };
    // The error-feedback step on e = -h: scratch = (scale * g - h) - decode(m), m = C(scale * g - h).
    double error = 0.0;
    try {
      error = backend::run<backend::feedback_step_hook>(policy, compressor_, std::span<const T>(minus_h_), g, scale,
                                                         std::span<T>(scratch_), staging_);
    } catch (...) {
      if constexpr (seeded_compressor<C>) compressor_.step = step_before;
      throw;
    }
    if (!std::isfinite(error)) {
      if (const std::size_t i = detail::first_non_finite(g); i < g.size())
        fail_restoring_step("x[", i, "] = ", g[i], " is not finite; EF21 rejects non-finite input and leaves its state "
                            "unchanged");
      if (detail::first_non_finite(std::span<const T>(scratch_)) < dim())
        fail_restoring_step("scale * x - h overflows, or the message decodes to a non-finite value; EF21 rejects the "
                            "step and leaves its state unchanged");
    }
    // -h_new = -h - decode(m), formed beside -h.
    std::copy(minus_h_.begin(), minus_h_.end(), scratch_.begin());
    backend::run<backend::decompress_add_hook>(policy, std::as_const(staging_), std::span<T>(scratch_), T(-1));
    if (!std::isfinite(backend::run<backend::squared_norm_hook>(policy, std::span<const T>(scratch_))) &&
        detail::first_non_finite(std::span<const T>(scratch_)) < dim())
      fail_restoring_step("the new estimate h + decode(m) is not finite at [",
                          detail::first_non_finite(std::span<const T>(scratch_)),
                          "]; EF21 rejects the step and leaves its state unchanged");
    const std::size_t sent = staging_.sent_elements(), bytes = staging_.wire_bytes();
    // Commit: nothing below throws.
    using std::swap;
    swap(minus_h_, scratch_);
    swap(out, staging_);
    previous_metrics_ = metrics_;
    if constexpr (seeded_compressor<C>) previous_step_ = step_before;
    can_undo_ = true;
    ++metrics_.steps;
    metrics_.elements_sent += sent;
    metrics_.wire_bytes += bytes;
    metrics_.total_error += error;
  }

  /// "ef21<top_k>" (the wrapped compressor's name, when it has one): messages and the name
  /// in the checkpoint.
  static std::string where() { return detail::wrapped_name<C>("ef21"); }

  C compressor_;
  std::vector<T> minus_h_;  // -h: the estimate, negated
  std::vector<T> scratch_;  // the step's p - decode(m), then the new -h
  Payload message_{}, staging_{};
  feedback_metrics metrics_;
  // What undo() restores (the estimate before the last call is in scratch_).
  feedback_metrics previous_metrics_;
  std::uint64_t previous_step_ = 0;
  bool can_undo_ = false;
};

namespace detail {

/// Whether C is an ef21<...> (ef_sgd keeps the receivers' estimate for it).
template <class C>
inline constexpr bool is_ef21 = false;
template <class C, class T, class P>
inline constexpr bool is_ef21<ef21<C, T, P>> = true;

}  // namespace detail

}  // namespace gradcomp
