#pragma once
// momentum<C>: heavy-ball or Nesterov momentum in front of a compressor, with DGC's momentum
// factor masking. Signum is momentum<sign>; DGC's momentum correction is
// momentum<error_feedback<top_k>> with masking; BytePS's momentum decorator is the Nesterov form.
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
#include "../compress.hpp"
#include "../concepts.hpp"
#include "../error.hpp"
#include "../execution.hpp"
#include "checkpoint.hpp"
#include "error_feedback.hpp"

namespace gradcomp {

/// What momentum<C> does to the velocity at the coordinates a message carries.
enum class momentum_masking {
  none,  // keep it (BytePS's momentum decorator, Signum)
  sent,  // zero it (DGC's momentum factor masking; needs a payload with indices)
};

/// What momentum<C> compresses once the velocity is updated.
enum class momentum_form {
  heavy_ball,  // the velocity u itself
  nesterov,    // the look-ahead g + beta * u (BytePS's nesterov_momentum; PyTorch's SGD with
               // nesterov = True without dampening)
};

/// Momentum before compression. Each call, with velocity u (zero at the start):
///     u = g + beta * u       (PyTorch's SGD momentum without dampening: the reference's
///                             feedback_element(g, u, beta), so every back end's kernel for
///                             the error-feedback input computes it)
///     m = C(u)               (momentum_form::heavy_ball)
///     m = C(g + beta * u)    (momentum_form::nesterov, with the new u: the same element rule)
/// and, with momentum_masking::sent, u_i = 0 for every i the message carries (Lin et al.
/// 2018, "Deep gradient compression": a coordinate just sent does not keep pushing).
///
/// - Signum (Bernstein et al. 2018) is momentum<sign>: sign(beta u + (1 - beta) g) equals the
///   sign of the undamped velocity, which is the damped one times 1 / (1 - beta).
/// - DGC's momentum correction is momentum<error_feedback<top_k>> with masking: the residual
///   accumulates the velocity, not the gradient.
/// C is any compressor, stateful ones included (error_feedback): momentum<C> is itself a
/// compressor with C's messages. A failed call (C throws, or the new velocity is not finite)
/// changes nothing. Host memory only (exec::seq, exec::par). save/load checkpoint the
/// velocity, the step count and C's state (its step if seeded, its own checkpoint if it has one).
template <class C, std::floating_point T = float, class Payload = payload_t<C, T>>
  requires compressor<C, T>
class momentum {
 public:
  using compressor_type = C;
  using value_type = T;
  using message_type = Payload;

  template <std::floating_point U>
    requires std::same_as<U, T>
  using payload_type = Payload;

  static constexpr std::string_view name = "momentum";
  /// The messages are C's, so they aggregate as C's do.
  static constexpr aggregation_class aggregation = aggregation_of_v<C>;

  /// Wraps c for vectors of dimension dim: velocity zero, beta in [0, 1).
  momentum(C c, std::size_t dim, double beta, momentum_masking masking = momentum_masking::none,
           momentum_form form = momentum_form::heavy_ball)
      : compressor_(std::move(c)),
        velocity_(dim),
        scratch_(dim),
        look_ahead_(form == momentum_form::nesterov ? dim : 0),
        beta_(static_cast<T>(beta)),
        masking_(masking),
        form_(form) {
    if (!(beta >= 0.0 && beta < 1.0)) detail::fail("momentum", "beta must be in [0, 1) (got ", beta, ")");
    if (masking != momentum_masking::none && masking != momentum_masking::sent)
      detail::fail("momentum", "masking ", static_cast<int>(masking), " is not none or sent");
    if (form != momentum_form::heavy_ball && form != momentum_form::nesterov)
      detail::fail("momentum", "form ", static_cast<int>(form), " is not heavy_ball or nesterov");
    if (masking == momentum_masking::sent && !carries_indices)
      detail::fail("momentum", "momentum_masking::sent needs a payload with indices (a sparsifier's); this "
                               "compressor's messages carry every coordinate");
  }

  /// One step: u = g + beta * u, then C(u) (or C(g + beta * u), Nesterov). Returns the message,
  /// valid until the next call.
  template <execution_policy Policy>
  const Payload& compress(const Policy& policy, std::span<const T> g) {
    step(policy, g, message_);
    return message_;
  }

  /// The compressor interface: out = C(u) (or C(x + beta * u)) after u = x + beta * u. out
  /// changes only on success.
  template <execution_policy Policy>
  void compress(const Policy& policy, std::span<const T> x, Payload& out) {
    step(policy, x, out);
  }

  /// The velocity u.
  std::span<const T> velocity() const noexcept { return velocity_; }
  /// The message of the last successful compress(policy, g) call.
  const Payload& message() const noexcept { return message_; }
  /// The wrapped compressor (an error_feedback's residual and metrics are reached here).
  const C& base() const noexcept { return compressor_; }
  C& base() noexcept { return compressor_; }
  std::size_t dim() const noexcept { return velocity_.size(); }
  T beta() const noexcept { return beta_; }
  momentum_masking masking() const noexcept { return masking_; }
  momentum_form form() const noexcept { return form_; }

  /// Successful compress calls so far.
  std::uint64_t steps() const noexcept { return steps_; }

  /// Zeroes the velocity and the step count (the wrapped compressor is left as it is).
  void reset() {
    std::fill(velocity_.begin(), velocity_.end(), T(0));
    steps_ = 0;
    can_undo_ = false;
  }

