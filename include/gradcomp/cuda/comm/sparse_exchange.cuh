#pragma once
// gc::cuda::sparse_exchange<T>: EF-SGD's sparse exchanges (algorithms/sparse_exchange.hpp,
// docs/distributed.md "EF-SGD's sparse exchanges") with the messages, the sums, the selection
// and the update in device memory, over any device communicator
// (cuda/comm/device_communicator.cuh: gc::cuda::comm::thread_group, gc::nccl::communicator).
//
// Same options (exchange_options: reduce_scatter or recursive_doubling, global_k, keep_all,
// region balance), same result, bit for bit, as gc::detail::sparse_exchange on the host:
//   - s[t] = the sum over the ranks whose message holds t, added in the summation tree of
//     sparse_sum.hpp (summation_tree: the fold of ranks 2v, 2v + 1, then groups pairwise),
//     a present -0 entering as +0 (gc::detail::canonical_entry, GRADCOMP_HD);
//   - S = the global_k nonzero sums of largest magnitude key, ties to the lower index, chosen
//     by gc::detail::select_largest itself (global_selection.hpp) fed with histograms of 256
//     bins computed on the device and, in the reduce-scatter, summed over the ranks by the
//     communicator's allreduce_sum (float counts up to d = 2^24, double above, as the host);
//   - mean = s / P at S, 0 elsewhere (device, dense); the entries of this rank's message
//     outside S (device indices and values: what error_feedback::return_unsent takes back).
// The byte counts (messages(), last_traffic()) are the host exchange's, message by message:
// a block of c entries of a region of len counts gc::detail::block_bytes<T>(c, len) with the
// host's entry count (len once the host would hold it dense), so traces and the cost model
// (scripts/scale_model.py) read the same numbers from both.
//
// Representation. A partial sum over a region is held dense: len values (absent entries +0;
// x + (+0) == x for every sum that is not -0, and none is, so a dense sum gives the host's
// bits whether the host held it sparse or dense), plus, in recursive doubling, a presence
// byte per element (the union of the supports, which decides the host's sparse-or-dense
// choice and therefore the bytes). The pairwise additions of the tree are element-wise
// kernels (lower operand first). On the wire (not the host's block format, which is host
// bytes with a representation byte):
//   empty           0 bytes (no entry in the region)
//   dense           len values, when the host would send it dense (prefer_dense(c, len))
//   sparse          c values, then c relative indices (4 bytes, 8 past 2^32 elements),
//                   plus one pad byte when that would be exactly len values' size
// so the receiver reads the representation and c from the size alone. Values and indices
// sit at any byte offset of the receive buffer and are read with memcpy.
//
// Protocol. Every step starts with an allgather of the ranks' status frames ([status], or
// [failed][u32 rank][message]) through the communicator (host bytes staged on the device): a
// rank that failed or skipped is known to every rank before any data moves, and every rank
// then throws the same "<where>: rank r failed: ..." (the lowest failing rank's message, as
// the host's merge) or returns skipped, changing nothing. A message whose dimension is not
// the exchange's, or a mean of the wrong length, fails this way too (on every rank). Then:
//   reduce_scatter      regions as the host places them (the previous selection's
//                       (r |S| / P)-th index, read back from the device); an alltoallv of
//                       the region blocks; the owner adds its P leaves in the tree; the
//                       histogram rounds (allreduce_sum of 256 counts each); a tie count
//                       allgather when ties at the threshold are shared out; an allgatherv
//                       of every owner's selected block
//   recursive_doubling  the fold, log2 P' rounds and the unfold as the host, each an
//                       alltoallv with one block; the select is local (no communication)
// Synchronisation: the step waits for the stream a few times per phase (the sizes and counts
// the host needs: the message's entry count, block offsets, histograms, selection counts).
// m must be complete with respect to comm.stream() (produced on it, or synchronised).
//
// Compiled (nvcc 13.0, sm_90); NOT YET RUN on a GPU (tests/cuda/test_cuda_exchange.cu compares
// it with the host exchange over comm::local_group on 1 to 6 ranks).
#include <cuda_runtime_api.h>

#include <algorithm>
#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "../../algorithms/exchange.hpp"
#include "../../algorithms/exchange_options.hpp"
#include "../../algorithms/global_selection.hpp"
#include "../../algorithms/sgd.hpp"
#include "../../algorithms/sparse_sum.hpp"
#include "../../algorithms/traffic.hpp"
#include "../../comm/communicator.hpp"
#include "../../detail/bits.hpp"
#include "../../error.hpp"
#include "../compact.cuh"
#include "../error.cuh"
#include "../launch.cuh"
#include "../memory.cuh"
#include "../sparse_vector.cuh"
#include "../tuning.cuh"
#include "device_communicator.cuh"

