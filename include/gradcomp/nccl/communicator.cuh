#pragma once
// gc::nccl::communicator: a thin device communicator over NCCL (component gradcomp::nccl,
// find_package(gradcomp COMPONENTS nccl); docs/device-exchanges.md). It models
// gc::cuda::comm::device_communicator: blocking, stream-ordered collectives over device memory
// on one ncclComm_t and one cudaStream_t.
//
// NCCL has neither an all-gather nor an all-to-all of blocks of different sizes, and its
// all-reduce adds in an order of its choosing, so the contract's collectives are built from
// its primitives:
//   header      every operation starts with an ncclAllGather of a 32-byte header per rank
//               (operation, root, count, bytes), copied to the host: mismatched collectives
//               give the same gc::error on every rank, and every rank learns the block sizes
//               (one stream synchronisation per operation)
//   allgatherv  padded: ncclAllGather of blocks padded to the largest, then a copy of each
//               block into place; or send_recv: grouped ncclSend/ncclRecv with every other
//               rank. allgatherv_rule picks (below); a call may force either
//   alltoallv   grouped ncclSend/ncclRecv of one count per pair (the sizes), then of the blocks
//   broadcast   ncclBroadcast
//   allreduce_sum  rank order, the bits of comm::local_communicator: grouped ncclSend/ncclRecv
//               of shards (rank r receives shard r of every rank's vector), a kernel that adds
//               the n shards in rank order, an ncclAllGather of the sums (shards padded to the
//               largest: at most one value each). The bytes of a ring all-reduce.
//               allreduce_sum_nondeterministic is ncclAllReduce: faster, order unspecified.
//   barrier     the header exchange (every rank has reached it once it returns)
// NCCL errors become gc::error naming the call, with ncclGetErrorString and the
// communicator's ncclGetLastError.
//
// The padding rule. Padding wastes (max - size_r) bytes per rank on every link of the ring;
// grouped send/recv moves no padding but costs one message per peer (P - 1 latencies, and
// NCCL's point-to-point path is slower per byte than its ring). allgatherv_rule::choose takes
// padded when the padded total n * max is small (at most small_bytes: latency dominates) or
// when the padding is at most max_waste of the data (n * max - sum <= max_waste * sum);
// send_recv otherwise (one rank's block much larger than the others').
//
// Compiled (nvcc 13.0, sm_90, NCCL 2.28), NEVER RUN: no GPU where it was written. Its test is a
// one-rank smoke test (gradcomp_nccl_tests); NCCL refuses two ranks on one GPU, so the
// multi-rank device tests use gc::cuda::comm::thread_group, and this has never run with more
// than one rank.
#include <cuda_runtime_api.h>
#include <nccl.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "../comm/communicator.hpp"
#include "../cuda/comm/device_communicator.cuh"
#include "../cuda/error.cuh"
#include "../cuda/memory.cuh"
#include "../error.hpp"

namespace gradcomp::nccl {

using receiver = gradcomp::comm::receiver;

namespace detail {

/// Throws gc::error("gradcomp::nccl::communicator: <what> failed: <NCCL's string> (<last error>)").
inline void check(ncclResult_t result, const char* what, ncclComm_t comm = nullptr) {
  if (result == ncclSuccess) return;
  std::string last;
  if (comm != nullptr) {
    const char* text = ncclGetLastError(comm);
    if (text != nullptr && *text != '\0') last = std::string(" (") + text + ")";
  }
  gradcomp::detail::fail("nccl::communicator", what, " failed: ", ncclGetErrorString(result), last);
}

}  // namespace detail

/// How an allgatherv moves blocks of different sizes.
enum class allgatherv_method { padded, send_recv };

/// The rule that chooses it (see the top of the file).
struct allgatherv_rule {
  std::size_t small_bytes = std::size_t{64} << 10;  // padded while n * max is at most this
  double max_waste = 0.25;                          // or while n * max - sum <= max_waste * sum

