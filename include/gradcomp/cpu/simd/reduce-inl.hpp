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

#include "../../detail/group_means.hpp"
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

/// The summand F of the lanes of w, as the scalar rules compute it (detail/reduce.hpp,
/// detail/group_means.hpp). The sign test is the ordered compare w < 0, false for -0 and NaN,
/// as detail::sign_bit_of (promoting a float to double keeps its sign and NaN-ness).
template <summand F>
HWY_INLINE hn::Vec<row_tag> summand_of(hn::Vec<row_tag> w) {
  const row_tag dd;
  if constexpr (F == summand::abs) {
    return hn::Abs(w);
  } else if constexpr (F == summand::square) {
    return hn::Mul(w, w);
  } else if constexpr (F == summand::negative_abs) {
    return hn::IfThenElseZero(hn::Lt(w, hn::Zero(dd)), hn::Abs(w));
  } else if constexpr (F == summand::nonnegative_abs) {
    return hn::IfThenZeroElse(hn::Lt(w, hn::Zero(dd)), hn::Abs(w));
  } else {
    static_assert(F == summand::negative_count);
    return hn::IfThenElseZero(hn::Lt(w, hn::Zero(dd)), hn::Set(dd, 1.0));
  }
}

/// p[0..8) as a row of doubles (floats widened exactly).
template <class T>
HWY_INLINE row load_values(const T* p) {
  const row_tag dd;
  row w;
  for (std::size_t k = 0; k < row_vectors; ++k) {
    if constexpr (sizeof(T) == 4)
      w.v[k] = hn::PromoteTo(dd, hn::LoadU(hn::Rebind<float, row_tag>(), p + k * row_lanes));
    else
      w.v[k] = hn::LoadU(dd, p + k * row_lanes);
  }
  return w;
}

/// The summand F of every lane of a row of values.
template <summand F>
HWY_INLINE row summands(const row& w) {
  row r;
  for (std::size_t k = 0; k < row_vectors; ++k) r.v[k] = summand_of<F>(w.v[k]);
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

/// The summand F of v: the scalar rule itself.
template <summand F, class T>
GRADCOMP_NO_FP_CONTRACT inline double summand_of(T v) {
  GRADCOMP_NO_FP_CONTRACT_BODY
  if constexpr (F == summand::abs) {
    return gradcomp::detail::abs_summand(v);
  } else if constexpr (F == summand::square) {
    return gradcomp::detail::square_summand(v);
  } else if constexpr (F == summand::negative_abs || F == summand::nonnegative_abs) {
    return gradcomp::detail::group_abs_summand(v, F == summand::negative_abs);
  } else {
    static_assert(F == summand::negative_count);
    return gradcomp::detail::group_count_summand(v);
  }
}

/// A row of values: the elements themselves (the scalar rules take T).
template <class T>
struct values_row {
  T lane[8];
};

template <class T>
inline values_row<T> load_values(const T* p) {
  values_row<T> w;
  for (std::size_t l = 0; l < 8; ++l) w.lane[l] = p[l];
  return w;
}

/// The summand F of every lane of a row of values.
template <summand F, class T>
GRADCOMP_NO_FP_CONTRACT inline row summands(const values_row<T>& w) {
  GRADCOMP_NO_FP_CONTRACT_BODY
  row r;
  for (std::size_t l = 0; l < 8; ++l) r.lane[l] = summand_of<F>(w.lane[l]);
  return r;
}

inline std::array<double, 8> lanes_of(const row& r) {
  std::array<double, 8> lane;
  for (std::size_t l = 0; l < 8; ++l) lane[l] = r.lane[l];
  return lane;
}
#endif

/// The 8 rows of values of the full group at p.
template <class T>
struct group_values {
  decltype(load_values(static_cast<const T*>(nullptr))) row_of[8];
};

template <class T>
inline group_values<T> load_group(const T* p) {
  group_values<T> g;
  for (std::size_t r = 0; r < 8; ++r) g.row_of[r] = load_values(p + 8 * r);
  return g;
}

/// The tree of summand F over a group's 8 rows.
template <summand F, class T>
GRADCOMP_NO_FP_CONTRACT inline row tree_of(const group_values<T>& g) {
  GRADCOMP_NO_FP_CONTRACT_BODY
  const row r01 = add(summands<F>(g.row_of[0]), summands<F>(g.row_of[1]));
  const row r23 = add(summands<F>(g.row_of[2]), summands<F>(g.row_of[3]));
  const row r45 = add(summands<F>(g.row_of[4]), summands<F>(g.row_of[5]));
  const row r67 = add(summands<F>(g.row_of[6]), summands<F>(g.row_of[7]));
  return add(add(r01, r23), add(r45, r67));
}

/// The tree over the 8 rows of a full group at p.
template <summand F, class T>
GRADCOMP_NO_FP_CONTRACT inline row group_tree(const T* p) {
  GRADCOMP_NO_FP_CONTRACT_BODY
  return tree_of<F>(load_group(p));
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

// Several summands of the same elements in one pass (onebit's two group sums and count): each
// group of rows is loaded once and every summand's tree formed from it; each result has the
// bits of block_sum<F> for its summand alone.

/// Pushes the tree of the j-th summand over the group g to groups[j].
template <summand... F, class T>
GRADCOMP_NO_FP_CONTRACT inline void push_trees(group_counter* groups, const group_values<T>& g) {
  GRADCOMP_NO_FP_CONTRACT_BODY
  std::size_t j = 0;
  (groups[j++].push(tree_of<F>(g)), ...);
}

/// out[j] = block_sum of the j-th summand F over x[0, n), n <= reduction_block.
template <summand... F, class T>
GRADCOMP_NO_FP_CONTRACT void block_sum_of_each(tag, const T* x, std::size_t n, double* out) {
  GRADCOMP_NO_FP_CONTRACT_BODY
  group_counter groups[sizeof...(F)];
  std::size_t i = 0;
  for (; i + group_elements <= n; i += group_elements) push_trees<F...>(groups, load_group(x + i));
  if (i < n) {  // a short last group: zeros past the end (every summand of 0 is 0)
    T padded[group_elements] = {};
    std::memcpy(padded, x + i, (n - i) * sizeof(T));
    push_trees<F...>(groups, load_group(static_cast<const T*>(padded)));
  }
  for (std::size_t j = 0; j < sizeof...(F); ++j) out[j] = groups[j].total();
}

/// out[j][s] = block_sum of the j-th summand over x[s * stride, s * stride + n) for s < count;
/// n <= reduction_block.
template <summand... F, class T>
void strided_block_sums_of_each(tag t, const T* x, std::size_t count, std::size_t stride, std::size_t n,
                                double* const* out) {
  double sums[sizeof...(F)];
  for (std::size_t s = 0; s < count; ++s) {
    block_sum_of_each<F...>(t, x + s * stride, n, sums);
    for (std::size_t j = 0; j < sizeof...(F); ++j) out[j][s] = sums[j];
  }
}

/// out[j][b] = the sum of the j-th summand over block b of x[0, n) (blocks of reduction_block
/// from x).
template <summand... F, class T>
void block_sums_of_each(tag t, const T* x, std::size_t n, double* const* out) {
  constexpr std::size_t B = gradcomp::detail::reduction_block;
  double sums[sizeof...(F)];
  for (std::size_t b = 0; b * B < n; ++b) {
    block_sum_of_each<F...>(t, x + b * B, n - b * B < B ? n - b * B : B, sums);
    for (std::size_t j = 0; j < sizeof...(F); ++j) out[j][b] = sums[j];
  }
}

GRADCOMP_SIMD_NAMESPACE_END
#endif
#endif
