#pragma once
// The device exchange contract: collectives over device memory and a CUDA stream, for
// schemes whose messages never leave the GPU (docs/device-exchanges.md). It mirrors the host
// contract (comm/communicator.hpp, docs/backends.md "The exchange contract") with three
// differences:
//
//   - Memory: every span a collective takes or a receiver returns is device memory (of the
//     communicator's device). Counts (alltoallv's per-rank bytes) stay on the host.
//   - Blocking, stream-ordered: each call returns once every rank's sizes are known, the
//     headers agree and the data movement is enqueued on stream(). The data is there for work
//     enqueued on stream() afterwards; the host reads it only after synchronising the stream.
//     Work enqueued on stream() after the call may overwrite the send memory (the
//     communicator makes such work wait until the other ranks have read it); writes from
//     another stream or the host must first synchronise with stream().
//   - Only the collectives the device schemes need: barrier, allgatherv, alltoallv,
//     broadcast, allreduce_sum (no gatherv, no requests: start/wait would only move the
//     host's wait from one call to the next, since the sizes are needed on the host first).
//
//   c.rank(), c.size(), c.stream()
//   c.barrier()                                every stream waits for every rank's earlier work
//   c.allgatherv(mine, receive)                every rank's block, in rank order
//   c.alltoallv(blocks, counts, receive)       counts[j] bytes of blocks (packed in rank order)
//                                              to rank j; from every rank its block for this one
//   c.broadcast(mine, receive, root)           root's bytes to every other rank (root: no receive)
//   c.allreduce_sum(values)                    float or double, added in rank order
//                                              (((v_0 + v_1) + v_2) + ...): the bits of
//                                              comm::local_communicator and the MPI communicator
//
// receive(sizes) is gc::comm::receiver: called once on the host with the bytes that come from
// each rank, it returns device memory of at least their sum (rank r's block at offset
// sizes[0] + ... + sizes[r - 1]); it may allocate (cudaMalloc, or stream-ordered on stream()).
//
// Errors a caller can cause (a rank calls another collective, another root, another length
// for allreduce_sum, alltoallv counts for another group size or that do not add up to the
// bytes) give the same gc::error on every rank: every implementation first exchanges a small
// header per operation (comm::detail::op_description) and moves data only once the headers
// agree. A failure only one rank sees (its receiver threw, or gave too little memory) fails
// that rank's call only; the others complete (the failing rank receives into scratch memory or
// nothing).
#include <cuda_runtime_api.h>

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "../../comm/communicator.hpp"
#include "../../error.hpp"
#include "../error.cuh"
#include "../launch.cuh"
#include "../memory.cuh"
#include "../tuning.cuh"

namespace gradcomp::cuda::comm {

/// Where a variable-size device collective puts what it receives (device memory).
using receiver = gradcomp::comm::receiver;

/// The device exchange contract (see the header comment).
template <class C>
concept device_communicator = requires(C& c, const C& cc, std::span<const std::byte> bytes,
                                       std::span<const std::size_t> counts, receiver receive, std::span<float> f,
                                       std::span<double> d, int root) {
  { cc.rank() } -> std::same_as<int>;
  { cc.size() } -> std::same_as<int>;
  { cc.stream() } -> std::same_as<cudaStream_t>;
  c.barrier();
  c.allgatherv(bytes, receive);
  c.alltoallv(bytes, counts, receive);
  c.broadcast(bytes, receive, root);
  c.allreduce_sum(f);
  c.allreduce_sum(d);
};

/// Device blocks from every rank of a collective: rank r's block is at offset(r), size(r)
/// bytes, in device memory (gc::comm::gathered_bytes with the data on the device). The
/// storage grows and is kept across calls.
class device_blocks {
 public:
  int ranks() const noexcept { return static_cast<int>(sizes_.size()); }
  std::size_t size(int r) const { return sizes_.at(static_cast<std::size_t>(r)); }
  std::size_t offset(int r) const { return offsets_.at(static_cast<std::size_t>(r)); }
  std::size_t total() const noexcept { return offsets_.empty() ? 0 : offsets_.back(); }
  std::span<const std::size_t> sizes() const noexcept { return sizes_; }
  /// Rank r's block (device memory).
  std::span<const std::byte> from(int r) const { return {data_.data() + offset(r), size(r)}; }
  const std::byte* data() const noexcept { return data_.data(); }

