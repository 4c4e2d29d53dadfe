#pragma once
// Typed collectives built on a communicator, in a fixed order so that every communicator
// (local threads, MPI) gives bit-identical results:
//   shard_of(d, n, r)              the contiguous slice of [0, d) that rank r owns (communicator.hpp)
//   agree_on(comm, value, what)    every rank checks that all ranks passed the same value
//   allreduce_sum(comm, x)         x = sum over ranks, each element summed in rank order
//   reduce_scatter_sum(comm, x)    rank r gets the sum of shard r only
// A rank that passes another size gets the same gc::error as every other rank, never a hang.
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "../error.hpp"
#include "communicator.hpp"

namespace gradcomp::comm {

namespace detail {

template <class V>
std::span<const std::byte> bytes_of(const V& v) noexcept {
  return std::as_bytes(std::span<const V>(&v, 1));
}

template <class V>
V value_at(std::span<const std::byte> bytes) {
  V v;
  std::memcpy(&v, bytes.data(), sizeof(V));
  return v;
}

}  // namespace detail

/// Every rank passes `value`; throws gc::error on every rank, naming the first rank that
/// differs from rank 0, unless all are equal. `what` says what the value is (for the message).
template <communicator Comm>
void agree_on(Comm& comm, std::uint64_t value, const char* where, const char* what) {
  gathered_bytes all;
  allgatherv(comm, detail::bytes_of(value), all);
  const auto first = detail::value_at<std::uint64_t>(all.from(0));
  for (int r = 1; r < all.ranks(); ++r) {
    const auto v = detail::value_at<std::uint64_t>(all.from(r));
    if (v != first)
      gradcomp::detail::fail(where, what, " differs across ranks: rank 0 has ", first, ", rank ", r, " has ", v);
  }
}

/// Rank r receives the element-wise sum over all ranks of x's shard r (shard_of(x.size(), n, r)),
/// summed in rank order, in `shard` (resized). Every rank must pass the same x.size().
template <communicator Comm, class T>
void reduce_scatter_sum(Comm& comm, std::span<const T> x, std::vector<T>& shard) {
  const char* where = "comm::reduce_scatter_sum";
  agree_on(comm, x.size(), where, "the vector length");
  const int n = comm.size();
  scattered_bytes send;
  std::vector<std::size_t> sizes(static_cast<std::size_t>(n));
  for (int r = 0; r < n; ++r) sizes[static_cast<std::size_t>(r)] = shard_of(x.size(), n, r).size() * sizeof(T);
  send.resize(sizes);
  if (!x.empty()) std::memcpy(send.data.data(), x.data(), x.size() * sizeof(T));  // shards are contiguous, in order
  gathered_bytes received;
  alltoallv(comm, send, received);
  shard.resize(shard_of(x.size(), n, comm.rank()).size());
  detail::sum_in_rank_order<T>([&](std::size_t r) { return received.from(static_cast<int>(r)); },
                               static_cast<std::size_t>(received.ranks()), std::span<T>(shard));
}

/// x = the element-wise sum of every rank's x, each element summed in rank order
/// (((x_0 + x_1) + x_2) + ...), on every rank: the communicator's allreduce_sum. Every rank
/// must pass the same x.size() (else the same gc::error on every rank).
template <communicator Comm, class T>
  requires std::same_as<T, float> || std::same_as<T, double>
void allreduce_sum(Comm& comm, std::span<T> x) { comm.start_allreduce_sum(x).wait(); }

}  // namespace gradcomp::comm
