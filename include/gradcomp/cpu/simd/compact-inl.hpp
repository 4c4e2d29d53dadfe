// Ordered stream compaction of one block, for one target: one kernel template, with the
// operation fused into the pass as a parameter.
//
// Selection works on magnitude keys (the bit pattern without the sign bit): an element is
// kept iff magnitude_key(v) >= bound, one integer compare that orders NaN above every
// finite and infinite value. Kept offsets and values are written in order to a
// compact_buffer. The operation says what the pass reads and what else it writes:
//   plain_source      reads x; writes nothing else (hard-threshold, Top-k's fallback);
//   feedback_source   reads e and g and compacts p = e + scale * g; writes e_new = p, or,
//                     with ClearKept, e_new = p + (-1) * p where p is kept (what the
//                     reference's decompress_add(-1) leaves): the fused error-feedback step;
//   feedback_norm_source  the same with ClearKept, and sums e_new^2 in the reference tree
//                     from the registers it stores, group by group (64 elements = 8 rows),
//                     so the step reads and writes each element once.
// Each source has a vector form (load, store) and an element form (element, store_element)
// for the tail; the element form is the reference's own rule (detail/element_rules.hpp).
// The kernel walks a block in groups of 64 elements (whole vectors on every target), telling
// the source where each vector sits in its group, and that a group ended.
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
  HWY_INLINE void store(D, std::size_t, std::size_t, hn::Vec<D>, M) const {}
#endif
  void end_group() const {}
  T element(std::size_t i) const { return x[i]; }
  void store_element(std::size_t, T, bool) const {}
  void finish(std::size_t, std::size_t) const {}
};

/// Compacts p = e + scale * g, writing the new residual as it goes. UnitScale: scale is 1,
/// and p = e + g (decided once per block, not per vector).
template <class T, bool ClearKept, bool UnitScale = false>
struct feedback_source {
  feedback_block<T> in;

#if GRADCOMP_SIMD_VECTORS
  template <class D>
  HWY_INLINE hn::Vec<D> load(D d, std::size_t i) const {
    const auto g = hn::LoadU(d, in.g + i);
    if constexpr (UnitScale)
      return hn::Add(hn::LoadU(d, in.e + i), g);
    else
      return hn::Add(hn::LoadU(d, in.e + i), hn::Mul(hn::Set(d, in.scale), g));
  }
  /// Stores e_new for the vector at i (slot: its offset in the group) and returns it.
  template <class D, class M>
  HWY_INLINE hn::Vec<D> store(D d, std::size_t i, std::size_t, hn::Vec<D> p, M keep) const {
    hn::Vec<D> e_new = p;
    if constexpr (ClearKept) e_new = hn::IfThenElse(keep, hn::Add(p, hn::Mul(hn::Set(d, T(-1)), p)), p);
    hn::StoreU(e_new, d, in.e_new + i);
    return e_new;
  }
#endif
  void end_group() const {}
  GRADCOMP_NO_FP_CONTRACT T element(std::size_t i) const {
    return gradcomp::detail::feedback_element(in.e[i], in.g[i], in.scale);
  }
  GRADCOMP_NO_FP_CONTRACT void store_element(std::size_t i, T p, bool kept) const {
    in.e_new[i] = ClearKept && kept ? gradcomp::detail::add_scaled(p, T(-1), p) : p;
  }
  void finish(std::size_t, std::size_t) const {}
};

/// feedback_source<T, true, UnitScale> that also sums e_new^2 over the block in the reference tree:
/// the squares of each full group's stored registers form its 8 rows, the group tree goes
/// to the counter; a last, partial group is summed from memory (zero-padded). finish()
/// writes the block's sum to *norm.
template <class T, bool UnitScale>
struct feedback_norm_source : feedback_source<T, true, UnitScale> {
  using base = feedback_source<T, true, UnitScale>;
  feedback_norm_source(const feedback_block<T>& in, double* out) : base{in}, norm(out) {}