  allgatherv_method choose(std::span<const std::size_t> sizes) const noexcept {
    std::size_t largest = 0, sum = 0;
    for (const std::size_t s : sizes) {
      largest = std::max(largest, s);
      sum += s;
    }
    const std::size_t padded = largest * sizes.size();
    if (padded <= small_bytes) return allgatherv_method::padded;
    return static_cast<double>(padded - sum) <= max_waste * static_cast<double>(sum) ? allgatherv_method::padded
                                                                                     : allgatherv_method::send_recv;
  }
};

class communicator {
 public:
  /// A new NCCL communicator: rank `rank` of `size`, all ranks with the same id
  /// (ncclGetUniqueId on one rank, sent to the others by other means). Set the device
  /// (cudaSetDevice) first. stream: where the collectives run (null: a new non-blocking stream
  /// owned by this object). A collective: every rank constructs its communicator.
  communicator(const ncclUniqueId& id, int rank, int size, cudaStream_t stream = nullptr) {
    if (size < 1 || rank < 0 || rank >= size)
      gradcomp::detail::fail("nccl::communicator", "rank ", rank, " is not in [0, ", size, ")");
    detail::check(ncclCommInitRank(&comm_, size, id, rank), "ncclCommInitRank");
    owns_comm_ = true;
    adopt(stream);
  }

  /// Borrows an existing NCCL communicator (not destroyed here) and runs on `stream` (null:
  /// a new non-blocking stream owned by this object).
  communicator(ncclComm_t comm, cudaStream_t stream) : comm_(comm) {
    if (comm == nullptr) gradcomp::detail::fail("nccl::communicator", "the ncclComm_t is null");
    adopt(stream);
  }

  communicator(const communicator&) = delete;
  communicator& operator=(const communicator&) = delete;

  ~communicator() {
    if (stream_ != nullptr) cudaStreamSynchronize(stream_);
    if (owns_comm_ && comm_ != nullptr) ncclCommDestroy(comm_);
    if (owns_stream_ && stream_ != nullptr) cudaStreamDestroy(stream_);
  }

  int rank() const noexcept { return rank_; }
  int size() const noexcept { return size_; }
  cudaStream_t stream() const noexcept { return stream_; }
  ncclComm_t handle() const noexcept { return comm_; }

  /// The rule allgatherv uses to choose between padding and send/recv.
  allgatherv_rule& rule() noexcept { return rule_; }
  /// The method the last allgatherv used (for tests and traces).
  allgatherv_method last_allgatherv_method() const noexcept { return last_method_; }

  /// Returns once every rank has reached it (the header exchange synchronises the stream).
  void barrier() { headers({op(gradcomp::comm::detail::collective_op::barrier), 0, 0}, 0); }

  void allgatherv(std::span<const std::byte> mine, receiver receive) { allgather_blocks(mine, receive, nullptr); }

  /// The same, with the method forced (tests; a caller that knows its sizes).
  void allgatherv(std::span<const std::byte> mine, receiver receive, allgatherv_method method) {
    allgather_blocks(mine, receive, &method);
  }

  void alltoallv(std::span<const std::byte> blocks, std::span<const std::size_t> counts, receiver receive) {
    const char* where = "nccl::communicator::alltoallv";
    std::size_t total = 0;
    for (const std::size_t c : counts) total += c;
    const std::uint64_t described = total == blocks.size() ? counts.size() : gradcomp::comm::detail::inconsistent_blocks;
    headers({op(gradcomp::comm::detail::collective_op::alltoallv), 0, described}, blocks.size());
    // The headers agree, so every rank has size() counts. One count to each peer.
    const int n = size_;
    const auto me = static_cast<std::size_t>(rank_);
    std::vector<std::uint64_t> mine(counts.begin(), counts.end());
    counts_send_.resize(static_cast<std::size_t>(n));
    counts_recv_.resize(static_cast<std::size_t>(n));
    cuda::detail::check(cudaMemcpyAsync(counts_send_.data(), mine.data(), mine.size() * sizeof(std::uint64_t),
                                        cudaMemcpyHostToDevice, stream_),
                        where, "cudaMemcpyAsync");
    group([&] {
      for (int j = 0; j < n; ++j) {
        if (j == rank_) continue;
        detail::check(ncclSend(counts_send_.data() + j, 1, ncclUint64, j, comm_, stream_), "ncclSend", comm_);
        detail::check(ncclRecv(counts_recv_.data() + j, 1, ncclUint64, j, comm_, stream_), "ncclRecv", comm_);
      }
    });
    std::vector<std::uint64_t> from(static_cast<std::size_t>(n), 0);
    cuda::detail::check(cudaMemcpyAsync(from.data(), counts_recv_.data(), from.size() * sizeof(std::uint64_t),
                                        cudaMemcpyDeviceToHost, stream_),
                        where, "cudaMemcpyAsync");
    cuda::detail::check(cudaStreamSynchronize(stream_), where, "cudaStreamSynchronize");
    std::vector<std::size_t> sizes(from.begin(), from.end());
    sizes[me] = counts[me];
    std::exception_ptr local;
    std::byte* dst = receive_into(receive, sizes, local);
    std::vector<std::size_t> send_at(static_cast<std::size_t>(n), 0), recv_at(static_cast<std::size_t>(n), 0);
    for (std::size_t j = 1; j < send_at.size(); ++j) {
      send_at[j] = send_at[j - 1] + counts[j - 1];
      recv_at[j] = recv_at[j - 1] + sizes[j - 1];
    }
    group([&] {
      for (int j = 0; j < n; ++j) {
        const auto u = static_cast<std::size_t>(j);
        if (j == rank_) continue;
        if (counts[u] > 0)
          detail::check(ncclSend(blocks.data() + send_at[u], counts[u], ncclUint8, j, comm_, stream_), "ncclSend", comm_);
        if (sizes[u] > 0) detail::check(ncclRecv(dst + recv_at[u], sizes[u], ncclUint8, j, comm_, stream_), "ncclRecv", comm_);
      }
    });
    if (sizes[me] > 0)
      cuda::detail::check(cudaMemcpyAsync(dst + recv_at[me], blocks.data() + send_at[me], sizes[me],
                                          cudaMemcpyDeviceToDevice, stream_),
                          where, "cudaMemcpyAsync");
    if (local) std::rethrow_exception(local);
  }

