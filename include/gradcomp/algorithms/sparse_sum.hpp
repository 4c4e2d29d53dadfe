#pragma once
// Sums of sparse messages, for the exchanges that add messages on the way (reduce-scatter,
// recursive doubling; sparse_exchange.hpp): a region's partial sum, the one addition rule,
// the one summation order, and the block that carries a partial sum between ranks.
//
// Exactness. An entry absent from a message is zero; a present -0 is made +0 where a message
// enters (v + 0). A sum of values none of which is -0 is never -0 (round to nearest), so
// x + (+0) == x for every partial sum, and adding an absent entry or skipping it gives the
// same bits: a partial sum may be held sparse or dense, and switch, without changing a bit.
//
// Order. Every index's sum over the ranks that sent it is added in one fixed tree, the one
// recursive doubling adds in (SparCML, MPICH): with P' the largest power of two <= P and
// rem = P - P', ranks 2v and 2v + 1 (v < rem) are added first, then the P' groups pairwise,
// the lower group first. A rank that owns a region (reduce-scatter) adds its P contributions
// in the same tree (tree_sum), so both exchanges give the same bits.
#include <algorithm>
#include <bit>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include "../detail/bits.hpp"
#include "../detail/host_device.hpp"
#include "../detail/strict_fp.hpp"
#include "../detail/wire.hpp"
#include "../error.hpp"

namespace gradcomp::detail {

/// Bytes of a relative index inside a region of `len` elements.
constexpr std::size_t region_index_bytes(std::size_t len) noexcept {
  return len <= (std::size_t{1} << 32) ? 4 : 8;
}

/// Whether `nnz` entries of a region of `len` elements travel (and are held) dense: when
/// len values take fewer bytes than nnz (index, value) pairs.
template <class T>
constexpr bool prefer_dense(std::size_t nnz, std::size_t len) noexcept {
  return len * sizeof(T) < nnz * (region_index_bytes(len) + sizeof(T));
}

/// Payload bytes of a block of nnz entries: nothing when empty, else one representation
/// byte and the smaller of the pairs and the dense values.
template <class T>
constexpr std::size_t block_bytes(std::size_t nnz, std::size_t len) noexcept {
  if (nnz == 0) return 0;
  return 1 + (prefer_dense<T>(nnz, len) ? len * sizeof(T) : nnz * (region_index_bytes(len) + sizeof(T)));
}

/// A partial sum over [begin, begin + len) of the whole vector: sparse (ascending relative
/// indices, their values) or dense (len values, absent entries +0).
template <std::floating_point T>
struct region_sum {
  std::size_t len = 0;
  bool dense = false;
  std::vector<std::size_t> index;  // sparse only
  std::vector<T> value;            // sparse: one per index; dense: len

  /// Entries carried: the stored entries if sparse, len if dense.
  std::size_t entries() const noexcept { return dense ? len : index.size(); }

  void reset(std::size_t new_len) {
    len = new_len;
    dense = false;
    index.clear();
    value.clear();
  }

  /// Sparse -> dense once the pairs would take more bytes than the values.
  void settle() {
    if (dense || !prefer_dense<T>(index.size(), len)) return;
    std::vector<T> full(len, T(0));
    for (std::size_t j = 0; j < index.size(); ++j) full[index[j]] = value[j];
    value = std::move(full);
    index.clear();
    dense = true;
  }

