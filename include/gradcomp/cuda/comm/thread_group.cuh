#pragma once
// gc::cuda::comm::thread_group: n ranks as host threads on ONE GPU, each with its own stream,
// for testing device-side exchanges end to end on device memory without several GPUs (NCCL
// refuses two ranks on one device). The device analogue of gc::comm::local_group:
//
//   gc::cuda::comm::thread_group::run(4, [&](gc::cuda::comm::thread_communicator& comm) {
//     ... the code a rank would run with a device communicator (NCCL), on comm.stream() ...
//   });
//
// Every collective is three rendezvous of the rank threads on the host (a cyclic barrier):
//   1. every rank posts its header (comm::detail::op_description), its send pointer and the
//      bytes it has for each rank; after the barrier every rank checks the headers (the same
//      gc::error on every rank if they differ), learns its block sizes, calls its receiver
//      and records an event `ready` on its stream (its send data and its receive memory are
//      ready once the stream reaches it);
//   2. every rank enqueues on its own stream, for each source rank, a wait on the source's
//      `ready` and a device-to-device cudaMemcpyAsync from the source's send memory into its
//      own receive memory (one device, so plain copies), then records `copied`;
//   3. every rank's stream waits on every other rank's `copied`: work it enqueues afterwards
//      (say, overwriting its send buffer) cannot run before the others have read it.
// allreduce_sum is two such transfers: rank r pulls shard r (comm::shard_of) of every rank's
// vector, adds the n shards in rank order in a kernel, and every rank pulls every owner's sum:
// the bits of comm::local_communicator, the bytes of a ring all-reduce.
//
// If one rank throws, the group is aborted: ranks waiting in (or later starting) a collective
// get gc::comm::group_aborted instead of waiting forever, and run() rethrows the first own
// exception of the lowest rank that failed (as local_group::run). A CUDA runtime error inside
// a collective aborts the group too (its ranks are then out of step).
//
// Compiled (nvcc 13.0, sm_90), NOT YET RUN on a GPU (tests/cuda/test_cuda_exchange.cu).
#include <cuda_runtime_api.h>

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "../../comm/communicator.hpp"
#include "../../comm/local.hpp"
#include "../../error.hpp"
#include "../error.cuh"
#include "../memory.cuh"
#include "device_communicator.cuh"

namespace gradcomp::cuda::comm {

class thread_communicator;

/// The shared state of n rank threads on one GPU.
class thread_group {
 public:
  /// n ranks on `device` (-1: the calling thread's current device).
  explicit thread_group(int size, int device = -1) : size_(size), device_(device) {
    if (size < 1) gradcomp::detail::fail("cuda::comm::thread_group", "size must be >= 1 (got ", size, ")");
    if (device_ < 0) cuda::detail::check(cudaGetDevice(&device_), "comm::thread_group", "cudaGetDevice");
    posted_.resize(static_cast<std::size_t>(size));
    events_.resize(static_cast<std::size_t>(size));
  }
  thread_group(const thread_group&) = delete;
  thread_group& operator=(const thread_group&) = delete;
  /// Destroys the ranks' events. The group outlives its communicators (run() keeps to this):
  /// a rank that has left may still be waited on by the others' streams in the last collective.
  ~thread_group() {
    for (const rank_events& ev : events_) {
      if (ev.ready != nullptr) cudaEventDestroy(ev.ready);
      if (ev.copied != nullptr) cudaEventDestroy(ev.copied);
    }
  }

  int size() const noexcept { return size_; }
  int device() const noexcept { return device_; }

  /// Runs f(thread_communicator&) on `size` threads, one per rank (rank 0 on the calling
  /// thread), each with the device set and its own stream, and waits for all. If any rank
  /// throws, the group is aborted and the first exception of the lowest rank that failed on
  /// its own (not because of the abort) is rethrown.
  template <class F>
  static void run(int size, F&& f, int device = -1);

  /// Wakes every rank waiting in a collective with gc::comm::group_aborted (idempotent).
  void abort(const std::string& why) {
    std::lock_guard lock(mutex_);
    if (!aborted_) {
      aborted_ = true;
      why_ = why;
    }
    cv_.notify_all();
  }

 private:
  friend class thread_communicator;

  /// What one rank posts for one transfer (phase 1).
  struct posting {
    gradcomp::comm::detail::op_description what;
    const std::byte* send = nullptr;
    std::vector<std::size_t> offsets;  // per destination rank: where its block starts in send
    std::vector<std::size_t> counts;   // per destination rank: its block's bytes
  };

