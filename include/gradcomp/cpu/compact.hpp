#pragma once
// Ordered stream compaction: the kernels behind hard-threshold, the fused error-feedback
// threshold step and Top-k's candidate pass.
//
// Selection works on detail::magnitude_key (the bit pattern without the sign bit), so one
// integer comparison key >= bound decides, NaN included (its key is above every finite and
// infinite key). Each chunk of the input compacts into a buffer of its thread, and the
// buffers are concatenated in chunk order, so the output indices ascend exactly as in the
// sequential loop, whatever the thread count.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include <tbb/enumerable_thread_specific.h>

#include "../detail/bits.hpp"
#include "../detail/strict_fp.hpp"
#include "parallel.hpp"
#include "policy.hpp"
#include "simd.hpp"

namespace gradcomp::cpu::detail {

using gradcomp::detail::magnitude_key;
using gradcomp::detail::uint_of;

/// Elements a compaction kernel handles per call; its output buffers hold this many plus
/// one vector of slack (a compress-store writes whole vectors).
inline constexpr std::size_t compact_block = 4096;
inline constexpr std::size_t compact_slack = 64;

/// Compaction output for one block: offsets within the block and values.
template <class T>
struct compact_buffer {
  std::array<uint_of<T>, compact_block + compact_slack> offsets;
  std::array<T, compact_block + compact_slack> values;
};

/// The magnitude-key bound equivalent to !(fabs(double(x)) < lambda) for x of type T:
/// x is kept iff magnitude_key(x) >= bound. For float, this is the key of the smallest float
/// >= lambda (no float lies strictly between a float below lambda and that one).
template <class T>
uint_of<T> threshold_key(double lambda) {
  if constexpr (sizeof(T) == 8) {
    return magnitude_key(lambda);
  } else {
    float t = static_cast<float>(lambda);
    if (static_cast<double>(t) < lambda) t = std::nextafter(t, std::numeric_limits<float>::infinity());
    return magnitude_key(t);
  }
}

/// Writes the offsets and values of the elements of x[0, n) (n <= compact_block) whose
/// magnitude key is >= bound, in order; returns how many.
template <class T>
std::size_t compact_at_least(const T* x, std::size_t n, uint_of<T> bound, compact_buffer<T>& out) {
  std::size_t count = 0;
  std::size_t i = 0;
#if GRADCOMP_CPU_SIMD
  namespace hn = simd::hn;
  const hn::ScalableTag<T> d;
  const hn::RebindToSigned<decltype(d)> di;  // keys < 2^(bits-1): signed compares are exact
  const hn::RebindToUnsigned<decltype(d)> du;
  using S = hn::TFromD<decltype(di)>;
  constexpr std::size_t L = hn::MaxLanes(d);
  const auto magnitude = hn::Set(di, static_cast<S>(~uint_of<T>{0} >> 1));
  const auto below = hn::Set(di, static_cast<S>(bound));
  const auto step = hn::Set(du, static_cast<uint_of<T>>(L));
  auto offset = hn::Iota(du, 0);
  for (; i + L <= n; i += L, offset = hn::Add(offset, step)) {
    const auto v = hn::LoadU(d, x + i);
    const auto key = hn::And(hn::BitCast(di, v), magnitude);
    const auto keep = hn::Not(hn::Lt(key, below));
    if (hn::AllFalse(di, keep)) continue;
    // Compress into a register, then store: compress-to-memory is microcoded on AMD Zen 4/5.
    hn::StoreU(hn::Compress(v, hn::RebindMask(d, keep)), d, out.values.data() + count);
    hn::StoreU(hn::Compress(offset, hn::RebindMask(du, keep)), du, out.offsets.data() + count);
    count += hn::CountTrue(di, keep);
  }
#endif
  for (; i < n; ++i) {
    if (magnitude_key(x[i]) >= bound) {
      out.offsets[count] = static_cast<uint_of<T>>(i);
      out.values[count] = x[i];
      ++count;
    }
  }
  return count;
}

/// The fused error-feedback threshold step on one block (n <= compact_block):
///   p = e + scale * g (two roundings; e + g when unit_scale);
///   p is kept iff magnitude_key(p) >= bound, and its offset and value are written to out;
///   e_new = kept ? p + (-1) * p : p, exactly what the reference's decompress_add(-1) leaves.
/// Returns the number kept.
template <class T>
GRADCOMP_NO_FP_CONTRACT std::size_t feedback_compact_at_least(const T* e, const T* g, T scale, bool unit_scale,
                                                              std::size_t n, uint_of<T> bound, T* e_new,
                                                              compact_buffer<T>& out) {
  GRADCOMP_NO_FP_CONTRACT_BODY
  std::size_t count = 0;
  std::size_t i = 0;
#if GRADCOMP_CPU_SIMD
  namespace hn = simd::hn;
  const hn::ScalableTag<T> d;
  const hn::RebindToSigned<decltype(d)> di;
  const hn::RebindToUnsigned<decltype(d)> du;
  using S = hn::TFromD<decltype(di)>;
  constexpr std::size_t L = hn::MaxLanes(d);
  const auto magnitude = hn::Set(di, static_cast<S>(~uint_of<T>{0} >> 1));
  const auto below = hn::Set(di, static_cast<S>(bound));
  const auto step = hn::Set(du, static_cast<uint_of<T>>(L));
  const auto vscale = hn::Set(d, scale);
  const auto minus_one = hn::Set(d, T(-1));
  auto offset = hn::Iota(du, 0);
  for (; i + L <= n; i += L, offset = hn::Add(offset, step)) {
    const auto gv = hn::LoadU(d, g + i);
    const auto p = hn::Add(hn::LoadU(d, e + i), unit_scale ? gv : hn::Mul(vscale, gv));
    const auto key = hn::And(hn::BitCast(di, p), magnitude);
    const auto keep = hn::Not(hn::Lt(key, below));
    if (hn::AllFalse(di, keep)) {
      hn::StoreU(p, d, e_new + i);
      continue;
    }
    const auto keep_d = hn::RebindMask(d, keep);
    hn::StoreU(hn::IfThenElse(keep_d, hn::Add(p, hn::Mul(minus_one, p)), p), d, e_new + i);
    hn::StoreU(hn::Compress(p, keep_d), d, out.values.data() + count);
    hn::StoreU(hn::Compress(offset, hn::RebindMask(du, keep)), du, out.offsets.data() + count);
    count += hn::CountTrue(di, keep);
  }
#endif
  for (; i < n; ++i) {
    const T p = unit_scale ? e[i] + g[i] : e[i] + scale * g[i];
    if (magnitude_key(p) >= bound) {
      out.offsets[count] = static_cast<uint_of<T>>(i);
      out.values[count] = p;
      ++count;
      e_new[i] = p + T(-1) * p;
    } else {
      e_new[i] = p;
    }
  }
  return count;
}

/// Where compacted entries go: appends (base + offset, value) pairs to two vectors.
template <class T, class Index>
struct sparse_sink {
  std::vector<Index>* indices;
  std::vector<T>* values;