  /// Calls f(relative index, value) for every nonzero entry, in index order.
  template <class F>
  void for_each_nonzero(F&& f) const {
    if (dense) {
      for (std::size_t i = 0; i < len; ++i)
        if (value[i] != T(0)) f(i, value[i]);
    } else {
      for (std::size_t j = 0; j < index.size(); ++j)
        if (value[j] != T(0)) f(index[j], value[j]);
    }
  }
};

/// A message entry as it enters a sum: -0 becomes +0 (see the top of the file). GRADCOMP_HD:
/// the device exchange (cuda/comm/sparse_exchange.cuh) calls it on the GPU.
template <class T>
GRADCOMP_NO_FP_CONTRACT GRADCOMP_HD T canonical_entry(T v) noexcept {
  GRADCOMP_NO_FP_CONTRACT_BODY
  return v + T(0);
}

/// out = lower + upper, element by element (lower's value first), absent entries skipped.
/// out must not alias either operand.
template <class T>
GRADCOMP_NO_FP_CONTRACT void add_sums(const region_sum<T>& lower, const region_sum<T>& upper, region_sum<T>& out) {
  GRADCOMP_NO_FP_CONTRACT_BODY
  if (lower.len != upper.len) fail("sparse exchange", "partial sums of ", lower.len, " and ", upper.len, " elements");
  out.reset(lower.len);
  if (lower.dense || upper.dense) {
    out.dense = true;
    out.value.assign(out.len, T(0));
    const auto put = [&](const region_sum<T>& s, bool first) {
      if (s.dense) {
        for (std::size_t i = 0; i < s.len; ++i) out.value[i] = first ? s.value[i] : out.value[i] + s.value[i];
      } else {
        for (std::size_t j = 0; j < s.index.size(); ++j)
          out.value[s.index[j]] = first ? s.value[j] : out.value[s.index[j]] + s.value[j];
      }
    };
    // Dense entries hold +0 where absent, and x + (+0) == x for every partial sum.
    put(lower, true);
    put(upper, false);
    return;
  }
  out.index.reserve(lower.index.size() + upper.index.size());
  out.value.reserve(lower.index.size() + upper.index.size());
  std::size_t a = 0, b = 0;
  while (a < lower.index.size() || b < upper.index.size()) {
    if (b == upper.index.size() || (a < lower.index.size() && lower.index[a] < upper.index[b])) {
      out.index.push_back(lower.index[a]);
      out.value.push_back(lower.value[a++]);
    } else if (a == lower.index.size() || upper.index[b] < lower.index[a]) {
      out.index.push_back(upper.index[b]);
      out.value.push_back(upper.value[b++]);
    } else {
      out.index.push_back(lower.index[a]);
      out.value.push_back(lower.value[a++] + upper.value[b++]);
    }
  }
  out.settle();
}

/// The summation tree's shape for n ranks (see the top of the file).
struct summation_tree {
  int ranks = 1;
  int groups = 1;  // P', the largest power of two <= ranks
  int folded = 0;  // rem: ranks 2v and 2v + 1, v < folded, are added first

  explicit summation_tree(int n) : ranks(n), groups(static_cast<int>(std::bit_floor(static_cast<unsigned>(n)))), folded(n - groups) {}