  /// root's bytes to every other rank; root's receiver is not called.
  void broadcast(std::span<const std::byte> mine, receiver receive, int root) {
    const bool is_root = rank_ == root;
    const auto all = headers({op(gradcomp::comm::detail::collective_op::broadcast),
                              gradcomp::comm::detail::described_root(root), is_root ? mine.size() : 0},
                             is_root ? mine.size() : 0);
    const std::size_t bytes = all[static_cast<std::size_t>(root)].bytes;
    std::exception_ptr local;
    std::byte* dst = nullptr;
    if (!is_root) {
      std::vector<std::size_t> sizes(static_cast<std::size_t>(size_), 0);
      sizes[static_cast<std::size_t>(root)] = bytes;
      dst = receive_into(receive, sizes, local);
    }
    if (bytes > 0) {
      // In place on the root (sendbuff == recvbuff): NCCL reads it there and writes nothing.
      void* buffer = is_root ? const_cast<std::byte*>(mine.data()) : static_cast<void*>(dst);
      detail::check(ncclBroadcast(buffer, buffer, bytes, ncclUint8, root, comm_, stream_), "ncclBroadcast", comm_);
    }
    if (local) std::rethrow_exception(local);
  }

  /// values = the sum over ranks, added in rank order (((v_0 + v_1) + v_2) + ...).
  void allreduce_sum(std::span<float> values) { ordered_sum(values); }
  void allreduce_sum(std::span<double> values) { ordered_sum(values); }

  /// values = the sum over ranks by ncclAllReduce: NCCL's order, which may differ between
  /// runs, ranks counts and NCCL versions. Not what the schemes use (their results would
  /// then depend on the transport); for a caller that does not need the same bits.
  void allreduce_sum_nondeterministic(std::span<float> values) { unordered_sum(values); }
  void allreduce_sum_nondeterministic(std::span<double> values) { unordered_sum(values); }

 private:
  /// One rank's header: op_description and the bytes it brings.
  struct header {
    std::uint64_t op = 0, root = 0, count = 0, bytes = 0;
  };

  static std::uint64_t op(gradcomp::comm::detail::collective_op o) { return static_cast<std::uint64_t>(o); }

  void adopt(cudaStream_t stream) {
    detail::check(ncclCommUserRank(comm_, &rank_), "ncclCommUserRank", comm_);
    detail::check(ncclCommCount(comm_, &size_), "ncclCommCount", comm_);
    if (stream == nullptr) {
      cuda::detail::check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "nccl::communicator",
                          "cudaStreamCreateWithFlags");
      owns_stream_ = true;
    } else {
      stream_ = stream;
    }
  }

  /// Runs the NCCL calls of f between ncclGroupStart and ncclGroupEnd (always ended).
  template <class F>
  void group(F&& f) {
    detail::check(ncclGroupStart(), "ncclGroupStart", comm_);
    std::exception_ptr failed;
    try {
      f();
    } catch (...) {
      failed = std::current_exception();
    }
    const ncclResult_t ended = ncclGroupEnd();
    if (failed) std::rethrow_exception(failed);
    detail::check(ended, "ncclGroupEnd", comm_);
  }