namespace gradcomp::cuda::detail::exchange {

// ---- the wire (host side): sizes and the host's counts

template <class T>
struct wire {
  static std::size_t index_bytes(std::size_t len) { return gradcomp::detail::region_index_bytes(len); }
  static bool dense(std::size_t c, std::size_t len) { return c > 0 && gradcomp::detail::prefer_dense<T>(c, len); }
  /// The host's entries() of a block of c entries: len once it would be held dense.
  static std::size_t entries(std::size_t c, std::size_t len) { return dense(c, len) ? len : c; }
  /// The bytes the host counts for it (gc::detail::block_bytes).
  static std::size_t counted(std::size_t c, std::size_t len) { return gradcomp::detail::block_bytes<T>(c, len); }
  /// The bytes sent here (see the top of the file).
  static std::size_t size(std::size_t c, std::size_t len) {
    if (c == 0) return 0;
    if (dense(c, len)) return len * sizeof(T);
    const std::size_t pairs = c * (index_bytes(len) + sizeof(T));
    return pairs == len * sizeof(T) ? pairs + 1 : pairs;
  }
  /// What a block of `bytes` of a region of len is.
  struct shape {
    bool dense = false;
    std::size_t count = 0;    // entries sent (dense: len)
    std::size_t entries = 0;  // the host's entries()
    std::size_t counted = 0;  // the host's bytes
  };
  static shape of(std::size_t bytes, std::size_t len, const char* where, int from) {
    if (bytes == 0) return {};
    if (bytes == len * sizeof(T)) return {true, len, len, counted(len, len)};
    const std::size_t c = bytes / (index_bytes(len) + sizeof(T));
    if (c == 0 || c > len || size(c, len) != bytes)
      gradcomp::detail::fail(where, "rank ", from, " sent a block of ", bytes, " bytes for a region of ", len, " elements");
    return {false, c, c, counted(c, len)};
  }
};

// ---- device helpers

template <class V>
__device__ inline V load(const std::byte* p) {
  V v;
  memcpy(&v, p, sizeof v);
  return v;
}

template <class V>
__device__ inline void store(std::byte* p, V v) {
  memcpy(p, &v, sizeof v);
}

__device__ inline std::size_t load_index(const std::byte* p, unsigned index_bytes) {
  return index_bytes == 4 ? static_cast<std::size_t>(load<std::uint32_t>(p)) : static_cast<std::size_t>(load<std::uint64_t>(p));
}

__device__ inline void store_index(std::byte* p, std::size_t i, unsigned index_bytes) {
  if (index_bytes == 4)
    store(p, static_cast<std::uint32_t>(i));
  else
    store(p, static_cast<std::uint64_t>(i));
}

/// offsets[r] = the first entry of the message with index >= starts[r] (r <= n).
template <class Index>
__global__ void region_offsets_kernel(const Index* indices, std::size_t nnz, const std::uint64_t* starts, int n,
                                      std::uint64_t* offsets) {
  const std::size_t r = global_thread();
  if (r > static_cast<std::size_t>(n)) return;
  std::size_t lo = 0, hi = nnz;
  while (lo < hi) {
    const std::size_t mid = lo + (hi - lo) / 2;
    if (static_cast<std::uint64_t>(indices[mid]) < starts[r])
      lo = mid + 1;
    else
      hi = mid;
  }
  offsets[r] = lo;
}

/// The message's entries [lo, lo + c) of the region starting at begin, as a block: dense
/// (into zeroed len values) or sparse (values, then relative indices).
template <class T, class Index>
__global__ void pack_message_kernel(const Index* indices, const T* values, std::size_t lo, std::size_t c,
                                    std::size_t begin, bool dense, unsigned index_bytes, std::byte* out) {
  for (std::size_t j = global_thread(); j < c; j += grid_threads()) {
    const std::size_t i = static_cast<std::size_t>(indices[lo + j]) - begin;
    const T v = gradcomp::detail::canonical_entry(values[lo + j]);
    if (dense) {
      store(out + i * sizeof(T), v);
    } else {
      store(out + j * sizeof(T), v);
      store_index(out + c * sizeof(T) + j * index_bytes, i, index_bytes);
    }
  }
}


/// The entries list[0, c) of a dense sum as a block (dense: into zeroed len values).
template <class T>
__global__ void pack_listed_kernel(const T* sum, const std::uint64_t* list, std::size_t c, bool dense,
                                   unsigned index_bytes, std::byte* out) {
  for (std::size_t j = global_thread(); j < c; j += grid_threads()) {
    const std::size_t i = static_cast<std::size_t>(list[j]);
    if (dense) {
      store(out + i * sizeof(T), sum[i]);
    } else {
      store(out + j * sizeof(T), sum[i]);
      store_index(out + c * sizeof(T) + j * index_bytes, i, index_bytes);
    }
  }
}

/// How a block enters a dense sum: assigned, or added as the lower or the upper operand.
enum class merge_mode : int { assign = 0, received_lower = 1, received_upper = 2 };

template <class T>
__device__ inline void merge_into(T& sum, T v, merge_mode mode) {
  if (mode == merge_mode::assign)
    sum = v;
  else if (mode == merge_mode::received_lower)
    sum = v + sum;
  else
    sum = sum + v;
}

/// The message's entries [lo, lo + c) (canonical) into sum[i - begin]; present[i - begin] = 1.
template <class T, class Index>
__global__ void scatter_message_kernel(const Index* indices, const T* values, std::size_t lo, std::size_t c,
                                       std::size_t begin, merge_mode mode, T* sum, std::uint8_t* present) {
  for (std::size_t j = global_thread(); j < c; j += grid_threads()) {
    const std::size_t i = static_cast<std::size_t>(indices[lo + j]) - begin;
    merge_into(sum[i], gradcomp::detail::canonical_entry(values[lo + j]), mode);
    if (present != nullptr) present[i] = 1;
  }
}

/// A received block into a dense sum: assigned, or added (the lower operand first).
template <class T>
__global__ void unpack_kernel(const std::byte* block, bool dense, std::size_t c, unsigned index_bytes, merge_mode mode,
                              T* sum, std::uint8_t* present) {
  for (std::size_t j = global_thread(); j < c; j += grid_threads()) {
    const T v = load<T>(block + j * sizeof(T));
    const std::size_t i = dense ? j : load_index(block + c * sizeof(T) + j * index_bytes, index_bytes);
    merge_into(sum[i], v, mode);
    if (present != nullptr) present[i] = 1;
  }
}

/// lower[i] = lower[i] + upper[i]: one addition of the summation tree.
template <class T>
__global__ void add_kernel(T* lower, const T* upper, std::size_t len) {
  for (std::size_t i = global_thread(); i < len; i += grid_threads()) lower[i] = lower[i] + upper[i];
}

/// A selected block (every nonzero value of a dense one, every entry of a sparse one) of the
/// region starting at begin: mean = value / ranks, flag = 1.
template <class T>
__global__ void deliver_kernel(const std::byte* block, bool dense, std::size_t c, unsigned index_bytes,
                               std::size_t begin, int ranks, T* mean, std::uint8_t* flags) {
  for (std::size_t j = global_thread(); j < c; j += grid_threads()) {
    const T v = load<T>(block + j * sizeof(T));
    if (dense && v == T(0)) continue;
    const std::size_t i = begin + (dense ? j : load_index(block + c * sizeof(T) + j * index_bytes, index_bytes));
    mean[i] = v / static_cast<T>(ranks);
    flags[i] = 1;
  }
}

/// 256-bin histogram of the next digit of the nonzero values' magnitude keys that share the
/// digits chosen so far: global_selection.hpp's count, on the device.
template <class T, class Key>
__global__ void histogram_kernel(const T* values, std::size_t len, Key prefix, Key mask, int shift,
                                 unsigned long long* hist) {
  __shared__ unsigned int local[gradcomp::detail::selection_bins];
  for (unsigned b = threadIdx.x; b < gradcomp::detail::selection_bins; b += blockDim.x) local[b] = 0;
  __syncthreads();
  for (std::size_t i = global_thread(); i < len; i += grid_threads()) {
    const T v = values[i];
    if (v == T(0)) continue;
    const Key key = gradcomp::detail::magnitude_key(v);
    if ((key & mask) == prefix)
      atomicAdd(&local[static_cast<unsigned>((key >> shift) & static_cast<Key>(gradcomp::detail::selection_bins - 1))], 1u);
  }
  __syncthreads();
  for (unsigned b = threadIdx.x; b < gradcomp::detail::selection_bins; b += blockDim.x)
    if (local[b] != 0) atomicAdd(&hist[b], static_cast<unsigned long long>(local[b]));
}

template <class C>
__global__ void counts_as_kernel(const unsigned long long* hist, C* out) {
  const unsigned b = threadIdx.x;
  if (b < gradcomp::detail::selection_bins) out[b] = static_cast<C>(hist[b]);
}

/// *count = the number of nonzero bytes in p[0, n).
template <class Byte>
__global__ void count_set_kernel(const Byte* p, std::size_t n, unsigned long long* count) {
  unsigned long long mine = 0;
  for (std::size_t i = global_thread(); i < n; i += grid_threads()) mine += p[i] != 0 ? 1 : 0;
  for (int offset = 16; offset > 0; offset /= 2) mine += __shfl_down_sync(0xffffffffu, mine, offset);
  if ((threadIdx.x & 31u) == 0 && mine != 0) atomicAdd(count, mine);
}

/// A nonzero value whose key is the rule's tie key.
template <class T, class Key>
struct is_tie {
  const T* values;
  Key equal;
  __device__ bool operator()(std::uint64_t i) const {
    const T v = values[i];
    return v != T(0) && gradcomp::detail::magnitude_key(v) == equal;
  }
};

/// global_selection.hpp's rule for one entry (the sparse exchange's take()): nonzero, and
/// everything, or key > above, or a tie at index <= last_tie (the quota-th tie kept).
template <class T, class Key>
struct keeps {
  const T* values;
  bool everything;
  Key above;
  bool ties;  // some ties are kept
  Key equal;
  std::uint64_t last_tie;
  __device__ bool operator()(std::uint64_t i) const {
    const T v = values[i];
    if (v == T(0)) return false;
    if (everything) return true;
    const Key key = gradcomp::detail::magnitude_key(v);
    return key > above || (ties && key == equal && i <= last_tie);
  }
};

/// flags[i] = keep(i); mean[i] = keep ? values[i] / ranks : 0 (recursive doubling's select).
template <class T, class Keep>
__global__ void select_dense_kernel(const T* values, std::size_t len, Keep keep, int ranks, T* mean,
                                    std::uint8_t* flags) {
  for (std::size_t i = global_thread(); i < len; i += grid_threads()) {
    const bool k = keep(i);
    flags[i] = k ? 1 : 0;
    mean[i] = k ? values[i] / static_cast<T>(ranks) : T(0);
  }
}

struct is_set {
  const std::uint8_t* bytes;
  __device__ bool operator()(std::uint64_t i) const { return bytes[i] != 0; }
};

/// Message entry j is outside the selection.
template <class Index>
struct unsent_at {
  const Index* indices;
  const std::uint8_t* selected;
  __device__ bool operator()(std::uint64_t j) const { return selected[static_cast<std::size_t>(indices[j])] == 0; }
};

template <class T, class Index>
__global__ void gather_unsent_kernel(const Index* indices, const T* values, const std::uint64_t* positions,
                                     std::size_t count, std::uint64_t* out_indices, T* out_values) {
  for (std::size_t q = global_thread(); q < count; q += grid_threads()) {
    const auto j = static_cast<std::size_t>(positions[q]);
    out_indices[q] = static_cast<std::uint64_t>(indices[j]);
    out_values[q] = values[j];  // as sent (a -0 returns as -0, as on the host)
  }
}

inline std::uint64_t read_u64(const std::uint64_t* device, cudaStream_t stream, const char* where) {
  std::uint64_t host = 0;
  check(cudaMemcpyAsync(&host, device, sizeof host, cudaMemcpyDeviceToHost, stream), where, "cudaMemcpyAsync");
  check(cudaStreamSynchronize(stream), where, "cudaStreamSynchronize");
  return host;
}

}  // namespace gradcomp::cuda::detail::exchange