  /// A rank's two events, created with its communicator.
  struct rank_events {
    cudaEvent_t ready = nullptr;   // recorded after the receiver: send and receive memory ready
    cudaEvent_t copied = nullptr;  // recorded after this rank's copies: it has read the others
  };

  /// A cyclic barrier of the size_ ranks; throws group_aborted once the group is aborted.
  void rendezvous() {
    std::unique_lock lock(mutex_);
    if (aborted_) throw_aborted();
    const std::uint64_t generation = generation_;
    if (++waiting_ == size_) {
      waiting_ = 0;
      ++generation_;
      cv_.notify_all();
      return;
    }
    cv_.wait(lock, [&] { return aborted_ || generation_ != generation; });
    if (generation_ == generation) throw_aborted();
  }

  [[noreturn]] void throw_aborted() const {
    throw gradcomp::comm::group_aborted("gradcomp::cuda::comm::thread_communicator: the group was aborted: " + why_);
  }

  int size_;
  int device_;
  std::mutex mutex_;
  std::condition_variable cv_;
  int waiting_ = 0;
  std::uint64_t generation_ = 0;
  bool aborted_ = false;
  std::string why_;
  std::vector<posting> posted_;     // written by each rank for its own index between barriers
  std::vector<rank_events> events_;  // written once, by each rank's communicator
};

/// One rank's handle on a thread_group: its own stream (non-blocking) and events on the
/// group's device; models gc::cuda::comm::device_communicator. Use it from its rank's
/// thread only.
class thread_communicator {
 public:
  thread_communicator(thread_group& group, int rank) : group_(&group), rank_(rank) {
    const char* where = "comm::thread_communicator";
    if (rank < 0 || rank >= group.size())
      gradcomp::detail::fail("cuda::comm::thread_communicator", "rank ", rank, " is not in [0, ", group.size(), ")");
    cuda::detail::check(cudaSetDevice(group.device()), where, "cudaSetDevice");
    cuda::detail::check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), where, "cudaStreamCreateWithFlags");
    // The events belong to the group (destroyed with it, after every rank has left); a rank
    // that joins again (a new communicator for the same rank) reuses them.
    auto& ev = group.events_[static_cast<std::size_t>(rank)];
    if (ev.ready == nullptr)
      cuda::detail::check(cudaEventCreateWithFlags(&ev.ready, cudaEventDisableTiming), where, "cudaEventCreate");
    if (ev.copied == nullptr)
      cuda::detail::check(cudaEventCreateWithFlags(&ev.copied, cudaEventDisableTiming), where, "cudaEventCreate");
  }
  thread_communicator(const thread_communicator&) = delete;
  thread_communicator& operator=(const thread_communicator&) = delete;
  ~thread_communicator() {
    // Work on the stream may still be waited on by the other ranks' streams (through this
    // rank's events, which the group keeps): destroying the stream lets it finish first.
    cudaStreamSynchronize(stream_);
    cudaStreamDestroy(stream_);
  }

  int rank() const noexcept { return rank_; }
  int size() const noexcept { return group_->size(); }
  cudaStream_t stream() const noexcept { return stream_; }
  int device() const noexcept { return group_->device(); }
  /// Waits for this rank's stream.
  void synchronize() const {
    cuda::detail::check(cudaStreamSynchronize(stream_), "comm::thread_communicator", "cudaStreamSynchronize");
  }

  /// Every rank's stream waits for the work every rank enqueued before the barrier.
  void barrier() {
    plan p;
    p.what = {op(gradcomp::comm::detail::collective_op::barrier), 0, 0};
    p.join = true;
    transfer(p, nullptr);
  }

  void allgatherv(std::span<const std::byte> mine, receiver receive) {
    plan p;
    p.what = {op(gradcomp::comm::detail::collective_op::allgatherv), 0, mine.size()};
    p.send = mine.data();
    p.offsets.assign(static_cast<std::size_t>(size()), 0);
    p.counts.assign(static_cast<std::size_t>(size()), mine.size());
    transfer(p, &receive);
  }

  void alltoallv(std::span<const std::byte> blocks, std::span<const std::size_t> counts, receiver receive) {
    std::size_t total = 0;
    for (const std::size_t c : counts) total += c;
    plan p;
    // Inconsistent blocks are reported by every rank (comm::detail::mismatch_of).
    p.what = {op(gradcomp::comm::detail::collective_op::alltoallv), 0,
              total == blocks.size() ? counts.size() : gradcomp::comm::detail::inconsistent_blocks};
    p.send = blocks.data();
    p.counts.assign(counts.begin(), counts.end());
    p.offsets.assign(counts.size(), 0);
    for (std::size_t j = 1; j < counts.size(); ++j) p.offsets[j] = p.offsets[j - 1] + counts[j - 1];
    transfer(p, &receive);
  }

  /// root's bytes to every other rank; root's receiver is not called.
  void broadcast(std::span<const std::byte> mine, receiver receive, int root) {
    const bool is_root = rank_ == root;
    plan p;
    p.what = {op(gradcomp::comm::detail::collective_op::broadcast), gradcomp::comm::detail::described_root(root),
              is_root ? mine.size() : 0};
    p.send = is_root ? mine.data() : nullptr;
    p.offsets.assign(static_cast<std::size_t>(size()), 0);
    p.counts.assign(static_cast<std::size_t>(size()), 0);
    if (is_root)
      for (int j = 0; j < size(); ++j)
        if (j != root) p.counts[static_cast<std::size_t>(j)] = mine.size();
    transfer(p, is_root ? nullptr : &receive);
  }

  void allreduce_sum(std::span<float> values) { sum(values); }
  void allreduce_sum(std::span<double> values) { sum(values); }

 private:
  struct plan {
    gradcomp::comm::detail::op_description what;
    const std::byte* send = nullptr;
    std::vector<std::size_t> offsets, counts;  // per destination rank (empty: nothing to send)
    bool join = false;                          // every stream waits for every rank's `ready`
    bool checked = true;                        // compare the headers (internal steps: no)
  };

  static constexpr std::uint64_t internal_op = 0x1000;  // the steps of allreduce_sum after its first
  static std::uint64_t op(gradcomp::comm::detail::collective_op o) { return static_cast<std::uint64_t>(o); }

  /// The three phases of one collective (see the top of the file). receive: null if this
  /// rank receives nothing.
  void transfer(const plan& p, const receiver* receive) {
    try {
      transfer_phases(p, receive);
    } catch (const cuda::runtime_error& e) {
      group_->abort("rank " + std::to_string(rank_) + ": " + e.what());
      throw;
    }
  }

  void transfer_phases(const plan& p, const receiver* receive) {
    const char* where = "comm::thread_communicator";
    const int n = size();
    const auto me = static_cast<std::size_t>(rank_);
    group_->posted_[me] = {p.what, p.send, p.offsets, p.counts};
    group_->rendezvous();  // 1: every header is posted

    std::string mismatch;
    if (p.checked) {
      std::vector<gradcomp::comm::detail::op_description> all(static_cast<std::size_t>(n));
      for (std::size_t r = 0; r < all.size(); ++r) all[r] = group_->posted_[r].what;
      mismatch = gradcomp::comm::detail::mismatch_of(all, n);
    }
    std::vector<std::size_t> sizes(static_cast<std::size_t>(n), 0);
    std::size_t total = 0;
    if (mismatch.empty())
      for (std::size_t j = 0; j < sizes.size(); ++j) {
        const auto& from = group_->posted_[j];
        sizes[j] = from.counts.empty() ? 0 : from.counts[me];
        total += sizes[j];
      }
    std::exception_ptr local;
    std::span<std::byte> destination;
    if (mismatch.empty() && receive != nullptr) {
      try {
        destination = (*receive)(sizes);
        if (destination.size() < total)
          gradcomp::detail::fail("cuda::comm::thread_communicator", "the receiver gave ", destination.size(),
                                 " bytes for ", total, " bytes of blocks");
      } catch (...) {
        local = std::current_exception();
        destination = {};
      }
    }
    const auto& events = group_->events_;
    cuda::detail::check(cudaEventRecord(events[me].ready, stream_), where, "cudaEventRecord");
    group_->rendezvous();  // 2: every rank's data and memory are ready on its stream

    const bool copies = mismatch.empty() && !local && receive != nullptr;
    if (copies) {
      std::size_t at = 0;
      for (std::size_t j = 0; j < sizes.size(); ++j) {
        if (sizes[j] > 0) {
          const auto& from = group_->posted_[j];
          const std::byte* source = from.send + from.offsets[me];
          std::byte* target = destination.data() + at;
          if (source != target) {  // allreduce_sum's own shard is already in place
            if (j != me) cuda::detail::check(cudaStreamWaitEvent(stream_, events[j].ready, 0), where, "cudaStreamWaitEvent");
            cuda::detail::check(cudaMemcpyAsync(target, source, sizes[j], cudaMemcpyDeviceToDevice, stream_), where,
                                "cudaMemcpyAsync");
          }
        }
        at += sizes[j];
      }
    }
    if (p.join && mismatch.empty())
      for (std::size_t j = 0; j < events.size(); ++j)
        if (j != me) cuda::detail::check(cudaStreamWaitEvent(stream_, events[j].ready, 0), where, "cudaStreamWaitEvent");
    cuda::detail::check(cudaEventRecord(events[me].copied, stream_), where, "cudaEventRecord");
    group_->rendezvous();  // 3: every rank's copies are enqueued

    if (mismatch.empty())
      for (std::size_t j = 0; j < events.size(); ++j)
        if (j != me) cuda::detail::check(cudaStreamWaitEvent(stream_, events[j].copied, 0), where, "cudaStreamWaitEvent");
    if (!mismatch.empty()) gradcomp::detail::fail("cuda::comm::thread_communicator", mismatch);
    if (local) std::rethrow_exception(local);
  }

  template <class T>
  void sum(std::span<T> values) {
    const int n = size();
    const std::size_t len = values.size();
    const auto mine = gradcomp::comm::shard_of(len, n, rank_);
    auto* base = reinterpret_cast<std::byte*>(values.data());
    // 1: rank r pulls shard r of every rank's values (in rank order) into its scratch.
    plan p;
    p.what = {op(gradcomp::comm::detail::allreduce_op<T>()), 0, len};
    p.send = base;
    p.offsets.resize(static_cast<std::size_t>(n));
    p.counts.resize(static_cast<std::size_t>(n));
    for (int j = 0; j < n; ++j) {
      const auto s = gradcomp::comm::shard_of(len, n, j);
      p.offsets[static_cast<std::size_t>(j)] = s.begin * sizeof(T);
      p.counts[static_cast<std::size_t>(j)] = s.size() * sizeof(T);
    }
    receiver into_scratch = [this](std::span<const std::size_t> sizes) {
      std::size_t total = 0;
      for (const std::size_t s : sizes) total += s;
      scratch_.resize(std::max<std::size_t>(total, 1));
      return std::span<std::byte>(scratch_.data(), total);
    };
    transfer(p, &into_scratch);
    // 2: the n shards added in rank order, into this rank's shard of values.
    detail::sum_in_rank_order(reinterpret_cast<const T*>(scratch_.data()), n, mine.size(), values.data() + mine.begin,
                              stream_, "comm::thread_communicator");
    // 3: every rank pulls every owner's sums into place (its own shard is in place already).
    plan q;
    q.what = {internal_op, 0, len};
    q.checked = false;
    q.send = base;
    q.offsets.assign(static_cast<std::size_t>(n), mine.begin * sizeof(T));
    q.counts.assign(static_cast<std::size_t>(n), mine.size() * sizeof(T));
    receiver into_values = [base, len](std::span<const std::size_t>) {
      return std::span<std::byte>(base, len * sizeof(T));
    };
    transfer(q, &into_values);
  }

  thread_group* group_;
  int rank_;
  cudaStream_t stream_ = nullptr;
  device_buffer<std::byte> scratch_;  // allreduce_sum: the n shards this rank adds
};

