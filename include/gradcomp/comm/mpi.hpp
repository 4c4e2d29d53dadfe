#pragma once
// comm::mpi_communicator: the communicator concept over an MPI communicator (target
// gradcomp::mpi). MPI must be initialised before one is made and finalised after the last
// is gone.
//
//   MPI_Init(&argc, &argv);
//   {
//     gc::comm::mpi_communicator comm;                 // a duplicate of MPI_COMM_WORLD
//     gc::ef_sgd s(gc::top_k{.k = 1000}, comm, d, {.lr = 0.1});
//     ... s.step(gc::exec::par, x, g) ...
//   }
//   MPI_Finalize();
//
// The communicator is duplicated, so gradcomp's messages never match the caller's. Every
// collective starts with one small MPI_Allgather of (operation, root, byte count) from each
// rank: the variable sizes become known everywhere, and a rank that calls another
// collective, names another root, or passes a mismatched size is detected on every rank,
// which then raises the same gc::error instead of hanging or reading garbage. MPI errors
// are returned (MPI_ERRORS_RETURN on the duplicate) and raised as gc::error.
#include <mpi.h>

#include <array>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "../error.hpp"
#include "communicator.hpp"

namespace gradcomp::comm {

class mpi_communicator {
 public:
  /// Wraps a duplicate of comm. Throws gc::error if MPI is not initialised.
  explicit mpi_communicator(MPI_Comm comm = MPI_COMM_WORLD) {
    int initialised = 0;
    MPI_Initialized(&initialised);
    if (!initialised) gradcomp::detail::fail("mpi_communicator", "MPI is not initialised (call MPI_Init first)");
    check(MPI_Comm_dup(comm, &comm_), "MPI_Comm_dup");
    check(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
    check(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
    check(MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
  }
  mpi_communicator(const mpi_communicator&) = delete;
  mpi_communicator& operator=(const mpi_communicator&) = delete;
  mpi_communicator(mpi_communicator&& other) noexcept
      : comm_(std::exchange(other.comm_, MPI_COMM_NULL)), rank_(other.rank_), size_(other.size_) {}
  mpi_communicator& operator=(mpi_communicator&& other) noexcept {
    if (this != &other) {
      release();
      comm_ = std::exchange(other.comm_, MPI_COMM_NULL);
      rank_ = other.rank_;
      size_ = other.size_;
    }
    return *this;
  }
  ~mpi_communicator() { release(); }

  int rank() const noexcept { return rank_; }
  int size() const noexcept { return size_; }
  /// The duplicated MPI communicator (for the caller's own MPI calls on the same group).
  MPI_Comm native() const noexcept { return comm_; }

  void barrier() { headers(op_barrier, 0, 0); }

  void allgatherv(std::span<const std::byte> mine, gathered_bytes& all) {
    const auto h = headers(op_allgatherv, 0, mine.size());
    all.resize(sizes_of(h));
    const auto [counts, displs] = counts_and_displacements(all, "allgatherv");
    check(MPI_Allgatherv(mine.data(), static_cast<int>(mine.size()), MPI_BYTE, all.data.data(), counts.data(),
                         displs.data(), MPI_BYTE, comm_),
          "MPI_Allgatherv");
  }

  void gatherv(std::span<const std::byte> mine, gathered_bytes& all, int root) {
    detail::check_root("mpi_communicator::gatherv", root, size_);
    const auto h = headers(op_gatherv, root, mine.size());
    if (rank_ == root) {
      all.resize(sizes_of(h));
      const auto [counts, displs] = counts_and_displacements(all, "gatherv");
      check(MPI_Gatherv(mine.data(), static_cast<int>(mine.size()), MPI_BYTE, all.data.data(), counts.data(),
                        displs.data(), MPI_BYTE, root, comm_),
            "MPI_Gatherv");
    } else {
      all.data.clear();
      all.offsets.clear();
      check(MPI_Gatherv(mine.data(), static_cast<int>(mine.size()), MPI_BYTE, nullptr, nullptr, nullptr, MPI_BYTE,
                        root, comm_),
            "MPI_Gatherv");
    }
  }

  void broadcast(std::vector<std::byte>& buffer, int root) {
    detail::check_root("mpi_communicator::broadcast", root, size_);
    const auto h = headers(op_broadcast, root, rank_ == root ? buffer.size() : 0);
    const std::uint64_t bytes = h[static_cast<std::size_t>(root)][2];
    buffer.resize(static_cast<std::size_t>(bytes));
    check_count(bytes, "broadcast");
    check(MPI_Bcast(buffer.data(), static_cast<int>(bytes), MPI_BYTE, root, comm_), "MPI_Bcast");
  }

  void alltoallv(const scattered_bytes& send, gathered_bytes& received) {
    // The block count is checked by the header exchange, so a wrong one fails everywhere.
    const auto h = headers(op_alltoallv, 0, static_cast<std::uint64_t>(send.ranks()));
    for (int r = 0; r < size_; ++r)
      if (h[static_cast<std::size_t>(r)][2] != static_cast<std::uint64_t>(size_))
        gradcomp::detail::fail("mpi_communicator::alltoallv", "rank ", r, " has send blocks for ",
                               h[static_cast<std::size_t>(r)][2], " ranks, the group has ", size_);
    std::vector<std::uint64_t> send_sizes(static_cast<std::size_t>(size_)), recv_sizes(send_sizes.size());
    for (int r = 0; r < size_; ++r) send_sizes[static_cast<std::size_t>(r)] = send.from(r).size();
    check(MPI_Alltoall(send_sizes.data(), 1, MPI_UINT64_T, recv_sizes.data(), 1, MPI_UINT64_T, comm_), "MPI_Alltoall");
    std::vector<std::size_t> sizes(recv_sizes.begin(), recv_sizes.end());
    received.resize(sizes);
    const auto [send_counts, send_displs] = counts_and_displacements(send, "alltoallv");
    const auto [recv_counts, recv_displs] = counts_and_displacements(received, "alltoallv");
    check(MPI_Alltoallv(send.data.data(), send_counts.data(), send_displs.data(), MPI_BYTE, received.data.data(),
                        recv_counts.data(), recv_displs.data(), MPI_BYTE, comm_),
          "MPI_Alltoallv");
  }

 private:
  using op = detail::collective_op;
  static constexpr std::uint64_t op_barrier = static_cast<std::uint64_t>(op::barrier),
                                 op_allgatherv = static_cast<std::uint64_t>(op::allgatherv),
                                 op_gatherv = static_cast<std::uint64_t>(op::gatherv),
                                 op_broadcast = static_cast<std::uint64_t>(op::broadcast),
                                 op_alltoallv = static_cast<std::uint64_t>(op::alltoallv);
  using header = std::array<std::uint64_t, 3>;  // operation, root, bytes (or block count)

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

  /// Every rank's (operation, root, bytes); throws on every rank if operations or roots differ.
  std::vector<header> headers(std::uint64_t op, int root, std::uint64_t bytes) {
    const header mine{op, static_cast<std::uint64_t>(root), bytes};
    std::vector<header> all(static_cast<std::size_t>(size_));
    check(MPI_Allgather(mine.data(), 3, MPI_UINT64_T, all.data(), 3, MPI_UINT64_T, comm_), "MPI_Allgather");
    for (std::size_t r = 1; r < all.size(); ++r)
      if (all[r][0] != all[0][0] || all[r][1] != all[0][1])
        gradcomp::detail::fail("mpi_communicator", "collectives do not match: rank 0 called ", detail::collective_name(all[0][0]),
                               " (root ", all[0][1], ") but rank ", r, " called ", detail::collective_name(all[r][0]), " (root ",
                               all[r][1], ")");
    return all;
  }

  static std::vector<std::size_t> sizes_of(const std::vector<header>& h) {
    std::vector<std::size_t> sizes(h.size());
    for (std::size_t r = 0; r < h.size(); ++r) sizes[r] = static_cast<std::size_t>(h[r][2]);
    return sizes;
  }

  /// MPI's int counts and displacements for the blocks of b; throws past INT_MAX bytes.
  static std::pair<std::vector<int>, std::vector<int>> counts_and_displacements(const gathered_bytes& b,
                                                                               const char* where) {
    check_count(b.data.size(), where);
    std::vector<int> counts(static_cast<std::size_t>(b.ranks())), displs(counts.size());
    for (std::size_t r = 0; r < counts.size(); ++r) {
      counts[r] = static_cast<int>(b.offsets[r + 1] - b.offsets[r]);
      displs[r] = static_cast<int>(b.offsets[r]);
    }
    return {std::move(counts), std::move(displs)};
  }

  void release() noexcept {
    if (comm_ == MPI_COMM_NULL) return;
    int finalised = 0;
    MPI_Finalized(&finalised);
    if (!finalised) MPI_Comm_free(&comm_);
    comm_ = MPI_COMM_NULL;
  }

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0;
  int size_ = 1;
};

}  // namespace gradcomp::comm