namespace gradcomp::cuda {

/// EF-SGD's sparse exchanges on device memory (see the top of the file). One per rank; a
/// step is a collective.
template <std::floating_point T>
class sparse_exchange {
 public:
  using key_type = gradcomp::detail::uint_of<T>;

  sparse_exchange(exchange_options opt, std::size_t dim, std::size_t k) : opt_(opt), dim_(dim), k_(k) {
    if (opt.kind != exchange_kind::reduce_scatter && opt.kind != exchange_kind::recursive_doubling)
      gradcomp::detail::fail("cuda::sparse_exchange", "the exchange kind must be reduce_scatter or recursive_doubling");
    if (opt.global_k != exchange_options::keep_all && k == 0)
      gradcomp::detail::fail("cuda::sparse_exchange", "the global k is 0");
  }

  const exchange_options& options() const noexcept { return opt_; }
  std::size_t dim() const noexcept { return dim_; }
  /// The last applied step's messages and bytes (the host exchange's, message by message).
  std::span<const exchange_message> messages() const noexcept { return messages_; }
  traffic last_traffic() const noexcept { return traffic_; }
  /// The last applied step's selection S: ascending global indices, in device memory.
  std::span<const std::uint64_t> selection() const noexcept { return {selection_.data(), selection_count_}; }
  /// The reduce-scatter's region starts of the last applied step, and d (host; P + 1 values).
  std::span<const std::size_t> regions() const noexcept { return regions_; }
  /// The entries of this rank's last message that S left out (device; for return_unsent).
  std::span<const std::uint64_t> unsent_indices() const noexcept { return {unsent_index_.data(), unsent_count_}; }
  std::span<const T> unsent_values() const noexcept { return {unsent_value_.data(), unsent_count_}; }

  /// S on the host (synchronises the stream).
  std::vector<std::size_t> selection_to_host(cudaStream_t stream) const {
    std::vector<std::uint64_t> s(selection_count_);
    if (!s.empty())
      detail::check(cudaMemcpyAsync(s.data(), selection_.data(), s.size() * sizeof(std::uint64_t),
                                    cudaMemcpyDeviceToHost, stream),
                    "sparse_exchange", "cudaMemcpyAsync");
    detail::check(cudaStreamSynchronize(stream), "sparse_exchange", "cudaStreamSynchronize");
    return {s.begin(), s.end()};
  }