template <class F>
void thread_group::run(int size, F&& f, int device) {
  thread_group group(size, device);
  std::vector<std::exception_ptr> failures(static_cast<std::size_t>(size));
  std::vector<char> own_failure(static_cast<std::size_t>(size), 0);
  const auto body = [&](int rank) {
    try {
      thread_communicator comm(group, rank);
      f(comm);
      comm.synchronize();
    } catch (const gradcomp::comm::group_aborted&) {
      failures[static_cast<std::size_t>(rank)] = std::current_exception();
    } catch (const std::exception& e) {
      failures[static_cast<std::size_t>(rank)] = std::current_exception();
      own_failure[static_cast<std::size_t>(rank)] = 1;
      group.abort("rank " + std::to_string(rank) + " threw: " + e.what());
    } catch (...) {
      failures[static_cast<std::size_t>(rank)] = std::current_exception();
      own_failure[static_cast<std::size_t>(rank)] = 1;
      group.abort("rank " + std::to_string(rank) + " threw a non-standard exception");
    }
  };
  std::vector<std::thread> threads;
  threads.reserve(static_cast<std::size_t>(size - 1));
  for (int r = 1; r < size; ++r) threads.emplace_back(body, r);
  body(0);
  for (auto& t : threads) t.join();
  for (std::size_t r = 0; r < failures.size(); ++r)
    if (own_failure[r]) std::rethrow_exception(failures[r]);
  for (const auto& failure : failures)
    if (failure) std::rethrow_exception(failure);
}

}  // namespace gradcomp::cuda::comm
