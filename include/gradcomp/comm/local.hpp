#pragma once
// comm::local: n ranks as threads of one process, for simulation and tests.
//
//   gc::comm::local_group::run(4, [&](gc::comm::local_communicator& comm) {
//     ... the same code an MPI rank would run, with comm.rank() / comm.size() ...
//   });
//
// A collective is a rendezvous: every rank posts where its bytes are, waits for the others,
// copies what it needs straight from their buffers, and waits again so that no buffer is
// released while another rank still reads it. Results are combined in rank order, so a run
// is deterministic and gives exactly what the MPI communicator gives.
//
// If one rank throws, the group is aborted: ranks waiting in (or later entering) a
// collective get a gc::error instead of waiting forever, and run() rethrows the first
// rank's own exception.
#include <algorithm>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "../error.hpp"
#include "communicator.hpp"

namespace gradcomp::comm {

/// Raised in the surviving ranks of a local group after another rank threw.
class group_aborted : public error {
 public:
  using error::error;
};

class local_communicator;

/// The shared state of n in-process ranks.
class local_group {
 public:
  explicit local_group(int size) : size_(size) {
    if (size < 1) gradcomp::detail::fail("local_group", "size must be >= 1 (got ", size, ")");
    posts_.resize(static_cast<std::size_t>(size));
  }
  local_group(const local_group&) = delete;
  local_group& operator=(const local_group&) = delete;

  int size() const noexcept { return size_; }

  /// Runs f(local_communicator&) on `size` threads, one per rank, and waits for all. If any
  /// rank throws, the group is aborted and the first exception of the lowest rank that
  /// failed on its own (not because of the abort) is rethrown.
  template <class F>
  static void run(int size, F&& f);

  /// Wakes every rank waiting in a collective with gc::group_aborted (idempotent).
  void abort(const std::string& why) {
    std::lock_guard lock(mutex_);
    if (!aborted_) {
      aborted_ = true;
      why_ = why;
    }
    cv_.notify_all();
  }

 private:
  friend class local_communicator;

  /// What a rank brings to the current collective.
  struct post {
    int op = 0;                             // which collective (a mismatch is an error)
    int root = 0;                           // for rooted collectives
    std::span<const std::byte> bytes;       // allgatherv, gatherv, broadcast (root)
    const scattered_bytes* blocks = nullptr;  // alltoallv
  };

  /// Waits until every rank has arrived (generation barrier); throws if the group aborts.
  void arrive_and_wait() {
    std::unique_lock lock(mutex_);
    if (aborted_) throw group_aborted("gradcomp::local_communicator: the group was aborted: " + why_);
    const std::uint64_t generation = generation_;
    if (++arrived_ == size_) {
      arrived_ = 0;
      ++generation_;
      cv_.notify_all();
      return;
    }
    cv_.wait(lock, [&] { return generation_ != generation || aborted_; });
    if (generation_ == generation)
      throw group_aborted("gradcomp::local_communicator: the group was aborted: " + why_);
  }

  int size_;
  std::mutex mutex_;
  std::condition_variable cv_;
  int arrived_ = 0;
  std::uint64_t generation_ = 0;
  bool aborted_ = false;
  std::string why_;
  std::vector<post> posts_;
};

/// One rank's handle on a local_group; models gc::comm::communicator.
class local_communicator {
 public:
  local_communicator(local_group& group, int rank) : group_(&group), rank_(rank) {
    if (rank < 0 || rank >= group.size())
      gradcomp::detail::fail("local_communicator", "rank ", rank, " is not in [0, ", group.size(), ")");
  }

  int rank() const noexcept { return rank_; }
  int size() const noexcept { return group_->size(); }

  void barrier() { exchange({.op = op_barrier, .root = 0, .bytes = {}, .blocks = nullptr}, [](const auto&) {}); }

  void allgatherv(std::span<const std::byte> mine, gathered_bytes& all) {
    exchange({.op = op_allgatherv, .root = 0, .bytes = mine, .blocks = nullptr}, [&](const std::vector<local_group::post>& posts) {
      std::vector<std::size_t> sizes(posts.size());
      for (std::size_t r = 0; r < posts.size(); ++r) sizes[r] = posts[r].bytes.size();
      all.resize(sizes);
      for (std::size_t r = 0; r < posts.size(); ++r) copy(posts[r].bytes, all.data.data() + all.offsets[r]);
    });
  }