  /// Exchanges this rank's message m (status ok), or its failure or skip, with every rank.
  /// Returns skipped if any rank skipped; throws the same gc::error on every rank if any
  /// failed. Applied: mean (device, dim values) = the mean over ranks at S, 0 elsewhere;
  /// selection(), unsent_*(), messages() describe the step. Runs on comm.stream().
  template <comm::device_communicator Comm, class Index>
  step_status run(Comm& comm, gradcomp::detail::frame_status status, std::string_view error,
                  const cuda::sparse_vector<T, Index>& m, std::span<T> mean, const char* where) {
    where_ = where;
    pending_.clear();
    pending_traffic_ = {};
    const cudaStream_t stream = comm.stream();
    std::string why(error);
    std::size_t nnz = 0;
    if (status == gradcomp::detail::frame_status::ok) {
      try {
        if (m.dim() != dim_)
          gradcomp::detail::fail(where, "the message has dimension ", m.dim(), ", the scheme ", dim_);
        if (mean.size() != dim_) gradcomp::detail::fail(where, "mean has ", mean.size(), " values for dimension ", dim_);
        nnz = m.nnz(stream);
        if (nnz > m.capacity())
          gradcomp::detail::fail(where, "the message counts ", nnz, " entries in room for ", m.capacity());
      } catch (const gradcomp::error& e) {
        status = gradcomp::detail::frame_status::failed;
        why = e.what();
      }
    }
    if (const step_status s = exchange_statuses(comm, status, why); s == step_status::skipped) return s;
    if (opt_.kind == exchange_kind::reduce_scatter)
      reduce_scatter(comm, m, nnz, mean);
    else
      recursive_doubling(comm, m, nnz, mean);
    collect_unsent(m, nnz, stream);
    messages_.swap(pending_);
    traffic_ = pending_traffic_;
    using std::swap;
    swap(selection_, next_selection_);
    selection_count_ = next_count_;
    if (opt_.kind == exchange_kind::reduce_scatter) regions_ = bounds_;
    return step_status::applied;
  }

 private:
  using wire = detail::exchange::wire<T>;
  using rule_type = gradcomp::detail::selection_rule<key_type>;
  static constexpr unsigned threads = tuning::elementwise::block_threads;

  void record(const char* phase, int peer, bool sent, std::size_t nnz, std::size_t len, std::size_t bytes) {
    pending_.push_back({phase, peer, sent, nnz, len, bytes});
    (sent ? pending_traffic_.uplink : pending_traffic_.downlink) += bytes;
  }

  // ---- statuses

  template <class Comm>
  step_status exchange_statuses(Comm& comm, gradcomp::detail::frame_status status, const std::string& why) {
    std::vector<std::byte> frame(1, static_cast<std::byte>(status));
    if (status == gradcomp::detail::frame_status::failed) {
      const auto r = static_cast<std::uint32_t>(comm.rank());
      frame.resize(1 + sizeof r + why.size());
      std::memcpy(frame.data() + 1, &r, sizeof r);
      std::memcpy(frame.data() + 1 + sizeof r, why.data(), why.size());
    }
    gradcomp::comm::gathered_bytes all;
    cuda::comm::allgather_host_bytes(comm, frame, all, stage_, control_);
    bool failed = false, skipped = false;
    std::uint32_t failed_rank = 0;
    std::string what;
    for (int r = 0; r < all.ranks(); ++r) {
      const auto f = all.from(r);
      if (f.empty()) gradcomp::detail::fail(where_, "rank ", r, " sent an empty status frame");
      const auto s = static_cast<gradcomp::detail::frame_status>(f[0]);
      if (s == gradcomp::detail::frame_status::failed) {
        std::uint32_t fr = 0;
        if (f.size() < 1 + sizeof fr) gradcomp::detail::fail(where_, "rank ", r, " sent a malformed failure frame");
        std::memcpy(&fr, f.data() + 1, sizeof fr);
        if (!failed || fr < failed_rank) {
          failed = true;
          failed_rank = fr;
          what.assign(reinterpret_cast<const char*>(f.data() + 1 + sizeof fr), f.size() - 1 - sizeof fr);
        }
      } else if (s == gradcomp::detail::frame_status::skipped) {
        skipped = true;
      } else if (s != gradcomp::detail::frame_status::ok) {
        gradcomp::detail::fail(where_, "rank ", r, " sent a frame of unknown status ", static_cast<int>(f[0]));
      }
    }
    if (failed) gradcomp::detail::fail(where_, "rank ", failed_rank, " failed: ", what);
    return skipped ? step_status::skipped : step_status::applied;
  }

  // ---- shared pieces

  /// The most entries S can have: global_k (S is the global_k largest sums), or d (keep_all).
  std::size_t most_selected() const noexcept {
    return opt_.global_k == exchange_options::keep_all ? dim_ : std::min(dim_, k_);
  }

  void zero(void* p, std::size_t bytes, cudaStream_t stream) {
    if (bytes > 0) detail::check(cudaMemsetAsync(p, 0, bytes, stream), "sparse_exchange", "cudaMemsetAsync");
  }

  /// out[0, *count) = the i < n with keep(i), ascending; returns the count (synchronises).
  /// capacity: at most this many are kept (out holds that many).
  template <class Keep>
  std::size_t compact(std::size_t n, Keep keep, device_buffer<std::uint64_t>& out, cudaStream_t stream,
                      std::size_t capacity) {
    out.resize(std::max<std::size_t>(std::min(n, capacity), 1));
    count_.resize(1);
    const std::size_t bytes = detail::compact_indices_bytes<std::uint64_t>(n, keep, stream);
    temp_.resize(std::max<std::size_t>(bytes, 1));
    detail::compact_indices<std::uint64_t>(temp_.data(), bytes, n, keep, out.data(), count_.data(), stream);
    return static_cast<std::size_t>(detail::exchange::read_u64(count_.data(), stream, "sparse_exchange"));
  }

  /// The rule over the nonzero values[0, len): global_selection.hpp's rule with device histograms;
  /// reduce(counts) sums a round's counts over the ranks (or not).
  template <class Reduce>
  rule_type select(const T* values, std::size_t len, cudaStream_t stream, Reduce&& reduce) {
    if (opt_.global_k == exchange_options::keep_all) return rule_type{.everything = true};
    hist_.resize(gradcomp::detail::selection_bins);
    return gradcomp::detail::select_largest_from<key_type>(
        k_, [&](key_type prefix, key_type mask, int shift, std::span<double> counts) {
          zero(hist_.data(), hist_.size() * sizeof(unsigned long long), stream);
          if (len > 0) {
            detail::exchange::histogram_kernel<T, key_type>
                <<<detail::elementwise_grid(len), threads, 0, stream>>>(values, len, prefix, mask, shift, hist_.data());
            detail::check_launch("sparse_exchange", "histogram_kernel");
          }
          reduce(counts);
        });
  }