  double* norm;
  group_counter groups;
  row rows[8];

#if GRADCOMP_SIMD_VECTORS
  template <class D, class M>
  HWY_INLINE hn::Vec<D> store(D d, std::size_t i, std::size_t slot, hn::Vec<D> p, M keep) {
    const hn::Vec<D> e_new = base::store(d, i, slot, p, keep);
    if (slot >= group_elements) return e_new;  // not in a full group
    // The vector's elements slot .. slot + L - 1 are consecutive double vectors of the rows.
    const row_tag dd;
    if constexpr (sizeof(T) == 4) {
      const hn::Half<D> dh;
      const auto lo = hn::PromoteTo(dd, hn::LowerHalf(dh, e_new));
      const auto hi = hn::PromoteTo(dd, hn::UpperHalf(dh, e_new));
      const std::size_t v = slot / row_lanes;  // double vector index in the group
      rows[v / row_vectors].v[v % row_vectors] = hn::Mul(lo, lo);
      rows[(v + 1) / row_vectors].v[(v + 1) % row_vectors] = hn::Mul(hi, hi);
    } else {
      const std::size_t v = slot / row_lanes;
      rows[v / row_vectors].v[v % row_vectors] = hn::Mul(e_new, e_new);
    }
    return e_new;
  }
  GRADCOMP_NO_FP_CONTRACT void end_group() {
    GRADCOMP_NO_FP_CONTRACT_BODY
    groups.push(add(add(add(rows[0], rows[1]), add(rows[2], rows[3])), add(add(rows[4], rows[5]), add(rows[6], rows[7]))));
  }
#else
  GRADCOMP_NO_FP_CONTRACT void end_group() {
    GRADCOMP_NO_FP_CONTRACT_BODY
    groups.push(group_tree<summand::square>(this->in.e_new + groups.size() * group_elements));
  }
#endif
  /// After the kernel: the partial last group [full_end, n), if any, from memory; then the
  /// block's sum.
  void finish(std::size_t full_end, std::size_t n) {
    if (full_end < n) {
      T padded[group_elements] = {};
      for (std::size_t j = full_end; j < n; ++j) padded[j - full_end] = this->in.e_new[j];
      groups.push(group_tree<summand::square>(padded));
    }
    *norm = groups.total();
  }
};

/// The compaction kernel: the elements v of src[0, n) (n <= tuning::compact::block) with
/// magnitude_key(v) >= bound, as (offset, v) in order into out; returns how many. The source
/// is taken by value: a local object whose pointers the compiler keeps in registers.
template <class T, class Source>
GRADCOMP_NO_FP_CONTRACT std::size_t compact(tag, Source src, std::size_t n, uint_of<T> bound,
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
  // key >= bound as key > bound - 1 (one compare, no negation); bound - 1 >= -1 and keys >= 0.
  const auto above = hn::Set(di, static_cast<S>(static_cast<S>(bound) - 1));
  static_assert(group_elements % L == 0, "a group is whole vectors");
  const auto lane = hn::Iota(du, 0);  // offsets are lane + at: a broadcast and an add, no stack
  const auto step = [&](std::size_t at, std::size_t slot) HWY_ATTR {
    const auto v = src.load(d, at);
    const auto keep = hn::Gt(hn::And(hn::BitCast(di, v), magnitude), above);
    const auto keep_d = hn::RebindMask(d, keep);
    src.store(d, at, slot, v, keep_d);
    if (hn::AllFalse(di, keep)) return;
    // Compress into a register, then store: compress-to-memory is microcoded on AMD Zen 4/5.
    hn::StoreU(hn::Compress(v, keep_d), d, out.values.data() + count);
    hn::StoreU(hn::Compress(hn::Add(lane, hn::Set(du, static_cast<uint_of<T>>(at))), hn::RebindMask(du, keep)), du,
               out.offsets.data() + count);
    count += hn::CountTrue(di, keep);
  };
  for (; i + group_elements <= n; i += group_elements) {
    for (std::size_t slot = 0; slot < group_elements; slot += L) step(i + slot, slot);
    src.end_group();
  }
  const std::size_t full_end = i;
  for (; i + L <= n; i += L) step(i, group_elements);  // the last, partial group
#else
  for (; i + group_elements <= n; i += group_elements) {
    for (std::size_t j = i; j < i + group_elements; ++j) {
      const T v = src.element(j);
      const bool kept = magnitude_key(v) >= bound;
      if (kept) {
        out.offsets[count] = static_cast<uint_of<T>>(j);
        out.values[count] = v;
        ++count;
      }
      src.store_element(j, v, kept);
    }
    src.end_group();
  }
  const std::size_t full_end = i;
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
  src.finish(full_end, n);
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
  if (in.scale == T(1)) return compact<T>(t, feedback_source<T, false, true>{in}, n, bound, out);
  return compact<T>(t, feedback_source<T, false, false>{in}, n, bound, out);
}

/// The fused error-feedback threshold step on one reduction block (n <= 4096 elements,
/// starting at a block boundary): p = e + scale * g; the elements of p whose key reaches
/// bound are sent (into out) and cleared in e_new; *norm = the block's sum of e_new^2 in the
/// reference order, summed from the registers as e_new is written.
template <class T>
std::size_t feedback_threshold(tag t, const feedback_block<T>& in, std::size_t n, uint_of<T> bound,
                               compact_buffer<T>& out, double* norm) {
  if (in.scale == T(1)) return compact<T>(t, feedback_norm_source<T, true>(in, norm), n, bound, out);
  return compact<T>(t, feedback_norm_source<T, false>(in, norm), n, bound, out);
}

GRADCOMP_SIMD_NAMESPACE_END
#endif
#endif
