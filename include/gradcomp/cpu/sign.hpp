#pragma once
// scaled_sign and blockwise_sign on exec::par: one pass over x that computes, chunk by
// chunk, the block scales (cpu/block_means.hpp) and the sign bits of the chunk's 64-bit
// words, bit-identical to detail::sign_compress.
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "../compressors/blockwise_sign.hpp"
#include "../compressors/scaled_sign.hpp"
#include "../detail/bits.hpp"
#include "../payload/sign.hpp"
#include "block_means.hpp"
#include "parallel.hpp"
#include "policy.hpp"
#include "simd.hpp"

namespace gradcomp::cpu::detail {

/// words[0, ceil(n / 64)) = the sign bits of x[0, n): bit j of word w set iff x[64w + j] < 0
/// (an ordered compare, so -0 and NaN give 0, as in the reference).
template <class T>
void pack_negative(const T* x, std::size_t n, std::uint64_t* words) {
  std::size_t i = 0;
#if GRADCOMP_CPU_SIMD
  namespace hn = simd::hn;
  const hn::ScalableTag<T> d;
  constexpr std::size_t N = hn::MaxLanes(d);
  static_assert(64 % N == 0, "a vector's lanes must tile a 64-bit word");
  const auto zero = hn::Zero(d);
  for (; i + 64 <= n; i += 64) {
    std::uint64_t word = 0;
    for (std::size_t v = 0; v < 64; v += N) {
      std::uint8_t bytes[8] = {};
      hn::StoreMaskBits(d, hn::Lt(hn::LoadU(d, x + i + v), zero), bytes);
      std::uint64_t lanes = 0;  // lane j at bit j, whatever the host's byte order
      for (std::size_t b = 0; b < (N + 7) / 8; ++b) lanes |= std::uint64_t{bytes[b]} << (8 * b);
      word |= lanes << v;
    }
    words[i / 64] = word;
  }
#endif
  for (; i < n; i += 64) {
    const std::size_t m = n - i < 64 ? n - i : 64;
    std::uint64_t word = 0;
    for (std::size_t j = 0; j < m; ++j) word |= std::uint64_t{x[i + j] < T(0)} << j;
    words[i / 64] = word;
  }
}

/// Elements per parallel chunk: a multiple of 64 (so chunks own whole sign words) and of
/// 4096 (so a long block's segments do not straddle chunks needlessly).
inline constexpr std::size_t sign_chunk = std::size_t{1} << 16;

/// detail::sign_compress(x, b, out) on exec::par (b >= 1: the compressors check it).
template <class T>
void sign_compress(const exec::par_t& policy, std::span<const T> x, std::size_t b, sign_vector<T>& out) {
  const std::size_t d = x.size();
  const block_segments layout{d, b};
  const bool short_blocks = b <= block_segments::segment;  // one segment per block
  // Every scale and word is written below, so resize (keeps capacity, no zero-filling pass
  // once out is warm) instead of the reference's reset.
  out.scales.resize(layout.blocks());
  out.negative.resize(gradcomp::detail::words_for_bits(d));
  out.dim = d;
  out.block_size = b;
  std::vector<double> sums(short_blocks ? 0 : layout.total_sums());
  T* scales = out.scales.data();
  std::uint64_t* words = out.negative.data();
  for_each_chunk(policy, d, sign_chunk, [&](std::size_t, std::size_t begin, std::size_t end) {
    if (short_blocks)
      block_scales_in(x, layout, begin, end, scales);
    else
      segment_sums_in(x, layout, begin, end, sums.data());
    pack_negative(x.data() + begin, end - begin, words + begin / 64);  // the chunk is still in cache
  });
  if (!short_blocks) scales_from_segments(x, layout, sums.data(), scales);
}

}  // namespace gradcomp::cpu::detail

namespace gradcomp::exec {

/// scaled_sign on exec::par; bit-identical to exec::seq.
template <std::floating_point T>
void compress_with(const par_t& policy, const scaled_sign&, std::span<const T> x, sign_vector<T>& out) {
  cpu::detail::sign_compress(policy, x, x.empty() ? std::size_t{1} : x.size(), out);
}

/// blockwise_sign on exec::par; bit-identical to exec::seq.
template <std::floating_point T>
void compress_with(const par_t& policy, const blockwise_sign& c, std::span<const T> x, sign_vector<T>& out) {
  c.validate();
  cpu::detail::sign_compress(policy, x, c.block_size, out);
}

}  // namespace gradcomp::exec