  /// The keep predicate for rule over values[0, len), with quota of its ties (the lowest
  /// indexed); ties_count: the ties among them (computed when the rule has a tie key).
  detail::exchange::keeps<T, key_type> keeper(const T* values, const rule_type& rule, std::uint64_t quota,
                                               std::size_t ties_count, cudaStream_t stream) {
    detail::exchange::keeps<T, key_type> k{values, rule.everything, rule.above, false, rule.equal, 0};
    const std::uint64_t take = std::min<std::uint64_t>(quota, ties_count);
    if (rule.has_equal && take > 0) {
      k.ties = true;
      k.last_tie = detail::exchange::read_u64(ties_.data() + (take - 1), stream, "sparse_exchange");
    }
    return k;
  }

  /// The ties of rule among the nonzero values[0, len), into ties_ (ascending); their count.
  std::size_t find_ties(const T* values, std::size_t len, const rule_type& rule, cudaStream_t stream) {
    if (!rule.has_equal) return 0;
    return compact(len, detail::exchange::is_tie<T, key_type>{values, rule.equal}, ties_, stream, len);
  }

  /// A dense sum's entries listed in list[0, c) as a block of a region of len, into out.
  void pack_listed(const T* sum, const std::uint64_t* list, std::size_t c, std::size_t len, std::byte* out,
                   cudaStream_t stream) {
    if (c == 0) return;
    const bool dense = wire::dense(c, len);
    if (dense) zero(out, len * sizeof(T), stream);
    detail::exchange::pack_listed_kernel<T><<<detail::elementwise_grid(c), threads, 0, stream>>>(
        sum, list, c, dense, static_cast<unsigned>(wire::index_bytes(len)), out);
    detail::check_launch("sparse_exchange", "pack_listed_kernel");
  }

  /// A received block into a dense sum (and presence).
  void unpack(const std::byte* block, const typename wire::shape& shape, std::size_t len,
              detail::exchange::merge_mode mode, T* sum, std::uint8_t* present, cudaStream_t stream) {
    if (shape.count == 0) return;
    detail::exchange::unpack_kernel<T><<<detail::elementwise_grid(shape.count), threads, 0, stream>>>(
        block, shape.dense, shape.count, static_cast<unsigned>(wire::index_bytes(len)), mode, sum, present);
    detail::check_launch("sparse_exchange", "unpack_kernel");
  }

  /// A selected block of the region [begin, begin + len) into mean and flags_.
  void deliver(const std::byte* block, const typename wire::shape& shape, std::size_t begin, std::size_t len, int ranks,
               T* mean, cudaStream_t stream) {
    if (shape.count == 0) return;
    detail::exchange::deliver_kernel<T><<<detail::elementwise_grid(shape.count), threads, 0, stream>>>(
        block, shape.dense, shape.count, static_cast<unsigned>(wire::index_bytes(len)), begin, ranks, mean,
        flags_.data());
    detail::check_launch("sparse_exchange", "deliver_kernel");
  }

  template <class Keep>
  void select_dense(const T* values, std::size_t len, Keep keep, int ranks, T* mean, cudaStream_t stream) {
    if (len == 0) return;
    detail::exchange::select_dense_kernel<T, Keep>
        <<<detail::elementwise_grid(len), threads, 0, stream>>>(values, len, keep, ranks, mean, flags_.data());
    detail::check_launch("sparse_exchange", "select_dense_kernel");
  }

  // ---- reduce-scatter

  void place_regions(int n, cudaStream_t stream) {
    bounds_.assign(static_cast<std::size_t>(n) + 1, 0);
    const std::size_t s = selection_count_, ranks = static_cast<std::size_t>(n);
    const bool balanced = opt_.balance == region_balance::previous_selection && s >= ranks;
    std::vector<std::uint64_t> at(ranks, 0);
    if (balanced) {
      for (std::size_t r = 1; r < ranks; ++r)
        detail::check(cudaMemcpyAsync(&at[r], selection_.data() + r * s / ranks, sizeof(std::uint64_t),
                                      cudaMemcpyDeviceToHost, stream),
                      "sparse_exchange", "cudaMemcpyAsync");
      detail::check(cudaStreamSynchronize(stream), "sparse_exchange", "cudaStreamSynchronize");
    }
    for (int r = 0; r < n; ++r)
      bounds_[static_cast<std::size_t>(r)] =
          balanced && r > 0 ? static_cast<std::size_t>(at[static_cast<std::size_t>(r)]) : gradcomp::comm::shard_of(dim_, n, r).begin;
    bounds_.back() = dim_;
  }

  std::size_t region_len(int r) const {
    return bounds_[static_cast<std::size_t>(r) + 1] - bounds_[static_cast<std::size_t>(r)];
  }

  /// offsets[r]: the message's first entry in region r (r <= n).
  template <class Index>
  std::vector<std::size_t> message_offsets(const cuda::sparse_vector<T, Index>& m, std::size_t nnz, int n,
                                           cudaStream_t stream) {
    std::vector<std::size_t> offsets(static_cast<std::size_t>(n) + 1, 0);
    if (nnz == 0) return offsets;
    std::vector<std::uint64_t> starts(bounds_.begin(), bounds_.end()), found(starts.size());
    starts_.resize(starts.size());
    offsets_.resize(starts.size());
    detail::check(cudaMemcpyAsync(starts_.data(), starts.data(), starts.size() * sizeof(std::uint64_t),
                                  cudaMemcpyHostToDevice, stream),
                  "sparse_exchange", "cudaMemcpyAsync");
    detail::exchange::region_offsets_kernel<Index><<<detail::elementwise_grid(starts.size()), threads, 0, stream>>>(
        m.indices(), nnz, starts_.data(), n, offsets_.data());
    detail::check_launch("sparse_exchange", "region_offsets_kernel");
    detail::check(cudaMemcpyAsync(found.data(), offsets_.data(), found.size() * sizeof(std::uint64_t),
                                  cudaMemcpyDeviceToHost, stream),
                  "sparse_exchange", "cudaMemcpyAsync");
    detail::check(cudaStreamSynchronize(stream), "sparse_exchange", "cudaStreamSynchronize");
    offsets.assign(found.begin(), found.end());
    return offsets;
  }

