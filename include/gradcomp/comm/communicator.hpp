#pragma once
// The communicator concept: the collectives the distributed schemes (algorithms/) need.
//
// Everything travels as bytes: a compressed message is gc::encode(payload), whose size
// differs between ranks and steps (hard-threshold), so the variable-size collectives
// (allgatherv, gatherv, alltoallv, broadcast of a buffer whose size only the root knows)
// are the primitives. Numeric sums are built on them (comm/collectives.hpp) in a fixed
// order, so every communicator gives bit-identical results for the same inputs.
//
// A communicator never dereferences the bytes it moves, and the algorithms only touch
// vectors through an execution policy (compress, decompress_add, the element-wise steps),
// so a device communicator (NCCL over GPU buffers) fits the same concept.
//
// Mismatches across ranks (a rank calling with another element count or root) must raise
// gc::error on every rank instead of hanging: implementations exchange the sizes first.
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "../error.hpp"

namespace gradcomp::comm {

/// Byte blocks from every rank of a collective: rank r's block is
/// data[offsets[r], offsets[r + 1]).
struct gathered_bytes {
  std::vector<std::byte> data;
  std::vector<std::size_t> offsets;  // ranks + 1 entries, offsets[0] == 0

  int ranks() const noexcept { return offsets.empty() ? 0 : static_cast<int>(offsets.size() - 1); }

  std::span<const std::byte> from(int rank) const {
    if (rank < 0 || rank >= ranks()) detail::fail("gathered_bytes::from", "rank ", rank, " is not in [0, ", ranks(), ")");
    const auto r = static_cast<std::size_t>(rank);
    return std::span<const std::byte>(data).subspan(offsets[r], offsets[r + 1] - offsets[r]);
  }

  /// Total bytes of all blocks but `rank`'s own (what this rank received).
  std::size_t bytes_except(int rank) const { return data.size() - from(rank).size(); }

  /// Sets the blocks' sizes (data is resized to their sum).
  void resize(std::span<const std::size_t> sizes) {
    offsets.assign(sizes.size() + 1, 0);
    for (std::size_t r = 0; r < sizes.size(); ++r) offsets[r + 1] = offsets[r] + sizes[r];
    data.resize(offsets.back());
  }
};

/// Send blocks of an alltoallv: the block for rank r is data[offsets[r], offsets[r + 1]).
using scattered_bytes = gathered_bytes;

/// The collectives, over the ranks 0 .. size() - 1 of one group. Every rank must call the
/// same collectives in the same order (as in MPI).
///   rank(), size()
///   barrier()
///   allgatherv(mine, all):          all.from(r) == rank r's `mine`, on every rank
///   gatherv(mine, all, root):       the same, on root only (all is left empty elsewhere)
///   broadcast(buffer, root):        every rank's buffer becomes root's (resized)
///   alltoallv(send, received):      received.from(r) == rank r's send.from(this rank)
template <class C>
concept communicator = requires(C& c, const C& cc, std::span<const std::byte> mine, gathered_bytes& all,
                                const scattered_bytes& send, std::vector<std::byte>& buffer, int root) {
  { cc.rank() } -> std::same_as<int>;
  { cc.size() } -> std::same_as<int>;
  c.barrier();
  c.allgatherv(mine, all);
  c.gatherv(mine, all, root);
  c.broadcast(buffer, root);
  c.alltoallv(send, all);
};

namespace detail {

/// The collectives, for implementations that check every rank called the same one.
enum class collective_op : std::uint64_t { barrier = 1, allgatherv, gatherv, broadcast, alltoallv };

inline const char* collective_name(std::uint64_t op) {
  switch (static_cast<collective_op>(op)) {
    case collective_op::barrier: return "barrier";
    case collective_op::allgatherv: return "allgatherv";
    case collective_op::gatherv: return "gatherv";
    case collective_op::broadcast: return "broadcast";
    case collective_op::alltoallv: return "alltoallv";
  }
  return "an unknown collective";
}

/// Throws unless root names a rank of a group of `size`.
inline void check_root(const char* where, int root, int size) {
  if (root < 0 || root >= size) gradcomp::detail::fail(where, "root ", root, " is not a rank in [0, ", size, ")");
}

}  // namespace detail

}  // namespace gradcomp::comm