  /// Every rank's header on the host; throws the same gc::error on every rank unless the
  /// operations match. Synchronises the stream.
  std::vector<header> headers(gradcomp::comm::detail::op_description what, std::uint64_t bytes) {
    const char* where = "nccl::communicator";
    const header mine{what.op, what.root, what.count, bytes};
    header_send_.resize(1);
    header_recv_.resize(static_cast<std::size_t>(size_));
    cuda::detail::check(cudaMemcpyAsync(header_send_.data(), &mine, sizeof mine, cudaMemcpyHostToDevice, stream_), where,
                        "cudaMemcpyAsync");
    static_assert(sizeof(header) == 4 * sizeof(std::uint64_t));
    detail::check(ncclAllGather(header_send_.data(), header_recv_.data(), 4, ncclUint64, comm_, stream_),
                  "ncclAllGather (headers)", comm_);
    std::vector<header> all(static_cast<std::size_t>(size_));
    cuda::detail::check(
        cudaMemcpyAsync(all.data(), header_recv_.data(), all.size() * sizeof(header), cudaMemcpyDeviceToHost, stream_),
        where, "cudaMemcpyAsync");
    cuda::detail::check(cudaStreamSynchronize(stream_), where, "cudaStreamSynchronize");
    std::vector<gradcomp::comm::detail::op_description> described(all.size());
    for (std::size_t r = 0; r < all.size(); ++r) described[r] = {all[r].op, all[r].root, all[r].count};
    const std::string mismatch = gradcomp::comm::detail::mismatch_of(described, size_);
    if (!mismatch.empty()) gradcomp::detail::fail("nccl::communicator", mismatch);
    return all;
  }

  /// Asks the receiver for memory; if it throws or gives too little, the data goes to
  /// scratch memory (the other ranks still complete) and `local` holds the error.
  std::byte* receive_into(const receiver& receive, std::span<const std::size_t> sizes, std::exception_ptr& local) {
    std::size_t total = 0;
    for (const std::size_t s : sizes) total += s;
    try {
      const std::span<std::byte> dst = receive(sizes);
      if (dst.size() < total)
        gradcomp::detail::fail("nccl::communicator", "the receiver gave ", dst.size(), " bytes for ", total,
                               " bytes of blocks");
      return dst.data();
    } catch (...) {
      local = std::current_exception();
      fallback_.resize(std::max<std::size_t>(total, 1));
      return fallback_.data();
    }
  }

  void allgather_blocks(std::span<const std::byte> mine, const receiver& receive, const allgatherv_method* forced) {
    const char* where = "nccl::communicator::allgatherv";
    const auto all = headers({op(gradcomp::comm::detail::collective_op::allgatherv), 0, mine.size()}, mine.size());
    const int n = size_;
    std::vector<std::size_t> sizes(all.size()), at(all.size(), 0);
    for (std::size_t r = 0; r < all.size(); ++r) sizes[r] = all[r].bytes;
    for (std::size_t r = 1; r < at.size(); ++r) at[r] = at[r - 1] + sizes[r - 1];
    std::exception_ptr local;
    std::byte* dst = receive_into(receive, sizes, local);
    last_method_ = forced != nullptr ? *forced : rule_.choose(sizes);
    const auto me = static_cast<std::size_t>(rank_);
    if (last_method_ == allgatherv_method::padded) {
      const std::size_t largest = *std::max_element(sizes.begin(), sizes.end());
      if (largest > 0) {
        pad_send_.resize(largest);
        pad_recv_.resize(largest * static_cast<std::size_t>(n));
        if (!mine.empty())
          cuda::detail::check(
              cudaMemcpyAsync(pad_send_.data(), mine.data(), mine.size(), cudaMemcpyDeviceToDevice, stream_), where,
              "cudaMemcpyAsync");
        detail::check(ncclAllGather(pad_send_.data(), pad_recv_.data(), largest, ncclUint8, comm_, stream_),
                      "ncclAllGather", comm_);
        for (std::size_t r = 0; r < sizes.size(); ++r)
          if (sizes[r] > 0)
            cuda::detail::check(cudaMemcpyAsync(dst + at[r], pad_recv_.data() + r * largest, sizes[r],
                                                cudaMemcpyDeviceToDevice, stream_),
                                where, "cudaMemcpyAsync");
      }
    } else {
      group([&] {
        for (int j = 0; j < n; ++j) {
          const auto u = static_cast<std::size_t>(j);
          if (j == rank_) continue;
          if (!mine.empty())
            detail::check(ncclSend(mine.data(), mine.size(), ncclUint8, j, comm_, stream_), "ncclSend", comm_);
          if (sizes[u] > 0) detail::check(ncclRecv(dst + at[u], sizes[u], ncclUint8, j, comm_, stream_), "ncclRecv", comm_);
        }
      });
      if (!mine.empty())
        cuda::detail::check(cudaMemcpyAsync(dst + at[me], mine.data(), mine.size(), cudaMemcpyDeviceToDevice, stream_),
                            where, "cudaMemcpyAsync");
    }
    if (local) std::rethrow_exception(local);
  }

