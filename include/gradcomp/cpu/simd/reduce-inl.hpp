// Reduction-block sums in the reference order of detail/reduce.hpp, for one target.
//
// A block is 512 rows of 8 lanes; each lane is summed over the rows by a pairwise tree, and
// the lanes are folded. Here a row is one register of 8 doubles (AVX-512), two (AVX2), four
// (SSE4) or an array of 8 (scalar), so the row tree is vertical adds of registers. Rows are
// taken 8 at a time (64 elements, a "group": an aligned subtree, summed in registers), and
// groups enter a binary counter whose level j holds the pending left subtree of 2^j groups;
// at the end the pending subtrees are added from the top level down, each with the zero
// subtrees to its right skipped (exact: every summand is >= 0 or NaN).
#if defined(GRADCOMP_CPU_SIMD_REDUCE_INL_) == defined(HWY_TARGET_TOGGLE)
#ifdef GRADCOMP_CPU_SIMD_REDUCE_INL_
#undef GRADCOMP_CPU_SIMD_REDUCE_INL_
#else
#define GRADCOMP_CPU_SIMD_REDUCE_INL_
#endif

#include <array>
#include <cmath>
#include <cstddef>
#include <cstring>

#include "../../detail/reduce.hpp"
#include "../../detail/strict_fp.hpp"
#include "../kernel_types.hpp"

#if GRADCOMP_SIMD_EMIT
GRADCOMP_SIMD_NAMESPACE_BEGIN

using detail::summand;

/// Elements per group: 8 rows of the reduction block.
inline constexpr std::size_t group_elements = 64;

#if GRADCOMP_SIMD_VECTORS
using row_tag = hn::CappedTag<double, 8>;
inline constexpr std::size_t row_lanes = hn::MaxLanes(row_tag());
inline constexpr std::size_t row_vectors = 8 / row_lanes;
static_assert(row_lanes * row_vectors == 8, "a row of 8 doubles must tile into whole vectors");

/// One row of the block: lanes 0..7 in row_vectors registers.
struct row {
  hn::Vec<row_tag> v[row_vectors];
};

HWY_INLINE row zero_row() {
  row r;
  for (auto& v : r.v) v = hn::Zero(row_tag());
  return r;
}

HWY_INLINE row add(row a, const row& b) {
  for (std::size_t k = 0; k < row_vectors; ++k) a.v[k] = hn::Add(a.v[k], b.v[k]);
  return a;
}

/// f(p[0..8)) as a row, in double.
template <summand F, class T>
HWY_INLINE row load_row(const T* p) {
  const row_tag dd;
  row r;
  for (std::size_t k = 0; k < row_vectors; ++k) {
    hn::Vec<row_tag> w;
    if constexpr (sizeof(T) == 4)
      w = hn::PromoteTo(dd, hn::LoadU(hn::Rebind<float, row_tag>(), p + k * row_lanes));
    else
      w = hn::LoadU(dd, p + k * row_lanes);
    r.v[k] = F == summand::abs ? hn::Abs(w) : hn::Mul(w, w);
  }
  return r;
}

HWY_INLINE std::array<double, 8> lanes_of(const row& r) {
  std::array<double, 8> lane;
  for (std::size_t k = 0; k < row_vectors; ++k) hn::StoreU(r.v[k], row_tag(), lane.data() + k * row_lanes);
  return lane;
}
#else
struct row {
  double lane[8];
};

inline row zero_row() { return row{}; }

GRADCOMP_NO_FP_CONTRACT inline row add(row a, const row& b) {
  GRADCOMP_NO_FP_CONTRACT_BODY
  for (std::size_t l = 0; l < 8; ++l) a.lane[l] = a.lane[l] + b.lane[l];
  return a;
}

template <summand F, class T>
GRADCOMP_NO_FP_CONTRACT inline row load_row(const T* p) {
  GRADCOMP_NO_FP_CONTRACT_BODY
  row r;
  for (std::size_t l = 0; l < 8; ++l)
    r.lane[l] = F == summand::abs ? gradcomp::detail::abs_summand(p[l]) : gradcomp::detail::square_summand(p[l]);
  return r;
}

