#pragma once
// The exchange contract: what a communicator provides to gradcomp's distributed schemes
// (docs/backends.md, "The exchange contract").
//
// Collectives over the ranks 0 .. size() - 1 of one group, every one non-blocking: start_*
// takes spans of caller memory and returns a request; request.wait() completes it (and
// throws its error), request.test() says whether it is complete. The caller's memory is
// never dereferenced by the library's own code on the communicator's behalf, so a device
// communicator (NCCL over GPU buffers) fits the same contract.
//
//   start_barrier()
//   start_allgatherv(mine, receive)          every rank gets every rank's block (sizes differ)
//   start_gatherv(mine, receive, root)       the same, on root only
//   start_broadcast(mine, receive, root)     root's bytes to every other rank
//   start_alltoallv(blocks, counts, receive) rank r's block for rank j (counts[j] bytes, packed in
//                                            rank order) arrives at rank j
//   start_allreduce_sum(values)              values[i] = sum over ranks of values[i], in place,
//                                            added in rank order: ((v_0 + v_1) + v_2) + ...
// Variable sizes: receive(sizes) is called once, when every rank's byte count is known
// (sizes[r] = the bytes that come from rank r), and returns caller memory of at least
// sum(sizes) bytes, where rank r's block lands at offset sizes[0] + ... + sizes[r - 1].
//
// Rules every implementation keeps:
//   - Matching: the k-th operation a rank starts matches the k-th operation every other rank
//     starts (as in MPI and NCCL); every rank must start the same operations in the same
//     order. Several may be in flight; they may be waited in any order.
//   - Mismatch: if the k-th operations differ across ranks (kind, root, an allreduce's
//     length or value type, an alltoallv's block count), the k-th operation completes with
//     the same gc::error on every rank instead of hanging; later operations are unaffected.
//   - Memory: the send spans and the receive memory stay valid (and the send spans
//     unchanged) until the operation is complete. A request destroyed before completion
//     waits for it (errors dropped).
//   - Order of arithmetic: allreduce_sum adds in rank order, so every communicator gives the
//     same bits.
//   - Progress: an operation may advance only inside the communicator's own calls (start_*,
//     test, wait); a trainer that overlaps work with an exchange calls test() now and then.
//   - One thread per rank uses a communicator and its requests.
//
// The blocking collectives below (allgatherv into gathered_bytes, broadcast of a
// std::vector, ...) are start + wait over any communicator.
#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "../error.hpp"

namespace gradcomp::comm {

/// A half-open range [begin, end) of vector indices.
struct index_range {
  std::size_t begin = 0;
  std::size_t end = 0;
  std::size_t size() const noexcept { return end - begin; }
  friend bool operator==(const index_range&, const index_range&) = default;
};

/// The shard of [0, d) that rank r of n owns: contiguous, sizes differ by at most one (the
/// first d % n ranks get one more). allreduce_sum implementations reduce shard r on rank r.
constexpr index_range shard_of(std::size_t d, int n, int r) noexcept {
  const auto ranks = static_cast<std::size_t>(n), rank = static_cast<std::size_t>(r);
  const std::size_t base = d / ranks, extra = d % ranks;
  const std::size_t begin = rank * base + std::min(rank, extra);
  return {begin, begin + base + (rank < extra ? 1 : 0)};
}

/// Where a variable-size collective puts what it receives: called once, with the byte count
/// that comes from each rank, it returns caller memory of at least their sum.
using receiver = std::function<std::span<std::byte>(std::span<const std::size_t> sizes)>;

/// A pending operation: wait() blocks until it is complete and throws its gc::error if it
/// failed; test() makes progress and returns whether it is complete.
template <class R>
concept request_handle = std::movable<R> && requires(R& r) {
  r.wait();
  { r.test() } -> std::same_as<bool>;
};

/// The exchange contract (see the header comment).
template <class C>
concept communicator = requires(C& c, const C& cc, std::span<const std::byte> bytes,
                                std::span<const std::size_t> counts, receiver receive, std::span<float> f,
                                std::span<double> d, int root) {
  typename C::request;
  requires request_handle<typename C::request>;
  { cc.rank() } -> std::same_as<int>;
  { cc.size() } -> std::same_as<int>;
  { c.start_barrier() } -> std::same_as<typename C::request>;
  { c.start_allgatherv(bytes, receive) } -> std::same_as<typename C::request>;
  { c.start_gatherv(bytes, receive, root) } -> std::same_as<typename C::request>;
  { c.start_broadcast(bytes, receive, root) } -> std::same_as<typename C::request>;
  { c.start_alltoallv(bytes, counts, receive) } -> std::same_as<typename C::request>;
  { c.start_allreduce_sum(f) } -> std::same_as<typename C::request>;
  { c.start_allreduce_sum(d) } -> std::same_as<typename C::request>;
};

/// Byte blocks from every rank of a collective: rank r's block is
/// data[offsets[r], offsets[r + 1]).
struct gathered_bytes {
  std::vector<std::byte> data;
  std::vector<std::size_t> offsets;  // ranks + 1 entries, offsets[0] == 0

