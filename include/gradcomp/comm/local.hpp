#pragma once
// comm::local: n ranks as threads of one process, for simulation and tests.
//
//   gc::comm::local_group::run(4, [&](gc::comm::local_communicator& comm) {
//     ... the same code an MPI rank would run, with comm.rank() / comm.size() ...
//   });
//
// Every operation has a slot, numbered by the order in which each rank starts its
// operations (the k-th start of every rank is operation k). Starting copies this rank's
// contribution into the slot, so the rank's own memory may change as soon as start returns;
// completing (wait, or a test that finds every rank there) checks that every rank started
// the same operation and copies what this rank receives from the others' contributions.
// Nothing waits for another rank to *complete*, so ranks may wait on their operations in
// any order. Sums are added in rank order, so a run gives exactly what the MPI communicator
// gives.
//
// If one rank throws, the group is aborted: ranks waiting on (or later starting) an
// operation get gc::comm::group_aborted instead of waiting forever, and run() rethrows the
// first rank's own exception.
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <utility>
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
  }
  local_group(const local_group&) = delete;
  local_group& operator=(const local_group&) = delete;

  int size() const noexcept { return size_; }

  /// Runs f(local_communicator&) on `size` threads, one per rank, and waits for all. If any
  /// rank throws, the group is aborted and the first exception of the lowest rank that
  /// failed on its own (not because of the abort) is rethrown.
  template <class F>
  static void run(int size, F&& f);

  /// Wakes every rank waiting on an operation with gc::comm::group_aborted (idempotent).
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

  /// What one rank brought to one operation.
  struct contribution {
    detail::op_description what;
    std::vector<std::byte> bytes;     // allgatherv, gatherv, broadcast (root), alltoallv, allreduce_sum
    std::vector<std::size_t> counts;  // alltoallv: the bytes for each destination rank
  };

  struct slot {
    std::vector<contribution> from;  // one per rank
    int arrived = 0;
    int finished = 0;
  };

  [[noreturn]] void throw_aborted() const {
    throw group_aborted("gradcomp::local_communicator: the group was aborted: " + why_);
  }

  std::shared_ptr<slot> slot_of(std::uint64_t seq) {
    auto& s = slots_[seq];
    if (!s) {
      s = std::make_shared<slot>();
      s->from.resize(static_cast<std::size_t>(size_));
    }
    return s;
  }

  void post(std::uint64_t seq, int rank, contribution c) {
    std::lock_guard lock(mutex_);
    if (aborted_) throw_aborted();
    const auto s = slot_of(seq);
    s->from[static_cast<std::size_t>(rank)] = std::move(c);
    if (++s->arrived == size_) cv_.notify_all();
  }

  /// Whether every rank has started operation seq (or the group was aborted).
  bool ready(std::uint64_t seq) {
    std::lock_guard lock(mutex_);
    return aborted_ || slot_of(seq)->arrived == size_;
  }

  /// Waits until every rank has started operation seq; its contributions are then final.
  std::shared_ptr<const slot> await(std::uint64_t seq) {
    std::unique_lock lock(mutex_);
    const auto s = slot_of(seq);
    cv_.wait(lock, [&] { return aborted_ || s->arrived == size_; });
    if (aborted_) throw_aborted();
    return s;
  }

  /// This rank is done reading operation seq; the last reader frees it.
  void finish(std::uint64_t seq) {
    std::lock_guard lock(mutex_);
    const auto it = slots_.find(seq);
    if (it != slots_.end() && ++it->second->finished == size_) slots_.erase(it);
  }

  int size_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool aborted_ = false;
  std::string why_;
  std::map<std::uint64_t, std::shared_ptr<slot>> slots_;
};

/// One rank's handle on a local_group; models gc::comm::communicator.
/// (c.barrier() and the other blocking members come from blocking_members.)
class local_communicator : public blocking_members<local_communicator> {
 public:
  /// A pending operation of a local_communicator (gc::comm::request_handle).
  class request {
   public:
    request() = default;
    request(request&&) noexcept = default;
    request& operator=(request&& other) noexcept {
      if (this != &other) {
        drain();
        state_ = std::move(other.state_);
      }
      return *this;
    }
    ~request() { drain(); }