  template <class Comm, class Index>
  void reduce_scatter(Comm& comm, const cuda::sparse_vector<T, Index>& m, std::size_t nnz, std::span<T> mean) {
    const int n = comm.size(), me = comm.rank();
    const cudaStream_t stream = comm.stream();
    place_regions(n, stream);
    const auto offsets = message_offsets(m, nnz, n, stream);
    const auto count_in = [&](int r) {
      return offsets[static_cast<std::size_t>(r) + 1] - offsets[static_cast<std::size_t>(r)];
    };

    // Reduce: this rank's entries of region r go to rank r (its own stay here).
    std::vector<std::size_t> sizes(static_cast<std::size_t>(n), 0), at(static_cast<std::size_t>(n), 0);
    std::size_t total_bytes = 0;
    for (int r = 0; r < n; ++r) {
      const auto u = static_cast<std::size_t>(r);
      at[u] = total_bytes;
      if (r == me) continue;
      sizes[u] = wire::size(count_in(r), region_len(r));
      total_bytes += sizes[u];
      record("reduce", r, true, wire::entries(count_in(r), region_len(r)), region_len(r),
             wire::counted(count_in(r), region_len(r)));
    }
    send_.resize(std::max<std::size_t>(total_bytes, 1));
    for (int r = 0; r < n; ++r) {
      const auto u = static_cast<std::size_t>(r);
      const std::size_t c = count_in(r);
      if (r == me || c == 0) continue;
      const bool dense = wire::dense(c, region_len(r));
      if (dense) zero(send_.data() + at[u], sizes[u], stream);
      detail::exchange::pack_message_kernel<T, Index><<<detail::elementwise_grid(c), threads, 0, stream>>>(
          m.indices(), m.values(), offsets[u], c, bounds_[u], dense,
          static_cast<unsigned>(wire::index_bytes(region_len(r))), send_.data() + at[u]);
      detail::check_launch("sparse_exchange", "pack_message_kernel");
    }
    comm.alltoallv(std::span<const std::byte>(send_.data(), total_bytes), sizes, blocks_.receive());

    // The owner's P leaves added in the tree, dense. The tree is evaluated group by group with
    // a stack of subtrees (a binary counter: two of the same size are added, the lower first),
    // which makes the additions of summation_tree's rounds in log2(P') + 1 dense buffers.
    const std::size_t len = region_len(me), begin = bounds_[static_cast<std::size_t>(me)];
    std::vector<typename wire::shape> shapes(static_cast<std::size_t>(n));
    for (int j = 0; j < n; ++j) {
      if (j == me) continue;
      shapes[static_cast<std::size_t>(j)] = wire::of(blocks_.size(j), len, where_, j);
      record("reduce", j, false, shapes[static_cast<std::size_t>(j)].entries, len,
             shapes[static_cast<std::size_t>(j)].counted);
    }
    const gradcomp::detail::summation_tree tree(n);
    const auto depth = static_cast<std::size_t>(tree.rounds() + 1);
    leaves_.resize(std::max<std::size_t>(len * depth, 1));
    const auto slot = [&](std::size_t s) { return leaves_.data() + s * len; };
    const auto load = [&](int r, T* into, detail::exchange::merge_mode mode) {
      if (r != me) {
        unpack(blocks_.data() + blocks_.offset(r), shapes[static_cast<std::size_t>(r)], len, mode, into, nullptr, stream);
      } else if (count_in(me) > 0) {
        detail::exchange::scatter_message_kernel<T, Index><<<detail::elementwise_grid(count_in(me)), threads, 0, stream>>>(
            m.indices(), m.values(), offsets[static_cast<std::size_t>(me)], count_in(me), begin, mode, into, nullptr);
        detail::check_launch("sparse_exchange", "scatter_message_kernel");
      }
    };
    std::vector<int> stack;  // the groups each slot's subtree sums
    for (int v = 0; v < tree.groups; ++v) {
      T* group = slot(stack.size());
      zero(group, len * sizeof(T), stream);
      if (v < tree.folded) {  // ranks 2v and 2v + 1, the lower first
        load(2 * v, group, detail::exchange::merge_mode::assign);
        load(2 * v + 1, group, detail::exchange::merge_mode::received_upper);
      } else {
        load(v + tree.folded, group, detail::exchange::merge_mode::assign);
      }
      stack.push_back(1);
      while (stack.size() >= 2 && stack[stack.size() - 1] == stack[stack.size() - 2]) {
        if (len > 0) {
          detail::exchange::add_kernel<T><<<detail::elementwise_grid(len), threads, 0, stream>>>(
              slot(stack.size() - 2), slot(stack.size() - 1), len);
          detail::check_launch("sparse_exchange", "add_kernel");
        }
        stack.pop_back();
        stack.back() *= 2;
      }
    }
    const T* total = slot(0);

    // Select: the global Top-k of the sums (histograms summed over the ranks).
    const bool wide = dim_ > (std::size_t{1} << 24);  // counts need doubles past 2^24 (as the host)
    const auto reduce = [&](std::span<double> counts) {
      std::array<unsigned long long, gradcomp::detail::selection_bins> raw{};
      if (n > 1) {
        const std::size_t bins = gradcomp::detail::selection_bins;
        if (wide) {
          hist_double_.resize(bins);
          detail::exchange::counts_as_kernel<double><<<1, static_cast<unsigned>(bins), 0, stream>>>(hist_.data(), hist_double_.data());
          detail::check_launch("sparse_exchange", "counts_as_kernel");
          comm.allreduce_sum(std::span<double>(hist_double_.data(), bins));
          detail::check(cudaMemcpyAsync(counts.data(), hist_double_.data(), bins * sizeof(double),
                                        cudaMemcpyDeviceToHost, stream),
                        "sparse_exchange", "cudaMemcpyAsync");
          detail::check(cudaStreamSynchronize(stream), "sparse_exchange", "cudaStreamSynchronize");
        } else {
          std::array<float, gradcomp::detail::selection_bins> f{};
          hist_float_.resize(bins);
          detail::exchange::counts_as_kernel<float><<<1, static_cast<unsigned>(bins), 0, stream>>>(hist_.data(), hist_float_.data());
          detail::check_launch("sparse_exchange", "counts_as_kernel");
          comm.allreduce_sum(std::span<float>(hist_float_.data(), bins));
          detail::check(cudaMemcpyAsync(f.data(), hist_float_.data(), bins * sizeof(float), cudaMemcpyDeviceToHost,
                                        stream),
                        "sparse_exchange", "cudaMemcpyAsync");
          detail::check(cudaStreamSynchronize(stream), "sparse_exchange", "cudaStreamSynchronize");
          std::copy(f.begin(), f.end(), counts.begin());
        }
        const std::size_t bytes = bins * (wide ? sizeof(double) : sizeof(float));
        record("histogram", -1, true, bins, bins, bytes);
        record("histogram", -1, false, bins, bins, bytes);
      } else {
        detail::check(cudaMemcpyAsync(raw.data(), hist_.data(), sizeof raw, cudaMemcpyDeviceToHost, stream),
                      "sparse_exchange", "cudaMemcpyAsync");
        detail::check(cudaStreamSynchronize(stream), "sparse_exchange", "cudaStreamSynchronize");
        std::copy(raw.begin(), raw.end(), counts.begin());
      }
    };
    const rule_type rule = select(total, len, stream, reduce);
    const std::size_t ties = find_ties(total, len, rule, stream);
    const std::uint64_t quota = rule.splits_ties() && n > 1 ? tie_quota(comm, rule, ties) : rule.take_equal;
    const std::size_t chosen = compact(len, keeper(total, rule, quota, ties, stream), chosen_, stream, most_selected());

    // Gather every owner's selected sums.
    const std::size_t mine_bytes = wire::size(chosen, len);
    gather_send_.resize(std::max<std::size_t>(mine_bytes, 1));
    pack_listed(total, chosen_.data(), chosen, len, gather_send_.data(), stream);
    if (n > 1) record("gather", -1, true, wire::entries(chosen, len), len, wire::counted(chosen, len));
    comm.allgatherv(std::span<const std::byte>(gather_send_.data(), mine_bytes), blocks_.receive());
    flags_.resize(std::max<std::size_t>(dim_, 1));
    zero(flags_.data(), dim_, stream);
    zero(mean.data(), dim_ * sizeof(T), stream);
    for (int r = 0; r < n; ++r) {
      const auto shape = wire::of(blocks_.size(r), region_len(r), where_, r);
      if (r != me) record("gather", r, false, shape.entries, region_len(r), shape.counted);
      deliver(blocks_.data() + blocks_.offset(r), shape, bounds_[static_cast<std::size_t>(r)], region_len(r), n,
              mean.data(), stream);
    }
    next_count_ = compact(dim_, detail::exchange::is_set{flags_.data()}, next_selection_, stream, most_selected());
  }