  int ranks() const noexcept { return offsets.empty() ? 0 : static_cast<int>(offsets.size() - 1); }

  std::span<const std::byte> from(int rank) const {
    if (rank < 0 || rank >= ranks())
      detail::fail("gathered_bytes::from", "rank ", rank, " is not in [0, ", ranks(), ")");
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

  /// A receiver that fills *this: blocks sized as the collective says.
  receiver receive() {
    return [this](std::span<const std::size_t> sizes) {
      resize(sizes);
      return std::span<std::byte>(data);
    };
  }

  void clear() noexcept {
    data.clear();
    offsets.clear();
  }
};

/// Send blocks of an alltoallv: the block for rank r is data[offsets[r], offsets[r + 1]).
using scattered_bytes = gathered_bytes;

// The blocking collectives, on any communicator.

template <communicator Comm>
void barrier(Comm& comm) {
  comm.start_barrier().wait();
}

/// all.from(r) == rank r's `mine`, on every rank.
template <communicator Comm>
void allgatherv(Comm& comm, std::span<const std::byte> mine, gathered_bytes& all) {
  comm.start_allgatherv(mine, all.receive()).wait();
}

/// The same, on root only (all is left empty elsewhere).
template <communicator Comm>
void gatherv(Comm& comm, std::span<const std::byte> mine, gathered_bytes& all, int root) {
  all.clear();
  comm.start_gatherv(mine, all.receive(), root).wait();
}

/// Every rank's buffer becomes root's (resized).
template <communicator Comm>
void broadcast(Comm& comm, std::vector<std::byte>& buffer, int root) {
  const bool is_root = comm.rank() == root;
  comm.start_broadcast(
          is_root ? std::span<const std::byte>(buffer) : std::span<const std::byte>(),
          [&buffer, root](std::span<const std::size_t> sizes) {
            buffer.resize(sizes[static_cast<std::size_t>(root)]);
            return std::span<std::byte>(buffer);
          },
          root)
      .wait();
}

/// received.from(r) == rank r's send.from(this rank).
template <communicator Comm>
void alltoallv(Comm& comm, const scattered_bytes& send, gathered_bytes& received) {
  std::vector<std::size_t> counts(static_cast<std::size_t>(send.ranks()));
  for (int r = 0; r < send.ranks(); ++r) counts[static_cast<std::size_t>(r)] = send.from(r).size();
  comm.start_alltoallv(std::span<const std::byte>(send.data), counts, received.receive()).wait();
}

/// The blocking collectives as members (c.barrier(), c.allgatherv(mine, all), ...), for a
/// communicator that derives from it (CRTP); they forward to the free functions above.
template <class Self>
class blocking_members {
 public:
  void barrier() { comm::barrier(self()); }
  void allgatherv(std::span<const std::byte> mine, gathered_bytes& all) { comm::allgatherv(self(), mine, all); }
  void gatherv(std::span<const std::byte> mine, gathered_bytes& all, int root) {
    comm::gatherv(self(), mine, all, root);
  }
  void broadcast(std::vector<std::byte>& buffer, int root) { comm::broadcast(self(), buffer, root); }
  void alltoallv(const scattered_bytes& send, gathered_bytes& received) { comm::alltoallv(self(), send, received); }

