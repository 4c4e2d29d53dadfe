#pragma once
// comm::mpi_communicator: the exchange contract (communicator.hpp) over an MPI communicator
// (target gradcomp::mpi). MPI must be initialised before one is made and finalised after the
// last is gone.
//
//   MPI_Init(&argc, &argv);
//   {
//     gc::comm::mpi_communicator comm;                 // duplicates of MPI_COMM_WORLD
//     gc::ef_sgd s(gc::top_k{.k = 1000}, comm, d, {.lr = 0.1});
//     ... s.step(gc::exec::par, x, g) ...
//   }
//   MPI_Finalize();
//
// Every operation is MPI non-blocking collectives in phases:
//   1. a header: one small MPI_Iallgather of (operation, root, count) from every rank, issued
//      when the operation starts. Every rank then knows every block size, and a rank that
//      started another operation, named another root or passed another length is seen by
//      all, which complete the operation with the same gc::error instead of hanging;
//   2. the data: MPI_Iallgatherv, _Igatherv, _Ibcast, _Ialltoall (sizes) then _Ialltoallv,
//      or for allreduce_sum an _Ialltoallv of shards, the rank-order sum of this rank's
//      shard, and an _Iallgatherv of the sums (so the sum is the same bits as comm::local's).
// The headers travel on one duplicate of the caller's communicator and the data on another.
// Headers are issued in start order; data phases are issued by a progress engine strictly in
// start order too (every phase of operation k before any of operation k + 1), at the first
// start/test/wait call that finds the previous phase complete. So every rank issues the same
// MPI calls in the same order on each duplicate, whatever order the caller waits in.
// MPI errors are returned (MPI_ERRORS_RETURN) and raised as gc::error; counts above INT_MAX
// bytes are refused (OpenMPI 4 has no large-count calls).
#include <mpi.h>

#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <exception>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "../error.hpp"
#include "communicator.hpp"

namespace gradcomp::comm {

/// The exchange contract over MPI (file comment above); the blocking members (c.barrier(), ...) come from blocking_members.
class mpi_communicator : public blocking_members<mpi_communicator> {
  struct operation;
  struct engine;

 public:
  /// A pending operation of an mpi_communicator (gc::comm::request_handle). It may outlive
  /// the communicator: the communicator completes every operation before it goes.
  class request {
   public:
    request() = default;
    request(request&&) noexcept = default;
    request& operator=(request&& other) noexcept {
      if (this != &other) {
        drain();
        engine_ = std::move(other.engine_);
        op_ = std::move(other.op_);
      }
      return *this;
    }
    ~request() { drain(); }

    void wait() {
      if (!op_) return;
      if (!op_->done) engine_->progress(op_.get(), true);
      if (op_->error) std::rethrow_exception(op_->error);
    }

    bool test() {
      if (!op_ || op_->done) return true;
      engine_->progress(op_.get(), false);
      return op_->done;
    }

   private:
    friend class mpi_communicator;
    request(std::shared_ptr<engine> e, std::shared_ptr<operation> op) : engine_(std::move(e)), op_(std::move(op)) {}

    /// MPI may still read and write this operation's memory: complete it (errors dropped).
    void drain() noexcept {
      if (op_ && !op_->done) {
        try {
          engine_->progress(op_.get(), true);
        } catch (...) {
        }
      }
    }

    std::shared_ptr<engine> engine_;
    std::shared_ptr<operation> op_;
  };