  /// Sets the blocks' sizes; the storage grows (cudaMalloc) only past its capacity.
  void resize(std::span<const std::size_t> sizes) {
    sizes_.assign(sizes.begin(), sizes.end());
    offsets_.assign(sizes.size() + 1, 0);
    for (std::size_t r = 0; r < sizes.size(); ++r) offsets_[r + 1] = offsets_[r] + sizes[r];
    data_.resize(std::max<std::size_t>(offsets_.back(), 1));
  }

  /// A receiver that fills *this.
  receiver receive() {
    return [this](std::span<const std::size_t> sizes) {
      resize(sizes);
      return std::span<std::byte>(data_.data(), total());
    };
  }

 private:
  device_buffer<std::byte> data_;
  std::vector<std::size_t> sizes_;
  std::vector<std::size_t> offsets_;
};

namespace detail {

/// out[i] = ((shards[0][i] + shards[1][i]) + shards[2][i]) + ..., the n shards of len values
/// stored one after the other: the rank-order sum of gc::comm::detail::sum_in_rank_order.
template <class T>
__global__ void sum_in_rank_order_kernel(const T* shards, int n, std::size_t len, T* out) {
  for (std::size_t i = cuda::detail::global_thread(); i < len; i += cuda::detail::grid_threads()) {
    T sum = shards[i];
    for (int r = 1; r < n; ++r) sum = sum + shards[static_cast<std::size_t>(r) * len + i];
    out[i] = sum;
  }
}

template <class T>
void sum_in_rank_order(const T* shards, int n, std::size_t len, T* out, cudaStream_t stream, const char* where) {
  if (len == 0) return;
  sum_in_rank_order_kernel<T><<<cuda::detail::elementwise_grid(len), tuning::elementwise::block_threads, 0, stream>>>(
      shards, n, len, out);
  cuda::detail::check_launch(where, "sum_in_rank_order_kernel");
}

/// A device copy of host bytes, stream-ordered (the host bytes are read before it returns).
inline void stage(std::span<const std::byte> host, device_buffer<std::byte>& device, cudaStream_t stream,
                  const char* where) {
  device.resize(std::max<std::size_t>(host.size(), 1));
  if (!host.empty())
    cuda::detail::check(cudaMemcpyAsync(device.data(), host.data(), host.size(), cudaMemcpyHostToDevice, stream), where,
                        "cudaMemcpyAsync (staging)");
  cuda::detail::check(cudaStreamSynchronize(stream), where, "cudaStreamSynchronize");
}

}  // namespace detail

/// All ranks' host bytes on every rank, through a device communicator (staged through device
/// memory): all.from(r) == rank r's `mine`. For small control messages (statuses, counts).
/// Synchronises the stream.
template <device_communicator Comm>
void allgather_host_bytes(Comm& comm, std::span<const std::byte> mine, gradcomp::comm::gathered_bytes& all,
                          device_buffer<std::byte>& send_scratch, device_blocks& receive_scratch) {
  const char* where = "cuda::comm::allgather_host_bytes";
  detail::stage(mine, send_scratch, comm.stream(), where);
  comm.allgatherv(std::span<const std::byte>(send_scratch.data(), mine.size()), receive_scratch.receive());
  all.resize(receive_scratch.sizes());
  if (!all.data.empty())
    cuda::detail::check(cudaMemcpyAsync(all.data.data(), receive_scratch.data(), all.data.size(),
                                        cudaMemcpyDeviceToHost, comm.stream()),
                        where, "cudaMemcpyAsync");
  cuda::detail::check(cudaStreamSynchronize(comm.stream()), where, "cudaStreamSynchronize");
}

}  // namespace gradcomp::cuda::comm