  /// Rounds of pairwise additions after the fold: log2(P').
  int rounds() const noexcept { return std::countr_zero(static_cast<unsigned>(groups)); }
  /// Whether rank r takes part in the rounds (the even rank of a folded pair does not).
  bool in_rounds(int r) const noexcept { return r >= 2 * folded || r % 2 == 1; }
  /// The group of a rank that takes part in the rounds, and the rank that stands for a group.
  int group_of(int r) const noexcept { return r < 2 * folded ? r / 2 : r - folded; }
  int rank_of_group(int v) const noexcept { return v < folded ? 2 * v + 1 : v + folded; }
};

/// The sum of parts[0..n) in the tree's order, into out; parts are consumed (reused as scratch).
template <class T>
void tree_sum(std::vector<region_sum<T>>& parts, region_sum<T>& out) {
  const summation_tree tree(static_cast<int>(parts.size()));
  std::vector<region_sum<T>> level(static_cast<std::size_t>(tree.groups));
  for (int v = 0; v < tree.groups; ++v) {
    auto& node = level[static_cast<std::size_t>(v)];
    if (v < tree.folded)
      add_sums(parts[static_cast<std::size_t>(2 * v)], parts[static_cast<std::size_t>(2 * v + 1)], node);
    else
      node = std::move(parts[static_cast<std::size_t>(v + tree.folded)]);
  }
  region_sum<T> merged;
  for (int width = 1; width < tree.groups; width *= 2)
    for (int v = 0; v < tree.groups; v += 2 * width) {
      add_sums(level[static_cast<std::size_t>(v)], level[static_cast<std::size_t>(v + width)], merged);
      std::swap(level[static_cast<std::size_t>(v)], merged);
    }
  out = std::move(level[0]);
}

// ---- Blocks: a region's entries between ranks. Empty, or [u8 representation][data]:
// sparse = nnz x (relative index: 4 or 8 bytes by region_index_bytes, value), dense = len
// values; little-endian, as the wire format.

enum class block_representation : std::uint8_t { sparse = 1, dense = 2 };

/// Appends the block of s (nnz = entries()) to out.
template <class T>
void append_block(const region_sum<T>& s, std::vector<std::byte>& out) {
  if (s.entries() == 0) return;
  const std::size_t at = out.size();
  const std::size_t ib = region_index_bytes(s.len);
  const bool dense = prefer_dense<T>(s.entries(), s.len);
  out.resize(at + block_bytes<T>(s.entries(), s.len));
  std::byte* p = out.data() + at;
  *p++ = static_cast<std::byte>(dense ? block_representation::dense : block_representation::sparse);
  using U = uint_of<T>;
  if (dense) {
    if (s.dense) {
      for (std::size_t i = 0; i < s.len; ++i, p += sizeof(T)) store_le(p, std::bit_cast<U>(s.value[i]));
    } else {
      std::fill(p, p + s.len * sizeof(T), std::byte{0});
      for (std::size_t j = 0; j < s.index.size(); ++j) store_le(p + s.index[j] * sizeof(T), std::bit_cast<U>(s.value[j]));
    }
    return;
  }
  for (std::size_t j = 0; j < s.index.size(); ++j) {
    if (ib == 4)
      store_le(p, static_cast<std::uint32_t>(s.index[j]));
    else
      store_le(p, static_cast<std::uint64_t>(s.index[j]));
    store_le(p + ib, std::bit_cast<U>(s.value[j]));
    p += ib + sizeof(T);
  }
}

/// Reads a block of a region of len elements into s (checked: a malformed block throws
/// gc::error naming `from`; values must be finite).
template <class T>
void read_block(std::span<const std::byte> block, std::size_t len, region_sum<T>& s, const char* where, int from) {
  s.reset(len);
  if (block.empty()) return;
  using U = uint_of<T>;
  const auto rep = static_cast<block_representation>(block[0]);
  const std::byte* p = block.data() + 1;
  const std::size_t body = block.size() - 1;
  if (rep == block_representation::dense) {
    if (body != len * sizeof(T))
      fail(where, "rank ", from, " sent a dense block of ", body, " bytes for ", len, " elements");
    s.dense = true;
    s.value.resize(len);
    for (std::size_t i = 0; i < len; ++i, p += sizeof(T)) s.value[i] = std::bit_cast<T>(load_le<U>(p));
  } else if (rep == block_representation::sparse) {
    const std::size_t ib = region_index_bytes(len), entry = ib + sizeof(T);
    if (body % entry != 0 || body / entry > len)
      fail(where, "rank ", from, " sent a sparse block of ", body, " bytes for ", len, " elements");
    const std::size_t nnz = body / entry;
    s.index.resize(nnz);
    s.value.resize(nnz);
    for (std::size_t j = 0; j < nnz; ++j, p += entry) {
      s.index[j] = ib == 4 ? load_le<std::uint32_t>(p) : static_cast<std::size_t>(load_le<std::uint64_t>(p));
      s.value[j] = std::bit_cast<T>(load_le<U>(p + ib));
      if (s.index[j] >= len || (j > 0 && s.index[j] <= s.index[j - 1]))
        fail(where, "rank ", from, " sent index ", s.index[j], " at position ", j,
             " (indices must ascend and stay below ", len, ")");
    }
  } else {
    fail(where, "rank ", from, " sent a block of unknown representation ", static_cast<int>(block[0]));
  }
  for (const T v : s.value)
    if (!(v - v == T(0))) fail(where, "rank ", from, " sent a value that is not finite");
}

}  // namespace gradcomp::detail
