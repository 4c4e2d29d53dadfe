#pragma once
// Deterministic chunked loops on oneTBB.
//
// Work is cut into fixed chunks [c * chunk, (c + 1) * chunk) that depend only on the input
// size, so whatever the thread count, the same chunk computes the same partial result;
// merging partial results in chunk order then makes the whole result independent of the
// scheduling. Small inputs (below the policy's min_parallel_size) run on the calling thread.
#include <cstddef>

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include "policy.hpp"
#include "tuning.hpp"

namespace gradcomp::cpu::inline GRADCOMP_CPU_ABI::detail {

/// Number of chunks of `chunk` elements that cover n elements.
constexpr std::size_t chunk_count(std::size_t n, std::size_t chunk) noexcept { return n == 0 ? 0 : (n - 1) / chunk + 1; }

/// How many streamed elements one element of a random-access loop is worth when n is
/// compared with the policy's min_parallel_size (tuning::parallel).
inline constexpr std::size_t random_access_weight = tuning::parallel::random_access_weight;

/// True when for_each_chunk would use the workers for n elements in chunks of `chunk`, each
/// element worth `weight` streamed ones.
constexpr bool runs_in_parallel(const exec::par_t& policy, std::size_t n, std::size_t chunk,
                                std::size_t weight = 1) noexcept {
  return chunk_count(n, chunk) > 1 && n >= policy.min_parallel_size / weight;
}

/// Calls f(c, begin, end) for every chunk c of [0, n), in parallel when n (each element
/// worth `weight` streamed elements) is large enough. Chunks are independent: f must only
/// write what chunk c owns.
template <class F>
void for_each_chunk(const exec::par_t& policy, std::size_t n, std::size_t chunk, F&& f, std::size_t weight = 1) {
  const std::size_t chunks = chunk_count(n, chunk);
  const auto run = [&](std::size_t first, std::size_t last) {
    for (std::size_t c = first; c < last; ++c) {
      const std::size_t begin = c * chunk;
      const std::size_t end = n - begin < chunk ? n : begin + chunk;
      f(c, begin, end);
    }
  };
  if (!runs_in_parallel(policy, n, chunk, weight)) {
    run(0, chunks);
    return;
  }
  tbb::parallel_for(tbb::blocked_range<std::size_t>(0, chunks),
                    [&](const tbb::blocked_range<std::size_t>& r) { run(r.begin(), r.end()); });
}

}  // namespace gradcomp::cpu::inline GRADCOMP_CPU_ABI::detail