    /// Blocks until every rank has started the operation, completes it, and throws its error.
    void wait() {
      if (!state_) return;
      if (!state_->done) complete();
      if (state_->error) std::rethrow_exception(state_->error);
    }

    /// Completes the operation if every rank has started it; never throws (wait() does).
    bool test() {
      if (!state_ || state_->done) return true;
      if (!state_->group->ready(state_->seq)) return false;
      complete();
      return true;
    }

   private:
    friend class local_communicator;
    using completion = std::function<void(const local_group::slot&)>;

    struct state {
      local_group* group = nullptr;
      std::uint64_t seq = 0;
      int ranks = 0;
      completion finish;
      bool done = false;
      std::exception_ptr error;
    };

    request(local_group* group, std::uint64_t seq, completion finish)
        : state_(std::make_unique<state>(state{group, seq, group->size(), std::move(finish), false, nullptr})) {}

    void complete() {
      state& s = *state_;
      std::shared_ptr<const local_group::slot> slot;
      try {
        slot = s.group->await(s.seq);
      } catch (...) {
        s.error = std::current_exception();
        s.done = true;
        return;
      }
      std::vector<detail::op_description> all(slot->from.size());
      for (std::size_t r = 0; r < all.size(); ++r) all[r] = slot->from[r].what;
      const std::string mismatch = detail::mismatch_of(all, s.ranks);
      try {
        if (!mismatch.empty()) gradcomp::detail::fail("local_communicator", mismatch);
        s.finish(*slot);
      } catch (...) {
        s.error = std::current_exception();
      }
      s.group->finish(s.seq);
      s.done = true;
    }

    /// A request given up before completion (say, while its rank unwinds from an exception)
    /// writes nothing more: this rank's contribution is already in the slot, so the other
    /// ranks complete without it, and waiting here could block the unwinding rank forever.
    void drain() noexcept {
      if (state_ && !state_->done) {
        try {
          state_->group->finish(state_->seq);
        } catch (...) {
        }
        state_->done = true;
      }
    }

    std::unique_ptr<state> state_;
  };

  local_communicator(local_group& group, int rank) : group_(&group), rank_(rank) {
    if (rank < 0 || rank >= group.size())
      gradcomp::detail::fail("local_communicator", "rank ", rank, " is not in [0, ", group.size(), ")");
  }

  int rank() const noexcept { return rank_; }
  int size() const noexcept { return group_->size(); }

  request start_barrier() { return start({op(detail::collective_op::barrier), 0, 0}, {}, {}, nullptr); }

  request start_allgatherv(std::span<const std::byte> mine, receiver receive) {
    return start({op(detail::collective_op::allgatherv), 0, mine.size()}, mine, {},
                 [receive = std::move(receive)](const local_group::slot& s) {
                   std::vector<std::size_t> sizes(s.from.size());
                   for (std::size_t r = 0; r < sizes.size(); ++r) sizes[r] = s.from[r].bytes.size();
                   deliver(receive, sizes, [&](std::size_t r) { return std::span<const std::byte>(s.from[r].bytes); });
                 });
  }

  request start_gatherv(std::span<const std::byte> mine, receiver receive, int root) {
    const bool is_root = rank_ == root;
    return start({op(detail::collective_op::gatherv), as_root(root), mine.size()}, mine, {},
                 [receive = std::move(receive), is_root](const local_group::slot& s) {
                   if (!is_root) return;
                   std::vector<std::size_t> sizes(s.from.size());
                   for (std::size_t r = 0; r < sizes.size(); ++r) sizes[r] = s.from[r].bytes.size();
                   deliver(receive, sizes, [&](std::size_t r) { return std::span<const std::byte>(s.from[r].bytes); });
                 });
  }

