#pragma once
// The largest magnitude key of a vector (detail::magnitude_key: |x| order, with +Inf and NaN
// above every finite value) as a parallel reduction. A maximum does not depend on the order
// its parts are combined in, so any chunking gives the reference's value.
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <span>

#include "../detail/bits.hpp"
#include "parallel.hpp"
#include "policy.hpp"
#include "tuning.hpp"

namespace gradcomp::cpu::inline GRADCOMP_CPU_ABI::detail {

/// max over i of magnitude_key(x[i]); 0 (the key of +-0) for an empty x.
template <class T>
gradcomp::detail::uint_of<T> max_magnitude_key(const exec::par_t& policy, std::span<const T> x) {
  using U = gradcomp::detail::uint_of<T>;
  std::atomic<U> largest{0};
  for_each_chunk(policy, x.size(), tuning::elementwise::chunk, [&](std::size_t, std::size_t begin, std::size_t end) {
    U chunk_max = 0;  // a plain integer max: the compiler vectorises it
    for (std::size_t i = begin; i < end; ++i) chunk_max = std::max(chunk_max, gradcomp::detail::magnitude_key(x[i]));
    U seen = largest.load(std::memory_order_relaxed);
    while (chunk_max > seen && !largest.compare_exchange_weak(seen, chunk_max, std::memory_order_relaxed)) {
    }
  });
  return largest.load(std::memory_order_relaxed);
}

}  // namespace gradcomp::cpu::inline GRADCOMP_CPU_ABI::detail
