#pragma once
// How EF-SGD's messages travel between the ranks: sgd_options::exchange. The exchanges
// themselves are in sparse_exchange.hpp; docs/distributed.md compares them.
#include <cstddef>
#include <limits>

namespace gradcomp {

/// How EF-SGD's messages travel (sgd_options::exchange).
enum class exchange_kind {
  allgather,           // every message to every rank; the update is the mean of all of them
  reduce_scatter,      // Ok-Topk: sums per region, global Top-k of the sum, allgather of it
  recursive_doubling,  // SparCML: partial sums swapped in log2 P rounds, global Top-k of the sum
};

/// Where the reduce-scatter's regions begin.
enum class region_balance {
  previous_selection,  // region r starts at the (r |S| / P)-th index of the last selection S
  equal,               // comm::shard_of(d, P, r), every step
};

struct exchange_options {
  /// global_k: no re-selection; the update is the mean of every message (the all-gather's
  /// result, added in the exchange's tree instead of rank order).
  static constexpr std::size_t keep_all = std::numeric_limits<std::size_t>::max();

  exchange_kind kind = exchange_kind::allgather;
  /// The k of the global Top-k (reduce_scatter, recursive_doubling): 0 takes the
  /// compressor's k (top_k{.k}); a compressor without one (hard_threshold) needs it set.
  std::size_t global_k = 0;
  region_balance balance = region_balance::previous_selection;
};

inline const char* exchange_name(exchange_kind kind) {
  switch (kind) {
    case exchange_kind::allgather:
      return "allgather";
    case exchange_kind::reduce_scatter:
      return "reduce_scatter";
    case exchange_kind::recursive_doubling:
      return "recursive_doubling";
  }
  return "an unknown exchange";
}

/// One logical message of an exchange step, as the traffic counts it (for traces and the
/// cost model, scripts/scale_model.py): the phase, the peer (-1: an allreduce), the entries
/// carried (a dense block carries len), the region length, and its payload bytes.
struct exchange_message {
  const char* phase = "";  // reduce, histogram, tie, gather; fold, round, unfold
  int peer = -1;
  bool sent = true;
  std::size_t nnz = 0;
  std::size_t len = 0;
  std::size_t bytes = 0;
};

}  // namespace gradcomp