  /// Whether undo() would succeed.
  bool can_undo() const noexcept { return can_undo_ && detail::wrapped_can_undo(compressor_); }

  /// Takes back the last successful compress call: the velocity (before masking), the step
  /// count, a seeded C's step, and C's own call when C can take it back (error_feedback,
  /// ef21). For error_feedback::undo, when a distributed step is undone. Only the last call,
  /// only once; throws gc::error otherwise, changing nothing.
  void undo() {
    if (!can_undo()) detail::fail(where().c_str(), "undo: there is no compress call to take back");
    if constexpr (undoable_compressor<C>) compressor_.undo();
    if constexpr (seeded_compressor<C>) compressor_.step = previous_step_;
    std::swap(velocity_, scratch_);  // scratch_ still holds the velocity from before the call
    --steps_;
    can_undo_ = false;
  }

  /// Writes the velocity, the step count and a seeded C's step in error feedback's checkpoint
  /// format (feedback/checkpoint.hpp) under the name "momentum<C>", followed by C's own
  /// checkpoint when C has one (error_feedback, ef21).
  void save(std::ostream& out) const {
    std::uint64_t step = 0;
    if constexpr (seeded_compressor<C>) step = compressor_.step;
    feedback_metrics m;
    m.steps = steps_;
    const std::vector<std::byte> bytes =
        detail::write_feedback_checkpoint<T>(where(), seeded_compressor<C>, step, m, std::span<const T>(velocity_));
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    if (!out) detail::fail("momentum::save", "writing ", bytes.size(), " bytes to the stream failed");
    if constexpr (requires(std::ostream& o) { compressor_.save(o); }) compressor_.save(out);
  }

  /// Restores what save() wrote; rejects another compressor, dimension or value type, and
  /// anything error_feedback::load rejects. On error *this (C included) is unchanged.
  void load(std::istream& in) {
    const detail::feedback_checkpoint c = detail::read_feedback_checkpoint<T>(in, where(), seeded_compressor<C>, dim());
    if (c.metrics.elements_sent != 0 || c.metrics.wire_bytes != 0 || c.metrics.total_error != 0.0)
      detail::fail("momentum::load", "a momentum checkpoint's elements, bytes and error fields must be 0");
    if constexpr (requires(std::istream& i) { compressor_.load(i); }) compressor_.load(in);  // may throw: nothing changed yet
    c.copy_residual(std::span<T>(velocity_));
    steps_ = c.metrics.steps;
    can_undo_ = false;
    if constexpr (seeded_compressor<C>) compressor_.step = c.step;
  }

 private:
  static constexpr bool carries_indices = requires(const Payload& p) { p.indices[0]; };

  /// "momentum<top_k>" (the wrapped compressor's name, when it has one).
  static std::string where() { return detail::wrapped_name<C>("momentum"); }

  template <class Policy>
  void step(const Policy& policy, std::span<const T> g, Payload& out) {
    if (g.size() != dim())
      detail::fail("momentum", "input size ", g.size(), " does not match the velocity dimension ", dim());
    const std::span<T> u_new(scratch_);
    can_undo_ = false;  // scratch_ no longer holds the velocity undo() would restore
    [[maybe_unused]] std::uint64_t step_before = 0;
    if constexpr (seeded_compressor<C>) step_before = compressor_.step;
    backend::run<backend::feedback_input_hook>(policy, g, std::span<const T>(velocity_), beta_, u_new);
    // A non-finite velocity would stay so for ever; the norm finds one in parallel.
    if (!std::isfinite(backend::run<backend::squared_norm_hook>(policy, std::span<const T>(u_new))))
      for (std::size_t i = 0; i < u_new.size(); ++i)
        if (!std::isfinite(u_new[i]))
          detail::fail("momentum", "the new velocity g + beta * u is not finite at [", i, "] (g = ", g[i],
                       ", u = ", velocity_[i], ")");
    std::span<const T> input(u_new);
    if (form_ == momentum_form::nesterov) {
      const std::span<T> p(look_ahead_);
      backend::run<backend::feedback_input_hook>(policy, g, std::span<const T>(u_new), beta_, p);
      if (!std::isfinite(backend::run<backend::squared_norm_hook>(policy, std::span<const T>(p))))
        for (std::size_t i = 0; i < p.size(); ++i)
          if (!std::isfinite(p[i]))
            detail::fail("momentum", "the Nesterov look-ahead g + beta * u is not finite at [", i, "] (g = ", g[i],
                         ", u = ", u_new[i], ")");
      input = p;
    }
    gradcomp::compress(policy, compressor_, input, staging_);
    // Commit: nothing below throws.
    using std::swap;
    swap(velocity_, scratch_);
    swap(out, staging_);
    ++steps_;
    if constexpr (seeded_compressor<C>) previous_step_ = step_before;
    can_undo_ = true;
    if constexpr (carries_indices)
      if (masking_ == momentum_masking::sent)
        for (const auto i : out.indices) velocity_[static_cast<std::size_t>(i)] = T(0);
  }

  C compressor_;
  std::vector<T> velocity_, scratch_;
  std::vector<T> look_ahead_;  // g + beta * u (Nesterov only)
  T beta_;
  momentum_masking masking_;
  momentum_form form_;
  std::uint64_t steps_ = 0;
  std::uint64_t previous_step_ = 0;  // a seeded C's step before the last call (undo)
  bool can_undo_ = false;
  Payload message_{}, staging_{};
};

}  // namespace gradcomp
