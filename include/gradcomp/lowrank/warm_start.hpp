#pragma once
// PowerSGD's Q (cols x r per compressed tensor): its seeded initial value, and the fresh draw
// of a column that became zero.
//
// Draw (seed, tensor, step, k) = 2 u - 1, u = counter_stream(mix64(seed) ^ tensor, step)
// .uniform(k): i.i.d. uniform on [-1, 1) (uniform rather than normal: it is exact integer
// arithmetic, the same bits on every machine, with no log or cos from the C library; the
// power iteration only needs a start that is not orthogonal to the top singular vectors,
// which any continuous distribution gives with probability 1). Entry (i, j) of Q, drawn at
// step t, is draw(seed, tensor, t, i * r + j).
//
// Q starts as step 0's draw. After each step Q is kept (the warm start: one power iteration
// per step continues from the last). A column of Q that is exactly zero at the start of step
// t (its column of P was degenerate, orthogonalise.hpp, or M^T P had a zero column) would stay
// zero forever, since P = M Q then has a zero column too; it is replaced by step t's draw.
// Q is identical on every rank (it is all-reduced), and so is t, so every rank draws the same.
//
// q_stream and q_draw are GRADCOMP_HD: the CUDA back end (cuda/lowrank_warm_start.cuh) redraws
// zero columns on the device with these very functions, so its draws are the host's bits.
#include <cstddef>
#include <cstdint>
#include <span>

#include "../detail/host_device.hpp"
#include "../detail/random.hpp"

namespace gradcomp::lowrank {

/// The stream of tensor `tensor`'s draws at step `step`.
GRADCOMP_HD inline detail::counter_stream q_stream(std::uint64_t seed, std::uint64_t tensor, std::uint64_t step) noexcept {
  return detail::counter_stream(detail::mix64(seed) ^ tensor, step);
}

/// Draw k of a stream, uniform on [-1, 1) (2u - 1 is exact in double; one rounding to T).
template <class T>
GRADCOMP_HD T q_draw(const detail::counter_stream& stream, std::uint64_t k) noexcept {
  return static_cast<T>(2.0 * stream.uniform(k) - 1.0);
}

/// q (cols x r) = step 0's draw.
template <class T>
void initial_q(std::uint64_t seed, std::uint64_t tensor, std::span<T> q) noexcept {
  const detail::counter_stream stream = q_stream(seed, tensor, 0);
  for (std::size_t k = 0; k < q.size(); ++k) q[k] = q_draw<T>(stream, k);
}

/// Replaces every all-zero column of q (cols x r) with step `step`'s draw. Returns how many.
template <class T>
std::size_t redraw_zero_columns(std::uint64_t seed, std::uint64_t tensor, std::uint64_t step, std::span<T> q,
                                std::size_t cols, std::size_t r) noexcept {
  std::size_t redrawn = 0;
  for (std::size_t j = 0; j < r; ++j) {
    bool zero = true;
    for (std::size_t i = 0; i < cols && zero; ++i) zero = q[i * r + j] == T(0);
    if (!zero) continue;
    const detail::counter_stream stream = q_stream(seed, tensor, step);
    for (std::size_t i = 0; i < cols; ++i) q[i * r + j] = q_draw<T>(stream, i * r + j);
    ++redrawn;
  }
  return redrawn;
}

}  // namespace gradcomp::lowrank
