#pragma once
// sign, scaled_sign and blockwise_sign on exec::par: one pass over x that computes, chunk by
// chunk, the block scales (cpu/block_means.hpp) and the sign bits of the chunk's 64-bit
// words, bit-identical to detail::sign_compress.
#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "../compressors/blockwise_sign.hpp"
#include "../compressors/scaled_sign.hpp"
#include "../compressors/sign.hpp"
#include "../detail/bits.hpp"
#include "../detail/reduce.hpp"
#include "../payload/sign.hpp"
#include "block_means.hpp"
#include "parallel.hpp"
#include "policy.hpp"
#include "simd.hpp"
#include "tuning.hpp"
#include "workspace.hpp"

namespace gradcomp::cpu::inline GRADCOMP_CPU_ABI::detail {

/// Elements per parallel chunk: a multiple of 64 (so chunks own whole sign words) and of
/// 4096 (so a long block's segments do not straddle chunks needlessly).
inline constexpr std::size_t sign_chunk = tuning::elementwise::chunk;
static_assert(sign_chunk % 64 == 0 && sign_chunk % gradcomp::detail::reduction_block == 0);

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
  pooled_array<double> sums(workspace_of(policy), short_blocks ? 0 : layout.total_sums());
  T* scales = out.scales.data();
  std::uint64_t* words = out.negative.data();
  for_each_chunk(policy, d, sign_chunk, [&](std::size_t, std::size_t begin, std::size_t end) {
    if (short_blocks)
      block_scales_in(x, layout, begin, end, scales);
    else
      segment_sums_in<summand::abs>(x, layout, begin, end, {sums.data()});
    simd::dispatch([&](auto tag) { pack_negative(tag, x.data() + begin, end - begin, words + begin / 64); });
  });
  if (!short_blocks) scales_from_segments(x, layout, sums.data(), scales);
}

/// The sign bits of x into out.negative, chunk by chunk (every word is written).
template <class T>
void pack_sign_bits(const exec::par_t& policy, std::span<const T> x, sign_vector<T>& out) {
  out.negative.resize(gradcomp::detail::words_for_bits(x.size()));
  std::uint64_t* words = out.negative.data();
  for_each_chunk(policy, x.size(), sign_chunk, [&](std::size_t, std::size_t begin, std::size_t end) {
    simd::dispatch([&](auto tag) { pack_negative(tag, x.data() + begin, end - begin, words + begin / 64); });
  });
}

}  // namespace gradcomp::cpu::inline GRADCOMP_CPU_ABI::detail

namespace gradcomp::exec::inline GRADCOMP_CPU_ABI {

/// scaled_sign on exec::par; bit-identical to exec::seq.
template <std::floating_point T>
void compress_with(const par_t& policy, const scaled_sign&, std::span<const T> x, sign_vector<T>& out) {
  cpu::detail::sign_compress(policy, x, x.empty() ? std::size_t{1} : x.size(), out);
}

/// sign on exec::par; bit-identical to exec::seq.
template <std::floating_point T>
void compress_with(const par_t& policy, const sign& c, std::span<const T> x, sign_vector<T>& out) {
  const T scale = c.scale_as<T>();
  out.dim = x.size();
  out.block_size = std::max<std::size_t>(x.size(), 1);
  out.scales.assign(x.empty() ? 0 : 1, scale);
  cpu::detail::pack_sign_bits(policy, x, out);
}

/// blockwise_sign on exec::par; bit-identical to exec::seq.
template <std::floating_point T>
void compress_with(const par_t& policy, const blockwise_sign& c, std::span<const T> x, sign_vector<T>& out) {
  c.validate();
  cpu::detail::sign_compress(policy, x, c.block_size, out);
}

}  // namespace gradcomp::exec::inline GRADCOMP_CPU_ABI
