// Ordered stream compaction of one block, for one target: one kernel template, with the
// operation fused into the pass as a parameter.
//
// Selection works on magnitude keys (the bit pattern without the sign bit): an element is
// kept iff magnitude_key(v) >= bound, one integer compare that orders NaN above every
// finite and infinite value. Kept offsets and values are written in order to a
// compact_buffer. The operation says what the pass reads and what else it writes:
//   plain_source      reads x; writes nothing else (hard-threshold, Top-k's fallback);
//   feedback_source   reads e and g and compacts p = e + scale * g; writes e_new = p, or,
//                     with clear_kept, e_new = p + (-1) * p where p is kept (what the
//                     reference's decompress_add(-1) leaves): the fused error-feedback step.
// Each source has a vector form (load, store) and an element form (element, store_element)
// for the tail; the element form is the reference's own rule (detail/element_rules.hpp).
#if defined(GRADCOMP_CPU_SIMD_COMPACT_INL_) == defined(HWY_TARGET_TOGGLE)
#ifdef GRADCOMP_CPU_SIMD_COMPACT_INL_
#undef GRADCOMP_CPU_SIMD_COMPACT_INL_
#else
#define GRADCOMP_CPU_SIMD_COMPACT_INL_
#endif

#include <cstddef>

#include "../../detail/bits.hpp"
#include "../../detail/element_rules.hpp"
#include "../../detail/strict_fp.hpp"
#include "../kernel_types.hpp"

#if GRADCOMP_SIMD_EMIT
GRADCOMP_SIMD_NAMESPACE_BEGIN

using detail::compact_buffer;
using detail::feedback_block;
using gradcomp::detail::magnitude_key;
using gradcomp::detail::uint_of;

/// Compacts x itself.
template <class T>
struct plain_source {
  const T* x;

#if GRADCOMP_SIMD_VECTORS
  template <class D>
  HWY_INLINE hn::Vec<D> load(D d, std::size_t i) const {
    return hn::LoadU(d, x + i);
  }
  template <class D, class M>
  HWY_INLINE void store(D, std::size_t, hn::Vec<D>, M) const {}
#endif
  T element(std::size_t i) const { return x[i]; }
  void store_element(std::size_t, T, bool) const {}
};

/// Compacts p = e + scale * g, writing the new residual as it goes.
template <class T, bool ClearKept>
struct feedback_source {
  feedback_block<T> in;

#if GRADCOMP_SIMD_VECTORS
  template <class D>
  HWY_INLINE hn::Vec<D> load(D d, std::size_t i) const {
    const auto g = hn::LoadU(d, in.g + i);
    return hn::Add(hn::LoadU(d, in.e + i), in.scale == T(1) ? g : hn::Mul(hn::Set(d, in.scale), g));
  }
  template <class D, class M>
  HWY_INLINE void store(D d, std::size_t i, hn::Vec<D> p, M keep) const {
    if constexpr (ClearKept)
      hn::StoreU(hn::IfThenElse(keep, hn::Add(p, hn::Mul(hn::Set(d, T(-1)), p)), p), d, in.e_new + i);
    else
      hn::StoreU(p, d, in.e_new + i);
  }
#endif
  GRADCOMP_NO_FP_CONTRACT T element(std::size_t i) const {
    return gradcomp::detail::feedback_element(in.e[i], in.g[i], in.scale);
  }
  GRADCOMP_NO_FP_CONTRACT void store_element(std::size_t i, T p, bool kept) const {
    in.e_new[i] = ClearKept && kept ? gradcomp::detail::add_scaled(p, T(-1), p) : p;
  }
};

/// The compaction kernel: the elements v of src[0, n) (n <= tuning::compact::block) with
/// magnitude_key(v) >= bound, as (offset, v) in order into out; returns how many.
template <class T, class Source>
GRADCOMP_NO_FP_CONTRACT std::size_t compact(tag, const Source& src, std::size_t n, uint_of<T> bound,
                                            compact_buffer<T>& out) {
  GRADCOMP_NO_FP_CONTRACT_BODY
  std::size_t count = 0;
  std::size_t i = 0;
#if GRADCOMP_SIMD_VECTORS
  const hn::ScalableTag<T> d;
  const hn::RebindToSigned<decltype(d)> di;  // keys < 2^(bits-1): signed compares are exact
  const hn::RebindToUnsigned<decltype(d)> du;
  using S = hn::TFromD<decltype(di)>;
  constexpr std::size_t L = hn::MaxLanes(d);
  const auto magnitude = hn::Set(di, static_cast<S>(~uint_of<T>{0} >> 1));
  const auto below = hn::Set(di, static_cast<S>(bound));
  for (; i + L <= n; i += L) {
    const auto v = src.load(d, i);
    const auto keep = hn::Not(hn::Lt(hn::And(hn::BitCast(di, v), magnitude), below));
    const auto keep_d = hn::RebindMask(d, keep);
    src.store(d, i, v, keep_d);
    if (hn::AllFalse(di, keep)) continue;
    // Compress into a register, then store: compress-to-memory is microcoded on AMD Zen 4/5.
    hn::StoreU(hn::Compress(v, keep_d), d, out.values.data() + count);
    hn::StoreU(hn::Compress(hn::Iota(du, static_cast<uint_of<T>>(i)), hn::RebindMask(du, keep)), du,
               out.offsets.data() + count);
    count += hn::CountTrue(di, keep);
  }
#endif
  for (; i < n; ++i) {
    const T v = src.element(i);
    const bool kept = magnitude_key(v) >= bound;
    if (kept) {
      out.offsets[count] = static_cast<uint_of<T>>(i);
      out.values[count] = v;
      ++count;
    }
    src.store_element(i, v, kept);
  }
  return count;
}

/// compact() of x[0, n).
template <class T>
std::size_t compact_at_least(tag t, const T* x, std::size_t n, uint_of<T> bound, compact_buffer<T>& out) {
  return compact<T>(t, plain_source<T>{x}, n, bound, out);
}

/// The error-feedback candidates of one block: e_new = p everywhere, and the elements of p
/// whose key reaches bound (Top-k decides later which of them are sent).
template <class T>
std::size_t feedback_candidates(tag t, const feedback_block<T>& in, std::size_t n, uint_of<T> bound,
                                compact_buffer<T>& out) {
  return compact<T>(t, feedback_source<T, false>{in}, n, bound, out);
}

/// The fused error-feedback threshold step on one reduction block (n <= 4096 elements,
/// starting at a block boundary): p = e + scale * g; the elements of p whose key reaches
/// bound are sent (into out) and cleared in e_new; *norm = the block's sum of e_new^2 in the
/// reference order, summed while the block is in L1.
template <class T>
std::size_t feedback_threshold(tag t, const feedback_block<T>& in, std::size_t n, uint_of<T> bound,
                               compact_buffer<T>& out, double* norm) {
  const std::size_t kept = compact<T>(t, feedback_source<T, true>{in}, n, bound, out);
  *norm = block_sum<summand::square>(t, in.e_new, n);
  return kept;
}

GRADCOMP_SIMD_NAMESPACE_END
#endif
#endif
