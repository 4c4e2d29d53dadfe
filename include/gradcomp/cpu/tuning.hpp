#pragma once
// Every tuning constant of exec::par, one struct per algorithm (as CUB's tuning policies).
//
// None of these changes a result: outputs are bit-identical to exec::seq whatever the
// values. They decide how work is cut into chunks, when threads are woken, and how much
// memory is kept between calls. The figures behind them are in docs/performance.md
// ("Where exec::par starts to pay") and in the comments below; they were measured on a
// 2-core AVX-512 VM and an 8-core desktop, so a different machine may prefer others.
//
// Two constants that look like tuning are not: the reduction block (4096 elements, 8
// lanes) is part of the reference summation order (detail/reduce.hpp), and Top-k's sample
// only steers speed but its positions are fixed so that a call's work does not depend on
// the thread count.
#include <cstddef>

namespace gradcomp::cpu::tuning {

/// When to wake the worker threads.
struct parallel {
  /// Inputs shorter than this run on the calling thread (still vectorised): with chunks of
  /// 2^16 elements, the norms, hard-threshold, the sign compressors and the fused EF steps
  /// gain from two threads at 2^17 elements; Top-k breaks even there.
  static constexpr std::size_t min_parallel_size = std::size_t{1} << 17;
  /// How many streamed elements one element of a random-access loop (a scatter into, or a
  /// gather from, a vector too large for the caches) is worth when compared with
  /// min_parallel_size. Each such element is a cache miss, and two threads overlap their
  /// misses: a scatter of 32k entries into 10^8 floats already runs 1.9x faster on two
  /// threads, while streamed kernels need about 2^17.
  static constexpr std::size_t random_access_weight = 16;
};

/// Element-wise loops (p = e + scale * g, copies, dense decoding, levels, sign packing,
/// range checks): chunk size.
struct elementwise {
  static constexpr std::size_t chunk = std::size_t{1} << 16;
};

/// Norms and other ordered sums: reduction blocks per parallel chunk.
struct reduce {
  static constexpr std::size_t blocks_per_chunk = 16;
};

/// Ordered stream compaction (hard-threshold, the fused EF threshold step, Top-k's
/// candidate pass).
struct compact {
  /// Elements one kernel call handles; its output buffer holds this many plus one vector of
  /// slack (a compress-store writes whole vectors). Equal to the reduction block, so the
  /// fused EF step sums ||e||^2 block by block as it compacts.
  static constexpr std::size_t block = 4096;
  static constexpr std::size_t slack = 64;
  /// Chunk size: big enough to amortise scheduling, small enough to balance two to a few
  /// dozen threads on 1e6+ elements.
  static constexpr std::size_t chunk = 16 * block;
};

/// Exact Top-k (cpu/top_k.hpp).
struct top_k {
  /// Below this size a sequential path (keys, select, one filter pass) is fastest.
  static constexpr std::size_t sampling_from = 4096;
  /// Below this many candidates, the selection after the candidate pass stays on the calling
  /// thread.
  static constexpr std::size_t parallel_candidates = std::size_t{1} << 15;
  /// Sample: runs of 64 contiguous elements (256 bytes of float, four cache lines), about
  /// n / 256 elements in all, clamped to [256, 65536]. 64k keys place the k-th largest of
  /// 1e8 within a few percent of k; selecting in the sample costs a few cycles per key, the
  /// candidate pass a fraction of a cycle per element, so the sample must stay small.
  static constexpr std::size_t sample_run = 64;
  static constexpr std::size_t sample_fraction = 256;
  static constexpr std::size_t sample_min = 256;
  static constexpr std::size_t sample_max = 65536;
  /// Margin, in standard deviations of the sample rank, on each side of the estimate.
  static constexpr double sample_sigmas = 4.0;
};

/// Radix select on magnitude keys (cpu/radix_select.hpp).
struct radix_select {
  /// Digits of at most 11 bits: a 2048-entry histogram (8-16 KiB) stays in L1.
  static constexpr unsigned digit_bits = 11;
  /// Below this many keys, std::nth_element beats histogram passes.
  static constexpr std::size_t partition_below = 1024;
  /// Once the keys left in the race are this few, they are gathered and the select ends
  /// sequentially.
  static constexpr std::size_t gather_survivors_below = std::size_t{1} << 16;
  /// At most this many chunks in the parallel select (each keeps a histogram for the tie
  /// counts).
  static constexpr std::size_t max_chunks = 256;
};

/// decompress_add of sparse payloads and the random-k gather.
struct scatter {
  /// Entries per chunk: random accesses cost more than streaming ones.
  static constexpr std::size_t chunk = std::size_t{1} << 14;
};

/// random_k's membership bitmap: words per chunk of its zeroing and scanning (2^20 indices).
struct random_k {
  /// Indices hashed per chunk by the index-set search (about 1 ns each, scalar).
  static constexpr std::size_t hash_chunk = std::size_t{1} << 16;
};

/// What the default workspace (cpu/workspace.hpp) keeps between calls.
struct workspace {
  /// Blocks below this size are not worth keeping (malloc recycles them well).
  static constexpr std::size_t min_kept_bytes = std::size_t{1} << 16;
  /// At most this many bytes stay cached (a 1e9-element Top-k at 1% needs about 100 MB).
  static constexpr std::size_t max_cached_bytes = std::size_t{1} << 28;
  /// At most this many blocks stay cached.
  static constexpr std::size_t max_blocks = 256;
};

}  // namespace gradcomp::cpu::tuning