  void gatherv(std::span<const std::byte> mine, gathered_bytes& all, int root) {
    detail::check_root("local_communicator::gatherv", root, size());
    exchange({.op = op_gatherv, .root = root, .bytes = mine, .blocks = nullptr}, [&](const std::vector<local_group::post>& posts) {
      if (rank_ != root) {
        all.data.clear();
        all.offsets.clear();
        return;
      }
      std::vector<std::size_t> sizes(posts.size());
      for (std::size_t r = 0; r < posts.size(); ++r) sizes[r] = posts[r].bytes.size();
      all.resize(sizes);
      for (std::size_t r = 0; r < posts.size(); ++r) copy(posts[r].bytes, all.data.data() + all.offsets[r]);
    });
  }

  void broadcast(std::vector<std::byte>& buffer, int root) {
    detail::check_root("local_communicator::broadcast", root, size());
    const std::span<const std::byte> mine = rank_ == root ? std::span<const std::byte>(buffer) : std::span<const std::byte>();
    exchange({.op = op_broadcast, .root = root, .bytes = mine, .blocks = nullptr}, [&](const std::vector<local_group::post>& posts) {
      if (rank_ == root) return;
      const auto source = posts[static_cast<std::size_t>(root)].bytes;
      buffer.resize(source.size());
      copy(source, buffer.data());
    });
  }

  void alltoallv(const scattered_bytes& send, gathered_bytes& received) {
    if (send.ranks() != size())
      gradcomp::detail::fail("local_communicator::alltoallv", "send has blocks for ", send.ranks(),
                             " ranks, the group has ", size());
    exchange({.op = op_alltoallv, .root = 0, .bytes = {}, .blocks = &send}, [&](const std::vector<local_group::post>& posts) {
      std::vector<std::size_t> sizes(posts.size());
      for (std::size_t r = 0; r < posts.size(); ++r) sizes[r] = posts[r].blocks->from(rank_).size();
      received.resize(sizes);
      for (std::size_t r = 0; r < posts.size(); ++r)
        copy(posts[r].blocks->from(rank_), received.data.data() + received.offsets[r]);
    });
  }

 private:
  using op = detail::collective_op;
  static constexpr int op_barrier = static_cast<int>(op::barrier), op_allgatherv = static_cast<int>(op::allgatherv),
                       op_gatherv = static_cast<int>(op::gatherv), op_broadcast = static_cast<int>(op::broadcast),
                       op_alltoallv = static_cast<int>(op::alltoallv);

  static const char* op_name(int code) { return detail::collective_name(static_cast<std::uint64_t>(code)); }

  static void copy(std::span<const std::byte> from, std::byte* to) {
    if (!from.empty()) std::memcpy(to, from.data(), from.size());
  }

  /// Posts this rank's part, waits for all, checks that every rank called the same
  /// collective with the same root (all ranks see the same posts, so all throw alike),
  /// lets `read` copy from the posts, and waits again before the buffers may go away.
  template <class Read>
  void exchange(local_group::post mine, Read&& read) {
    group_->posts_[static_cast<std::size_t>(rank_)] = mine;
    group_->arrive_and_wait();
    const auto& posts = group_->posts_;
    std::string mismatch;
    for (std::size_t r = 0; r < posts.size() && mismatch.empty(); ++r) {
      if (posts[r].op != posts[0].op || posts[r].root != posts[0].root)
        mismatch = std::string("rank 0 called ") + op_name(posts[0].op) + " (root " + std::to_string(posts[0].root) +
                   ") but rank " + std::to_string(r) + " called " + op_name(posts[r].op) + " (root " +
                   std::to_string(posts[r].root) + ")";
    }
    if (mismatch.empty()) read(posts);
    group_->arrive_and_wait();
    if (!mismatch.empty()) gradcomp::detail::fail("local_communicator", "collectives do not match: ", mismatch);
  }

  local_group* group_;
  int rank_;
};

template <class F>
void local_group::run(int size, F&& f) {
  local_group group(size);
  std::vector<std::exception_ptr> failures(static_cast<std::size_t>(size));
  std::vector<char> own_failure(static_cast<std::size_t>(size), 0);  // not vector<bool>: ranks write concurrently
  const auto body = [&](int rank) {
    try {
      local_communicator comm(group, rank);
      f(comm);
    } catch (const group_aborted&) {
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
  body(0);  // rank 0 on the calling thread
  for (auto& t : threads) t.join();
  for (std::size_t r = 0; r < failures.size(); ++r)
    if (own_failure[r]) std::rethrow_exception(failures[r]);
  for (const auto& failure : failures)
    if (failure) std::rethrow_exception(failure);
}

}  // namespace gradcomp::comm