  request start_broadcast(std::span<const std::byte> mine, receiver receive, int root) {
    const bool is_root = rank_ == root;
    return start({op(detail::collective_op::broadcast), as_root(root), is_root ? mine.size() : 0},
                 is_root ? mine : std::span<const std::byte>(), {},
                 [receive = std::move(receive), is_root, root](const local_group::slot& s) {
                   if (is_root) return;
                   const auto from = static_cast<std::size_t>(root);
                   std::vector<std::size_t> sizes(s.from.size(), 0);
                   sizes[from] = s.from[from].bytes.size();
                   deliver(receive, sizes, [&](std::size_t r) {
                     return r == from ? std::span<const std::byte>(s.from[r].bytes) : std::span<const std::byte>();
                   });
                 });
  }

  request start_alltoallv(std::span<const std::byte> blocks, std::span<const std::size_t> counts, receiver receive) {
    std::size_t total = 0;
    for (const std::size_t c : counts) total += c;
    // Inconsistent blocks are reported by every rank (detail::mismatch_of), not just this one.
    const std::uint64_t described = total == blocks.size() ? counts.size() : detail::inconsistent_blocks;
    const int me = rank_;
    return start({op(detail::collective_op::alltoallv), 0, described}, blocks, counts,
                 [receive = std::move(receive), me](const local_group::slot& s) {
                   const auto mine = static_cast<std::size_t>(me);
                   std::vector<std::size_t> sizes(s.from.size()), offsets(s.from.size());
                   for (std::size_t r = 0; r < sizes.size(); ++r) {
                     const auto& c = s.from[r].counts;
                     sizes[r] = c[mine];
                     for (std::size_t j = 0; j < mine; ++j) offsets[r] += c[j];
                   }
                   deliver(receive, sizes, [&](std::size_t r) {
                     return std::span<const std::byte>(s.from[r].bytes).subspan(offsets[r], sizes[r]);
                   });
                 });
  }

  request start_allreduce_sum(std::span<float> values) { return start_sum(values); }
  request start_allreduce_sum(std::span<double> values) { return start_sum(values); }

 private:
  static std::uint64_t op(detail::collective_op o) { return static_cast<std::uint64_t>(o); }
  static std::uint64_t as_root(int root) { return detail::described_root(root); }

  /// Asks receive for memory and copies block(r) of every rank r into it, in rank order.
  template <class Block>
  static void deliver(const receiver& receive, std::span<const std::size_t> sizes, Block&& block) {
    std::size_t total = 0;
    for (const std::size_t s : sizes) total += s;
    const std::span<std::byte> dst = receive(sizes);
    if (dst.size() < total)
      gradcomp::detail::fail("local_communicator", "the receiver gave ", dst.size(), " bytes for ", total,
                             " bytes of blocks");
    std::size_t at = 0;
    for (std::size_t r = 0; r < sizes.size(); ++r) {
      const std::span<const std::byte> b = block(r);
      if (!b.empty()) std::memcpy(dst.data() + at, b.data(), b.size());
      at += sizes[r];
    }
  }

  template <class T>
  request start_sum(std::span<T> values) {
    return start({op(detail::allreduce_op<T>()), 0, values.size()}, std::as_bytes(values), {},
                 [values](const local_group::slot& s) {
                   detail::sum_in_rank_order<T>(
                       [&](std::size_t r) { return std::span<const std::byte>(s.from[r].bytes); }, s.from.size(),
                       values);
                 });
  }

  request start(detail::op_description what, std::span<const std::byte> bytes, std::span<const std::size_t> counts,
                request::completion finish) {
    const std::uint64_t seq = next_++;
    local_group::contribution c{what, {bytes.begin(), bytes.end()}, {counts.begin(), counts.end()}};
    group_->post(seq, rank_, std::move(c));
    if (!finish) finish = [](const local_group::slot&) {};
    return request(group_, seq, std::move(finish));
  }

  local_group* group_;
  int rank_;
  std::uint64_t next_ = 0;  // the number of operations this rank has started
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