  template <class T>
  void ordered_sum(std::span<T> values) {
    const char* where = "nccl::communicator::allreduce_sum";
    const std::size_t len = values.size();
    headers({op(gradcomp::comm::detail::allreduce_op<T>()), 0, len}, len * sizeof(T));
    const int n = size_;
    if (len == 0 || n == 1) return;  // one rank: the sum is its vector
    const auto mine = gradcomp::comm::shard_of(len, n, rank_);
    // 1: shard r of every rank's vector to rank r, in rank order in the scratch.
    scratch_.resize(std::max<std::size_t>(mine.size() * static_cast<std::size_t>(n) * sizeof(T), 1));
    T* shards = reinterpret_cast<T*>(scratch_.data());
    group([&] {
      for (int j = 0; j < n; ++j) {
        if (j == rank_) continue;
        const auto theirs = gradcomp::comm::shard_of(len, n, j);
        if (theirs.size() > 0)
          detail::check(ncclSend(values.data() + theirs.begin, theirs.size() * sizeof(T), ncclUint8, j, comm_, stream_),
                        "ncclSend", comm_);
        if (mine.size() > 0)
          detail::check(ncclRecv(shards + static_cast<std::size_t>(j) * mine.size(), mine.size() * sizeof(T), ncclUint8, j,
                                 comm_, stream_),
                        "ncclRecv", comm_);
      }
    });
    if (mine.size() > 0)
      cuda::detail::check(cudaMemcpyAsync(shards + static_cast<std::size_t>(rank_) * mine.size(), values.data() + mine.begin,
                                          mine.size() * sizeof(T), cudaMemcpyDeviceToDevice, stream_),
                          where, "cudaMemcpyAsync");
    // 2: the n shards added in rank order, into this rank's shard.
    cuda::comm::detail::sum_in_rank_order(shards, n, mine.size(), values.data() + mine.begin, stream_,
                                          "nccl::communicator::allreduce_sum");
    // 3: every owner's sums to every rank: shards padded to the largest (shard 0's).
    const std::size_t largest = gradcomp::comm::shard_of(len, n, 0).size();
    pad_send_.resize(largest * sizeof(T));
    pad_recv_.resize(largest * sizeof(T) * static_cast<std::size_t>(n));
    if (mine.size() > 0)
      cuda::detail::check(cudaMemcpyAsync(pad_send_.data(), values.data() + mine.begin, mine.size() * sizeof(T),
                                          cudaMemcpyDeviceToDevice, stream_),
                          where, "cudaMemcpyAsync");
    detail::check(ncclAllGather(pad_send_.data(), pad_recv_.data(), largest * sizeof(T), ncclUint8, comm_, stream_),
                  "ncclAllGather", comm_);
    for (int j = 0; j < n; ++j) {
      const auto theirs = gradcomp::comm::shard_of(len, n, j);
      if (j == rank_ || theirs.size() == 0) continue;
      cuda::detail::check(cudaMemcpyAsync(values.data() + theirs.begin,
                                          pad_recv_.data() + static_cast<std::size_t>(j) * largest * sizeof(T),
                                          theirs.size() * sizeof(T), cudaMemcpyDeviceToDevice, stream_),
                          where, "cudaMemcpyAsync");
    }
  }

  template <class T>
  void unordered_sum(std::span<T> values) {
    headers({op(gradcomp::comm::detail::allreduce_op<T>()), 0, values.size()}, values.size_bytes());
    if (values.empty()) return;
    const ncclDataType_t type = std::is_same_v<T, float> ? ncclFloat32 : ncclFloat64;
    detail::check(ncclAllReduce(values.data(), values.data(), values.size(), type, ncclSum, comm_, stream_),
                  "ncclAllReduce", comm_);
  }

  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  bool owns_comm_ = false;
  bool owns_stream_ = false;
  int rank_ = 0;
  int size_ = 1;
  allgatherv_rule rule_;
  allgatherv_method last_method_ = allgatherv_method::padded;
  cuda::device_buffer<header> header_send_, header_recv_;
  cuda::device_buffer<std::uint64_t> counts_send_, counts_recv_;
  cuda::device_buffer<std::byte> pad_send_, pad_recv_, scratch_, fallback_;
};

}  // namespace gradcomp::nccl