inline std::array<double, 8> lanes_of(const row& r) {
  std::array<double, 8> lane;
  for (std::size_t l = 0; l < 8; ++l) lane[l] = r.lane[l];
  return lane;
}
#endif

/// The tree over the 8 rows of a full group at p.
template <summand F, class T>
GRADCOMP_NO_FP_CONTRACT inline row group_tree(const T* p) {
  GRADCOMP_NO_FP_CONTRACT_BODY
  const row r01 = add(load_row<F>(p), load_row<F>(p + 8));
  const row r23 = add(load_row<F>(p + 16), load_row<F>(p + 24));
  const row r45 = add(load_row<F>(p + 32), load_row<F>(p + 40));
  const row r67 = add(load_row<F>(p + 48), load_row<F>(p + 56));
  return add(add(r01, r23), add(r45, r67));
}

/// The pairwise tree over groups, fed one group at a time.
class group_counter {
 public:
  /// Adds the next group's tree (groups arrive in index order).
  GRADCOMP_NO_FP_CONTRACT void push(row r) {
    GRADCOMP_NO_FP_CONTRACT_BODY
    std::size_t level = 0;
    for (std::size_t i = count_; i & 1; i >>= 1, ++level) r = add(pending_[level], r);  // left + right
    pending_[level] = r;
    ++count_;
  }

  /// The tree over every group pushed (zero-padded to a power of two), folded over lanes.
  GRADCOMP_NO_FP_CONTRACT double total() const {
    GRADCOMP_NO_FP_CONTRACT_BODY
    if (count_ == 0) return 0.0;
    row acc = zero_row();
    bool have = false;
    for (std::size_t level = 0; (count_ >> level) != 0; ++level) {
      if (((count_ >> level) & 1) == 0) continue;  // acc's right sibling is zero: acc stays
      acc = have ? add(pending_[level], acc) : pending_[level];
      have = true;
    }
    return gradcomp::detail::fold_lanes(lanes_of(acc));
  }

  /// Groups pushed so far.
  std::size_t size() const noexcept { return count_; }

 private:
  static constexpr std::size_t levels = 8;  // 2^7 >= the 64 groups of a block
  row pending_[levels];
  std::size_t count_ = 0;
};

/// The reference block_sum of f over x[0, n), n <= reduction_block.
template <summand F, class T>
GRADCOMP_NO_FP_CONTRACT double block_sum(tag, const T* x, std::size_t n) {
  GRADCOMP_NO_FP_CONTRACT_BODY
  group_counter groups;
  std::size_t i = 0;
  for (; i + group_elements <= n; i += group_elements) groups.push(group_tree<F>(x + i));
  if (i < n) {  // a short last group: zeros past the end (their summands are 0)
    T padded[group_elements] = {};
    std::memcpy(padded, x + i, (n - i) * sizeof(T));
    groups.push(group_tree<F>(padded));
  }
  return groups.total();
}

/// out[s] = block_sum of f over x[s * stride, s * stride + n) for s < count; n <=
/// reduction_block. (Contiguous blocks are stride = n; the sign compressors' per-block
/// scales use any stride.)
template <summand F, class T>
void strided_block_sums(tag t, const T* x, std::size_t count, std::size_t stride, std::size_t n, double* out) {
  for (std::size_t s = 0; s < count; ++s) out[s] = block_sum<F>(t, x + s * stride, n);
}

/// out[b] = the block sum of block b of x[0, n) (blocks of reduction_block from x).
template <summand F, class T>
void block_sums(tag t, const T* x, std::size_t n, double* out) {
  constexpr std::size_t B = gradcomp::detail::reduction_block;
  for (std::size_t b = 0; b * B < n; ++b) out[b] = block_sum<F>(t, x + b * B, n - b * B < B ? n - b * B : B);
}

GRADCOMP_SIMD_NAMESPACE_END
#endif
#endif