  /// The share of the ties this rank takes: the ranks below it take theirs first.
  template <class Comm>
  std::uint64_t tie_quota(Comm& comm, const rule_type& rule, std::uint64_t mine) {
    gradcomp::comm::gathered_bytes counts;
    cuda::comm::allgather_host_bytes(comm, std::as_bytes(std::span<const std::uint64_t>(&mine, 1)), counts, stage_,
                                     control_);
    std::uint64_t below = 0;
    for (int r = 0; r < comm.rank(); ++r) {
      std::uint64_t c = 0;
      std::memcpy(&c, counts.from(r).data(), sizeof c);
      below += c;
    }
    record("tie", -1, true, 1, 1, sizeof(mine));
    for (int r = 0; r < comm.size(); ++r)
      if (r != comm.rank()) record("tie", r, false, 1, 1, sizeof(mine));
    const std::uint64_t left = rule.take_equal > below ? rule.take_equal - below : 0;
    return std::min(left, mine);
  }

  // ---- recursive doubling

  /// This rank's partial sum (sum_, present_, present_count_) as a block of the whole vector,
  /// into send_; returns its bytes.
  std::size_t pack_partial(cudaStream_t stream) {
    const std::size_t c = present_count_, bytes = wire::size(c, dim_);
    send_.resize(std::max<std::size_t>(bytes, 1));
    if (c == 0) return 0;
    if (wire::dense(c, dim_)) {
      detail::check(cudaMemcpyAsync(send_.data(), sum_.data(), dim_ * sizeof(T), cudaMemcpyDeviceToDevice, stream),
                    "sparse_exchange", "cudaMemcpyAsync");
    } else {
      const std::size_t listed = compact(dim_, detail::exchange::is_set{present_.data()}, list_, stream, c);
      pack_listed(sum_.data(), list_.data(), listed, dim_, send_.data(), stream);
    }
    return bytes;
  }

  /// One alltoallv of every rank in which this rank sends send_[0, bytes) to `to` (or
  /// nothing, -1); returns the block it received from `from` (empty if none).
  template <class Comm>
  std::span<const std::byte> swap_with(Comm& comm, int to, std::size_t bytes, int from) {
    std::vector<std::size_t> sizes(static_cast<std::size_t>(comm.size()), 0);
    if (to >= 0) sizes[static_cast<std::size_t>(to)] = bytes;
    comm.alltoallv(std::span<const std::byte>(send_.data(), to >= 0 ? bytes : 0), sizes, blocks_.receive());
    if (from < 0) return {};
    return blocks_.from(from);
  }

  /// Merges a received partial sum (lower or upper in the tree) and recounts the union.
  void merge(std::span<const std::byte> block, int from, bool received_is_lower, const char* phase, cudaStream_t stream) {
    const auto shape = wire::of(block.size(), dim_, where_, from);
    record(phase, from, false, shape.entries, dim_, shape.counted);
    unpack(block.data(), shape, dim_,
           received_is_lower ? detail::exchange::merge_mode::received_lower : detail::exchange::merge_mode::received_upper,
           sum_.data(), present_.data(), stream);
    count_.resize(1);
    zero(count_.data(), sizeof(std::uint64_t), stream);
    if (dim_ > 0) {
      detail::exchange::count_set_kernel<std::uint8_t><<<detail::elementwise_grid(dim_), threads, 0, stream>>>(
          present_.data(), dim_, reinterpret_cast<unsigned long long*>(count_.data()));
      detail::check_launch("sparse_exchange", "count_set_kernel");
    }
    present_count_ = static_cast<std::size_t>(detail::exchange::read_u64(count_.data(), stream, "sparse_exchange"));
  }

