#pragma once
// Typed collectives built on a communicator's byte primitives, in a fixed order so that
// every communicator (local threads, MPI) gives bit-identical results:
//   shard_of(d, n, r)              the contiguous slice of [0, d) that rank r owns
//   agree_on(comm, value, what)    every rank checks that all ranks passed the same value
//   allreduce_sum(comm, x)         x = sum over ranks, each element summed in rank order
//   reduce_scatter_sum(comm, x)    rank r gets the sum of shard r only
// A rank that passes another size gets the same gc::error as every other rank, never a hang.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "../detail/strict_fp.hpp"
#include "../error.hpp"
#include "communicator.hpp"

namespace gradcomp::comm {

/// A half-open range [begin, end) of vector indices.
struct index_range {
  std::size_t begin = 0;
  std::size_t end = 0;
  std::size_t size() const noexcept { return end - begin; }
  friend bool operator==(const index_range&, const index_range&) = default;
};

/// The shard of [0, d) that rank r of n owns: contiguous, sizes differ by at most one (the
/// first d % n ranks get one more).
constexpr index_range shard_of(std::size_t d, int n, int r) noexcept {
  const auto ranks = static_cast<std::size_t>(n), rank = static_cast<std::size_t>(r);
  const std::size_t base = d / ranks, extra = d % ranks;
  const std::size_t begin = rank * base + std::min(rank, extra);
  return {begin, begin + base + (rank < extra ? 1 : 0)};
}

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

/// Sums blocks[r][i] over ranks r in rank order into out[i] (strict, no contraction).
template <class T>
GRADCOMP_NO_FP_CONTRACT void sum_in_rank_order(const gathered_bytes& blocks, std::span<T> out) {
  GRADCOMP_NO_FP_CONTRACT_BODY
  std::vector<T> term(out.size());
  for (int r = 0; r < blocks.ranks(); ++r) {
    const auto bytes = blocks.from(r);
    if (!out.empty()) std::memcpy(term.data(), bytes.data(), out.size() * sizeof(T));
    if (r == 0)
      std::copy(term.begin(), term.end(), out.begin());
    else
      for (std::size_t i = 0; i < out.size(); ++i) out[i] += term[i];
  }
}

}  // namespace detail

/// Every rank passes `value`; throws gc::error on every rank, naming the first rank that
/// differs from rank 0, unless all are equal. `what` says what the value is (for the message).
template <communicator Comm>
void agree_on(Comm& comm, std::uint64_t value, const char* where, const char* what) {
  gathered_bytes all;
  comm.allgatherv(detail::bytes_of(value), all);
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
  comm.alltoallv(send, received);
  shard.resize(shard_of(x.size(), n, comm.rank()).size());
  detail::sum_in_rank_order(received, std::span<T>(shard));
}

/// x = the element-wise sum of every rank's x, each element summed in rank order
/// (((x_0 + x_1) + x_2) + ...): a reduce-scatter, then an allgather of the shards, so each
/// rank sends and receives about 2 (n - 1) / n of the vector. Every rank must pass the same
/// x.size().
template <communicator Comm, class T>
void allreduce_sum(Comm& comm, std::span<T> x) {
  std::vector<T> shard;
  reduce_scatter_sum(comm, std::span<const T>(x), shard);
  gathered_bytes all;
  comm.allgatherv(std::as_bytes(std::span<const T>(shard)), all);
  if (!x.empty()) std::memcpy(x.data(), all.data.data(), x.size() * sizeof(T));
}

}  // namespace gradcomp::comm