  void append(std::size_t base, const compact_buffer<T>& buffer, std::size_t count) const {
    const std::size_t old = indices->size();
    indices->resize(old + count);
    values->resize(old + count);
    Index* idx = indices->data() + old;
    for (std::size_t j = 0; j < count; ++j) idx[j] = static_cast<Index>(base + buffer.offsets[j]);
    std::copy_n(buffer.values.data(), count, values->data() + old);
  }
};

/// Runs kernel(c, sink) for chunks c in [0, chunks) and leaves in (indices, values) the
/// concatenation, in chunk order, of what each chunk appended to its sink. `work` (the
/// number of input elements) decides whether to use the worker threads.
template <class T, class Index, class Kernel>
void collect_sparse(const exec::par_t& policy, std::size_t work, std::size_t chunks, Kernel&& kernel,
                    std::vector<Index>& indices, std::vector<T>& values) {
  indices.clear();
  values.clear();
  if (chunks <= 1 || work < policy.min_parallel_size) {
    const sparse_sink<T, Index> sink{&indices, &values};
    for (std::size_t c = 0; c < chunks; ++c) kernel(c, sink);
    return;
  }
  // Each thread appends to its own arena; a chunk remembers where its entries landed.
  struct arena {
    std::vector<Index> indices;
    std::vector<T> values;
  };
  struct piece {
    const arena* from = nullptr;
    std::size_t offset = 0, count = 0;
  };
  tbb::enumerable_thread_specific<arena> arenas;
  std::vector<piece> pieces(chunks);
  tbb::parallel_for(tbb::blocked_range<std::size_t>(0, chunks), [&](const tbb::blocked_range<std::size_t>& r) {
    arena& mine = arenas.local();
    const sparse_sink<T, Index> sink{&mine.indices, &mine.values};
    for (std::size_t c = r.begin(); c < r.end(); ++c) {
      const std::size_t before = mine.indices.size();
      kernel(c, sink);
      pieces[c] = piece{&mine, before, mine.indices.size() - before};
    }
  });
  std::vector<std::size_t> start(chunks + 1, 0);
  for (std::size_t c = 0; c < chunks; ++c) start[c + 1] = start[c] + pieces[c].count;
  indices.resize(start[chunks]);
  values.resize(start[chunks]);
  tbb::parallel_for(tbb::blocked_range<std::size_t>(0, chunks), [&](const tbb::blocked_range<std::size_t>& r) {
    for (std::size_t c = r.begin(); c < r.end(); ++c) {
      const piece& p = pieces[c];
      std::copy_n(p.from->indices.data() + p.offset, p.count, indices.data() + start[c]);
      std::copy_n(p.from->values.data() + p.offset, p.count, values.data() + start[c]);
    }
  });
}

/// Chunk size of the compaction loops: big enough to amortise scheduling, small enough to
/// balance two to a few dozen threads on 1e6+ elements.
inline constexpr std::size_t compact_chunk = 16 * compact_block;

/// Every element of x whose magnitude key is >= bound, in index order.
template <class T, class Index>
void compact_at_least(const exec::par_t& policy, std::span<const T> x, uint_of<T> bound, std::vector<Index>& indices,
                      std::vector<T>& values) {
  collect_sparse<T, Index>(
      policy, x.size(), chunk_count(x.size(), compact_chunk),
      [&](std::size_t c, const sparse_sink<T, Index>& sink) {
        compact_buffer<T> buffer;
        const std::size_t end = std::min(x.size(), (c + 1) * compact_chunk);
        for (std::size_t begin = c * compact_chunk; begin < end; begin += compact_block) {
          const std::size_t n = std::min(compact_block, end - begin);
          sink.append(begin, buffer, compact_at_least(x.data() + begin, n, bound, buffer));
        }
      },
      indices, values);
}

}  // namespace gradcomp::cpu::detail