 private:
  Self& self() noexcept { return static_cast<Self&>(*this); }
};

namespace detail {

/// The collectives, for implementations that check every rank called the same one.
enum class collective_op : std::uint64_t {
  barrier = 1,
  allgatherv,
  gatherv,
  broadcast,
  alltoallv,
  allreduce_sum_float,
  allreduce_sum_double
};

inline const char* collective_name(std::uint64_t op) {
  switch (static_cast<collective_op>(op)) {
    case collective_op::barrier:
      return "barrier";
    case collective_op::allgatherv:
      return "allgatherv";
    case collective_op::gatherv:
      return "gatherv";
    case collective_op::broadcast:
      return "broadcast";
    case collective_op::alltoallv:
      return "alltoallv";
    case collective_op::allreduce_sum_float:
      return "allreduce_sum<float>";
    case collective_op::allreduce_sum_double:
      return "allreduce_sum<double>";
  }
  return "an unknown collective";
}

template <class T>
constexpr collective_op allreduce_op() {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "allreduce_sum takes float or double");
  return std::is_same_v<T, float> ? collective_op::allreduce_sum_float : collective_op::allreduce_sum_double;
}

/// Throws unless root names a rank of a group of `size`.
inline void check_root(const char* where, int root, int size) {
  if (root < 0 || root >= size) gradcomp::detail::fail(where, "root ", root, " is not a rank in [0, ", size, ")");
}

/// What every rank says about one collective; identical descriptions on every rank mean the
/// operations match. `count` is the byte count (allgatherv, gatherv, broadcast on the root),
/// the block count (alltoallv) or the value count (allreduce_sum).
struct op_description {
  std::uint64_t op = 0;
  std::uint64_t root = 0;
  std::uint64_t count = 0;
};

/// An alltoallv description whose block counts do not add up to its bytes.
inline constexpr std::uint64_t inconsistent_blocks = ~std::uint64_t{0};

/// A root as described to the other ranks (two's complement, so a negative one prints back).
inline std::uint64_t described_root(int root) { return static_cast<std::uint64_t>(static_cast<std::int64_t>(root)); }

/// The mismatch message for the descriptions of one operation from every rank, or "" if
/// they match. Every rank computes it from the same descriptions, so every rank throws the
/// same error.
inline std::string mismatch_of(std::span<const op_description> all, int ranks) {
  const auto root_of = [&](std::size_t r) { return std::to_string(static_cast<std::int64_t>(all[r].root)); };
  for (std::size_t r = 1; r < all.size(); ++r)
    if (all[r].op != all[0].op || all[r].root != all[0].root)
      return std::string("collectives do not match: rank 0 called ") + collective_name(all[0].op) + " (root " +
             root_of(0) + ") but rank " + std::to_string(r) + " called " + collective_name(all[r].op) + " (root " +
             root_of(r) + ")";
  const auto op = static_cast<collective_op>(all.empty() ? 0 : all[0].op);
  if ((op == collective_op::gatherv || op == collective_op::broadcast) &&
      static_cast<std::int64_t>(all[0].root) !=
          std::clamp<std::int64_t>(static_cast<std::int64_t>(all[0].root), 0, ranks - 1))
    return std::string(collective_name(all[0].op)) + ": root " + root_of(0) + " is not a rank in [0, " +
           std::to_string(ranks) + ")";
  if (op == collective_op::allreduce_sum_float || op == collective_op::allreduce_sum_double)
    for (std::size_t r = 1; r < all.size(); ++r)
      if (all[r].count != all[0].count)
        return std::string(collective_name(all[0].op)) + ": the vector length differs across ranks: rank 0 has " +
               std::to_string(all[0].count) + ", rank " + std::to_string(r) + " has " + std::to_string(all[r].count);
  if (op == collective_op::alltoallv) {
    for (std::size_t r = 0; r < all.size(); ++r) {
      if (all[r].count == inconsistent_blocks)
        return "alltoallv: rank " + std::to_string(r) + "'s send block counts do not add up to the bytes it passed";
      if (all[r].count != static_cast<std::uint64_t>(ranks))
        return "alltoallv: rank " + std::to_string(r) + " has send blocks for " + std::to_string(all[r].count) +
               " ranks, the group has " + std::to_string(ranks);
    }
  }
  return {};
}

/// out[i] = sum over r of block r's i-th T, added in rank order (blocks[r] holds out.size()
/// values of T as bytes, possibly unaligned).
template <class T, class Blocks>
void sum_in_rank_order(const Blocks& blocks, std::size_t ranks, std::span<T> out) {
  std::vector<T> term(out.size());
  for (std::size_t r = 0; r < ranks; ++r) {
    const std::span<const std::byte> bytes = blocks(r);
    if (!out.empty()) std::memcpy(r == 0 ? out.data() : term.data(), bytes.data(), out.size() * sizeof(T));
    if (r != 0)
      for (std::size_t i = 0; i < out.size(); ++i) out[i] += term[i];
  }
}

}  // namespace detail

}  // namespace gradcomp::comm