  /// Wraps two duplicates of comm (headers and data). Throws gc::error if MPI is not
  /// initialised.
  explicit mpi_communicator(MPI_Comm comm = MPI_COMM_WORLD) {
    int initialised = 0;
    MPI_Initialized(&initialised);
    if (!initialised) gradcomp::detail::fail("mpi_communicator", "MPI is not initialised (call MPI_Init first)");
    auto e = std::make_shared<engine>();
    check(MPI_Comm_dup(comm, &e->headers), "MPI_Comm_dup");
    check(MPI_Comm_dup(comm, &e->data), "MPI_Comm_dup");
    for (MPI_Comm c : {e->headers, e->data})
      check(MPI_Comm_set_errhandler(c, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
    check(MPI_Comm_rank(e->headers, &e->rank), "MPI_Comm_rank");
    check(MPI_Comm_size(e->headers, &e->size), "MPI_Comm_size");
    engine_ = std::move(e);
  }
  mpi_communicator(const mpi_communicator&) = delete;
  mpi_communicator& operator=(const mpi_communicator&) = delete;
  mpi_communicator(mpi_communicator&& other) noexcept = default;
  mpi_communicator& operator=(mpi_communicator&& other) noexcept {
    if (this != &other) {
      release();
      engine_ = std::move(other.engine_);
    }
    return *this;
  }
  ~mpi_communicator() { release(); }

  int rank() const noexcept { return engine_ ? engine_->rank : 0; }
  int size() const noexcept { return engine_ ? engine_->size : 1; }
  /// The duplicated MPI communicator that carries the headers, for the caller's own MPI
  /// calls on the same group. Issue no collective on it while a gradcomp operation is in
  /// flight: it would be matched with a header.
  MPI_Comm native() const noexcept { return engine_ ? engine_->headers : MPI_COMM_NULL; }

  request start_barrier() { return start(make(detail::collective_op::barrier, 0, 0)); }

  request start_allgatherv(std::span<const std::byte> mine, receiver receive) {
    auto op = make(detail::collective_op::allgatherv, 0, mine.size());
    op->send = mine;
    op->receive = std::move(receive);
    return start(std::move(op));
  }

  request start_gatherv(std::span<const std::byte> mine, receiver receive, int root) {
    auto op = make(detail::collective_op::gatherv, root, mine.size());
    op->send = mine;
    op->receive = std::move(receive);
    return start(std::move(op));
  }

  request start_broadcast(std::span<const std::byte> mine, receiver receive, int root) {
    const bool is_root = rank() == root;
    auto op = make(detail::collective_op::broadcast, root, is_root ? mine.size() : 0);
    if (is_root) op->send = mine;
    op->receive = std::move(receive);
    return start(std::move(op));
  }

  request start_alltoallv(std::span<const std::byte> blocks, std::span<const std::size_t> counts, receiver receive) {
    std::size_t total = 0;
    for (const std::size_t c : counts) total += c;
    auto op =
        make(detail::collective_op::alltoallv, 0, total == blocks.size() ? counts.size() : detail::inconsistent_blocks);
    op->send = blocks;
    op->send_counts.assign(counts.begin(), counts.end());
    op->receive = std::move(receive);
    return start(std::move(op));
  }

  request start_allreduce_sum(std::span<float> values) { return start_sum(values); }
  request start_allreduce_sum(std::span<double> values) { return start_sum(values); }

 private:
  /// One operation and its phases. Phase 0 is the header exchange; phases 1 .. phases are
  /// data phases; `phase` is the one in flight.
  struct operation {
    detail::op_description mine;
    std::vector<detail::op_description> all;
    MPI_Request request = MPI_REQUEST_NULL;
    int phase = 0;
    int phases = 0;
    bool done = false;
    std::exception_ptr error;
    // What it works on.
    std::span<const std::byte> send;
    std::vector<std::size_t> send_counts;  // alltoallv
    receiver receive;
    std::span<std::byte> target;     // where the data lands
    std::vector<std::byte> scratch;  // target when the receiver failed; allreduce: the shards received
    std::vector<int> counts, displs, send_counts_int, send_displs;
    std::vector<std::uint64_t> size_send, size_recv;  // alltoallv: the count exchange
    // allreduce_sum
    std::byte* values = nullptr;
    std::size_t value_bytes = 0;
    std::vector<std::byte> sum;  // this rank's shard of the sum
    void (*sum_shard)(operation&) = nullptr;

    detail::collective_op kind() const noexcept { return static_cast<detail::collective_op>(mine.op); }
    bool last_issued() const noexcept { return done || phase == phases; }
  };

  struct engine {
    MPI_Comm headers = MPI_COMM_NULL, data = MPI_COMM_NULL;
    int rank = 0, size = 1;
    std::deque<std::shared_ptr<operation>> queue;  // started and not done, in start order
    std::size_t issued = 0;                        // queue[0, issued) have issued their last phase

    engine() = default;
    engine(const engine&) = delete;
    engine& operator=(const engine&) = delete;
    ~engine() {
      int finalised = 0;
      MPI_Finalized(&finalised);
      if (finalised) return;
      for (MPI_Comm* c : {&headers, &data})
        if (*c != MPI_COMM_NULL) MPI_Comm_free(c);
    }

    /// Advances every operation as far as it can go without blocking, and, if block, until
    /// target is done. The caller keeps target alive (completed operations leave the queue).
    void progress(operation* target, bool block) {
      for (;;) {
        bool moved = false;
        for (std::size_t i = 0; i < issued; ++i)
          if (!queue[i]->done) moved |= advance(*queue[i], false);
        while (issued < queue.size()) {
          operation& op = *queue[issued];
          if (op.last_issued()) {
            ++issued;
            continue;
          }
          if (!advance(op, false)) break;
          moved = true;
        }
        while (!queue.empty() && queue.front()->done) {
          queue.pop_front();
          if (issued > 0) --issued;
        }
        if (target == nullptr || target->done) return;
        if (moved) continue;
        if (!block) return;
        // Block on what target needs next: its own last phase once issued, else the phase in
        // flight of the first operation that has not issued its last phase.
        operation& need = target->last_issued() || issued >= queue.size() ? *target : *queue[issued];
        advance(need, true);
      }
    }

    /// Completes op's phase in flight if it is done (waiting for it if block), then issues
    /// its next phase. Returns whether the phase completed.
    bool advance(operation& op, bool block) {
      int flag = 0;
      const int code =
          block ? MPI_Wait(&op.request, MPI_STATUS_IGNORE) : MPI_Test(&op.request, &flag, MPI_STATUS_IGNORE);
      if (code != MPI_SUCCESS) {
        fail_op(op, code, block ? "MPI_Wait" : "MPI_Test");
        return true;
      }
      if (!block && !flag) return false;
      try {
        next_phase(op);
      } catch (...) {
        op.error = std::current_exception();
        op.done = true;
      }
      return true;
    }

    void fail_op(operation& op, int code, const char* call) {
      try {
        check(code, call);
      } catch (...) {
        op.error = std::current_exception();
      }
      op.done = true;
    }

    void issue(operation& op, int code, const char* call) {
      if (code != MPI_SUCCESS) {
        fail_op(op, code, call);
        return;
      }
      ++op.phase;
    }

    /// The phase in flight has completed: issue the next or finish.
    void next_phase(operation& op) {
      using detail::collective_op;
      const auto n = static_cast<std::size_t>(size);
      if (op.phase == 0) {
        const std::string mismatch = detail::mismatch_of(op.all, size);
        if (!mismatch.empty()) gradcomp::detail::fail("mpi_communicator", mismatch);
        if (op.phases == 0) {
          op.done = true;
          return;
        }
      } else if (op.phase == op.phases) {
        op.done = true;
        return;
      }
      switch (op.kind()) {
        case collective_op::allgatherv: {
          std::vector<std::size_t> sizes(n);
          for (std::size_t r = 0; r < n; ++r) sizes[r] = op.all[r].count;
          receive_into(op, sizes, "allgatherv");
          issue(op,
                MPI_Iallgatherv(op.send.data(), static_cast<int>(op.send.size()), MPI_BYTE, op.target.data(),
                                op.counts.data(), op.displs.data(), MPI_BYTE, data, &op.request),
                "MPI_Iallgatherv");
          break;
        }
        case collective_op::gatherv: {
          const int root = static_cast<int>(op.mine.root);
          if (rank == root) {
            std::vector<std::size_t> sizes(n);
            for (std::size_t r = 0; r < n; ++r) sizes[r] = op.all[r].count;
            receive_into(op, sizes, "gatherv");
          } else {
            check_count(total_of(op.all), "gatherv");  // the same decision on every rank
          }
          issue(op,
                MPI_Igatherv(op.send.data(), static_cast<int>(op.send.size()), MPI_BYTE,
                             rank == root ? op.target.data() : nullptr, rank == root ? op.counts.data() : nullptr,
                             rank == root ? op.displs.data() : nullptr, MPI_BYTE, root, data, &op.request),
                "MPI_Igatherv");
          break;
        }
        case collective_op::broadcast: {
          const int root = static_cast<int>(op.mine.root);
          const std::uint64_t bytes = op.all[static_cast<std::size_t>(root)].count;
          check_count(bytes, "broadcast");
          void* buffer = nullptr;
          if (rank == root) {
            buffer = const_cast<std::byte*>(op.send.data());  // MPI only reads the root's buffer
          } else {
            std::vector<std::size_t> sizes(n, 0);
            sizes[static_cast<std::size_t>(root)] = static_cast<std::size_t>(bytes);
            receive_into(op, sizes, "broadcast");
            buffer = op.target.data();
          }
          issue(op, MPI_Ibcast(buffer, static_cast<int>(bytes), MPI_BYTE, root, data, &op.request), "MPI_Ibcast");
          break;
        }
        case collective_op::alltoallv: {
          if (op.phase == 0) {
            op.size_send.assign(op.send_counts.begin(), op.send_counts.end());
            op.size_recv.assign(n, 0);
            issue(op,
                  MPI_Ialltoall(op.size_send.data(), 1, MPI_UINT64_T, op.size_recv.data(), 1, MPI_UINT64_T, data,
                                &op.request),
                  "MPI_Ialltoall");
          } else {
            std::vector<std::size_t> sizes(op.size_recv.begin(), op.size_recv.end());
            offsets(op.send_counts, op.send_counts_int, op.send_displs, "alltoallv");
            receive_into(op, sizes, "alltoallv");
            issue(op,
                  MPI_Ialltoallv(op.send.data(), op.send_counts_int.data(), op.send_displs.data(), MPI_BYTE,
                                 op.target.data(), op.counts.data(), op.displs.data(), MPI_BYTE, data, &op.request),
                  "MPI_Ialltoallv");
          }
          break;
        }
        case collective_op::allreduce_sum_float:
        case collective_op::allreduce_sum_double: {
          const std::size_t count = op.all[0].count;
          const std::size_t bytes = count * op.value_bytes;
          check_count(bytes, "allreduce_sum");
          std::vector<std::size_t> shard_bytes(n);
          for (std::size_t r = 0; r < n; ++r)
            shard_bytes[r] = shard_of(count, size, static_cast<int>(r)).size() * op.value_bytes;
          const std::size_t mine = shard_bytes[static_cast<std::size_t>(rank)];
          if (op.phase == 0) {
            // Shard r of every rank's values goes to rank r.
            offsets(shard_bytes, op.send_counts_int, op.send_displs, "allreduce_sum");
            op.scratch.resize(n * mine);
            op.counts.assign(n, static_cast<int>(mine));
            op.displs.resize(n);
            for (std::size_t r = 0; r < n; ++r) op.displs[r] = static_cast<int>(r * mine);
            issue(op,
                  MPI_Ialltoallv(op.values, op.send_counts_int.data(), op.send_displs.data(), MPI_BYTE,
                                 op.scratch.data(), op.counts.data(), op.displs.data(), MPI_BYTE, data, &op.request),
                  "MPI_Ialltoallv");
          } else {
            // This rank's shard, summed in rank order; then every rank gets every shard.
            op.sum_shard(op);
            offsets(shard_bytes, op.counts, op.displs, "allreduce_sum");
            issue(op,
                  MPI_Iallgatherv(op.sum.data(), static_cast<int>(mine), MPI_BYTE, op.values, op.counts.data(),
                                  op.displs.data(), MPI_BYTE, data, &op.request),
                  "MPI_Iallgatherv");
          }
          break;
        }
        case collective_op::barrier:
          op.done = true;
          break;
      }
    }

    static std::uint64_t total_of(const std::vector<detail::op_description>& all) {
      std::uint64_t total = 0;
      for (const auto& d : all) total += d.count;
      return total;
    }

    /// MPI's int counts and displacements for blocks of `sizes` bytes; throws past INT_MAX.
    static void offsets(std::span<const std::size_t> sizes, std::vector<int>& counts, std::vector<int>& displs,
                        const char* where) {
      std::uint64_t total = 0;
      for (const std::size_t s : sizes) total += s;
      check_count(total, where);
      counts.resize(sizes.size());
      displs.resize(sizes.size());
      std::size_t at = 0;
      for (std::size_t r = 0; r < sizes.size(); ++r) {
        counts[r] = static_cast<int>(sizes[r]);
        displs[r] = static_cast<int>(at);
        at += sizes[r];
      }
    }

    /// Asks the caller for memory for blocks of `sizes` bytes. If the receiver throws or
    /// gives too little, the data still moves (into scratch, so the other ranks complete)
    /// and this rank's wait() throws.
    static void receive_into(operation& op, std::span<const std::size_t> sizes, const char* where) {
      offsets(sizes, op.counts, op.displs, where);
      std::size_t total = 0;
      for (const std::size_t s : sizes) total += s;
      try {
        op.target = op.receive(sizes);
        if (op.target.size() < total)
          gradcomp::detail::fail("mpi_communicator", where, ": the receiver gave ", op.target.size(), " bytes for ",
                                 total, " bytes of blocks");
      } catch (...) {
        op.error = std::current_exception();
        op.scratch.resize(total);
        op.target = op.scratch;
      }
    }
  };

  template <class T>
  request start_sum(std::span<T> values) {
    auto op = make(detail::allreduce_op<T>(), 0, values.size());
    op->values = reinterpret_cast<std::byte*>(values.data());
    op->value_bytes = sizeof(T);
    op->sum_shard = [](operation& o) {
      const std::size_t ranks = o.counts.size(), mine = ranks == 0 ? 0 : o.scratch.size() / ranks;
      o.sum.resize(mine);
      std::vector<T> shard(mine / sizeof(T));
      detail::sum_in_rank_order<T>(
          [&](std::size_t r) { return std::span<const std::byte>(o.scratch).subspan(r * mine, mine); }, ranks,
          std::span<T>(shard));
      if (mine) std::memcpy(o.sum.data(), shard.data(), mine);
    };
    return start(std::move(op));
  }

  std::shared_ptr<operation> make(detail::collective_op kind, int root, std::uint64_t count) const {
    if (!engine_) gradcomp::detail::fail("mpi_communicator", "this communicator was moved from");
    auto op = std::make_shared<operation>();
    op->mine = {static_cast<std::uint64_t>(kind), detail::described_root(root), count};
    op->all.resize(static_cast<std::size_t>(engine_->size));
    using detail::collective_op;
    op->phases = kind == collective_op::barrier ? 0
                 : kind == collective_op::alltoallv || kind == collective_op::allreduce_sum_float ||
                         kind == collective_op::allreduce_sum_double
                     ? 2
                     : 1;
    return op;
  }

  request start(std::shared_ptr<operation> op) {
    engine& e = *engine_;
    static_assert(sizeof(detail::op_description) == 3 * sizeof(std::uint64_t));
    const int code =
        MPI_Iallgather(&op->mine, 3, MPI_UINT64_T, op->all.data(), 3, MPI_UINT64_T, e.headers, &op->request);
    check(code, "MPI_Iallgather");
    e.queue.push_back(op);
    e.progress(nullptr, false);
    return request(engine_, std::move(op));
  }

  static void check(int code, const char* call) {
    if (code == MPI_SUCCESS) return;
    char text[MPI_MAX_ERROR_STRING];
    int length = 0;
    MPI_Error_string(code, text, &length);
    gradcomp::detail::fail("mpi_communicator", call, " failed: ", std::string(text, static_cast<std::size_t>(length)));
  }

  static void check_count(std::uint64_t bytes, const char* where) {
    if (bytes > static_cast<std::uint64_t>(INT_MAX))
      gradcomp::detail::fail("mpi_communicator", where, ": ", bytes, " bytes exceed MPI's int count (", INT_MAX,
                             "); split the vector");
  }

  /// Completes every operation still in flight (MPI may use their memory), then lets the
  /// engine go (the duplicates are freed with the last request that refers to it).
  void release() noexcept {
    if (!engine_) return;
    int finalised = 0;
    MPI_Finalized(&finalised);
    if (!finalised) {
      try {
        // Front first: progress() pops completed operations from the front only. The copy
        // keeps the operation alive while it is popped.
        while (!engine_->queue.empty()) {
          const std::shared_ptr<operation> op = engine_->queue.front();
          engine_->progress(op.get(), true);
        }
      } catch (...) {
      }
    }
    engine_.reset();
  }

  std::shared_ptr<engine> engine_;
};

}  // namespace gradcomp::comm
