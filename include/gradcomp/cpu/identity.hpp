#pragma once
// identity on exec::par: a parallel copy of x into the message.
#include <algorithm>
#include <concepts>
#include <cstddef>
#include <span>

#include "../compressors/identity.hpp"
#include "../payload/dense.hpp"
#include "parallel.hpp"
#include "policy.hpp"
#include "tuning.hpp"

namespace gradcomp::exec::inline GRADCOMP_CPU_ABI {

/// identity on exec::par: out.values = x, bit for bit.
template <std::floating_point T>
void compress_with(const par_t& policy, const identity&, std::span<const T> x, dense_vector<T>& out) {
  // A message of the wrong size would be zero-filled by resize on one thread before the
  // parallel copy; assign allocates and copies in one sequential pass, which is cheaper.
  // Reused messages (error feedback, training loops) have the right size already.
  if (out.values.size() != x.size()) {
    out.values.assign(x.begin(), x.end());
    return;
  }
  cpu::detail::for_each_chunk(policy, x.size(), cpu::tuning::elementwise::chunk,
                              [&](std::size_t, std::size_t begin, std::size_t end) {
                                std::copy(x.data() + begin, x.data() + end, out.values.data() + begin);
                              });
}

}  // namespace gradcomp::exec::inline GRADCOMP_CPU_ABI