  template <class Comm, class Index>
  void recursive_doubling(Comm& comm, const cuda::sparse_vector<T, Index>& m, std::size_t nnz, std::span<T> mean) {
    const int n = comm.size(), me = comm.rank();
    const cudaStream_t stream = comm.stream();
    const gradcomp::detail::summation_tree tree(n);
    sum_.resize(std::max<std::size_t>(dim_, 1));
    present_.resize(std::max<std::size_t>(dim_, 1));
    flags_.resize(std::max<std::size_t>(dim_, 1));
    zero(sum_.data(), dim_ * sizeof(T), stream);
    zero(present_.data(), dim_, stream);
    if (nnz > 0) {
      detail::exchange::scatter_message_kernel<T, Index><<<detail::elementwise_grid(nnz), threads, 0, stream>>>(
          m.indices(), m.values(), 0, nnz, 0, detail::exchange::merge_mode::assign, sum_.data(), present_.data());
      detail::check_launch("sparse_exchange", "scatter_message_kernel");
    }
    present_count_ = nnz;
    const auto sent = [&](const char* phase, int to, std::size_t bytes) {
      (void)bytes;
      record(phase, to, true, wire::entries(present_count_, dim_), dim_, wire::counted(present_count_, dim_));
    };
    // Fold: rank 2v gives its message to 2v + 1.
    if (tree.folded > 0) {
      const bool gives = me < 2 * tree.folded && me % 2 == 0, takes = me < 2 * tree.folded && me % 2 == 1;
      std::size_t bytes = 0;
      if (gives) {
        bytes = pack_partial(stream);
        sent("fold", me + 1, bytes);
      }
      const auto got = swap_with(comm, gives ? me + 1 : -1, bytes, takes ? me - 1 : -1);
      if (takes) merge(got, me - 1, true, "fold", stream);
    }
    // Rounds: groups v and v ^ width swap partial sums; the lower group's comes first.
    for (int width = 1; width < tree.groups; width *= 2) {
      int partner = -1;
      std::size_t bytes = 0;
      if (tree.in_rounds(me)) {
        partner = tree.rank_of_group(tree.group_of(me) ^ width);
        bytes = pack_partial(stream);
        sent("round", partner, bytes);
      }
      const auto got = swap_with(comm, partner, bytes, partner);
      if (partner >= 0) merge(got, partner, tree.group_of(partner) < tree.group_of(me), "round", stream);
    }
    // Select (every rank in the rounds holds the whole sum), then hand S back to the ranks
    // that folded.
    std::size_t chosen = 0;
    if (tree.in_rounds(me)) {
      const rule_type rule = select(sum_.data(), dim_, stream, [&](std::span<double> counts) {
        std::array<unsigned long long, gradcomp::detail::selection_bins> raw{};
        detail::check(cudaMemcpyAsync(raw.data(), hist_.data(), sizeof raw, cudaMemcpyDeviceToHost, stream),
                      "sparse_exchange", "cudaMemcpyAsync");
        detail::check(cudaStreamSynchronize(stream), "sparse_exchange", "cudaStreamSynchronize");
        std::copy(raw.begin(), raw.end(), counts.begin());
      });
      const std::size_t ties = find_ties(sum_.data(), dim_, rule, stream);
      select_dense(sum_.data(), dim_, keeper(sum_.data(), rule, rule.take_equal, ties, stream), n, mean.data(), stream);
      chosen = compact(dim_, detail::exchange::is_set{flags_.data()}, next_selection_, stream, most_selected());
    }
    if (tree.folded > 0) {
      const bool gives = me < 2 * tree.folded && me % 2 == 1, takes = me < 2 * tree.folded && me % 2 == 0;
      std::size_t bytes = 0;
      if (gives) {
        bytes = wire::size(chosen, dim_);
        send_.resize(std::max<std::size_t>(bytes, 1));
        pack_listed(sum_.data(), next_selection_.data(), chosen, dim_, send_.data(), stream);
        record("unfold", me - 1, true, wire::entries(chosen, dim_), dim_, wire::counted(chosen, dim_));
      }
      const auto got = swap_with(comm, gives ? me - 1 : -1, bytes, takes ? me + 1 : -1);
      if (takes) {
        const auto shape = wire::of(got.size(), dim_, where_, me + 1);
        record("unfold", me + 1, false, shape.entries, dim_, shape.counted);
        zero(flags_.data(), dim_, stream);
        zero(mean.data(), dim_ * sizeof(T), stream);
        deliver(got.data(), shape, 0, dim_, n, mean.data(), stream);
        chosen = compact(dim_, detail::exchange::is_set{flags_.data()}, next_selection_, stream, most_selected());
      }
    }
    next_count_ = chosen;
  }

  // ---- after the exchange

  template <class Index>
  void collect_unsent(const cuda::sparse_vector<T, Index>& m, std::size_t nnz, cudaStream_t stream) {
    unsent_index_.resize(std::max<std::size_t>(nnz, 1));
    unsent_value_.resize(std::max<std::size_t>(nnz, 1));
    const std::size_t count =
        compact(nnz, detail::exchange::unsent_at<Index>{m.indices(), flags_.data()}, list_, stream, nnz);
    if (count > 0) {
      detail::exchange::gather_unsent_kernel<T, Index><<<detail::elementwise_grid(count), threads, 0, stream>>>(
          m.indices(), m.values(), list_.data(), count, unsent_index_.data(), unsent_value_.data());
      detail::check_launch("sparse_exchange", "gather_unsent_kernel");
    }
    unsent_count_ = count;
  }

  exchange_options opt_;
  std::size_t dim_;
  std::size_t k_;
  const char* where_ = "";
  std::vector<std::size_t> regions_;  // the last applied step's region starts (and d)
  std::vector<std::size_t> bounds_;   // this step's
  device_buffer<std::uint64_t> selection_, next_selection_;
  std::size_t selection_count_ = 0, next_count_ = 0;
  device_buffer<std::uint64_t> unsent_index_;
  device_buffer<T> unsent_value_;
  std::size_t unsent_count_ = 0;
  std::vector<exchange_message> messages_, pending_;
  traffic traffic_, pending_traffic_;
  // Scratch kept across steps.
  device_buffer<std::byte> send_, gather_send_, stage_, temp_;
  cuda::comm::device_blocks blocks_, control_;  // data blocks; statuses and tie counts
  device_buffer<T> leaves_, sum_;
  device_buffer<std::uint8_t> present_, flags_;
  std::size_t present_count_ = 0;
  device_buffer<std::uint64_t> chosen_, ties_, list_, starts_, offsets_, count_;
  device_buffer<unsigned long long> hist_;
  device_buffer<float> hist_float_;
  device_buffer<double> hist_double_;
};

}  // namespace gradcomp::cuda
