#pragma once
// Sparse exchanges whose traffic per rank does not grow with the number of ranks, for
// EF-SGD over a sparsifier (sgd_options::exchange). The all-gather exchange sends every
// rank's Top-k to every rank: k (P - 1) entries received. These two add the messages on
// the way and keep the global Top-k of the sum instead:
//
//   reduce_scatter (Ok-Topk, Li and Hoefler, PPoPP'22): [0, d) is cut into P contiguous
//     regions, balanced by load: region r starts at the (r |S| / P)-th index of the previous
//     step's selection S (real gradients concentrate in a few layers, so equal shards would
//     not balance); equal shards on the first step. Rank i sends the entries of its message
//     in region r to rank r (an alltoallv); rank r sums what it received; the ranks select
//     the global Top-k of the sums (global_selection.hpp: a few allreduces of a 256-bin
//     histogram); every owner's selected sums are allgathered. About 2k entries per rank
//     each way, plus 1 KB per histogram round (2 KB above d = 2^24, where counts need doubles).
//   recursive_doubling (SparCML, Renggli et al., SC'19): log2 P rounds in which partners
//     swap their partial sums (the union of the entries so far), then every rank selects
//     the global Top-k of the full sum itself. Fewest rounds; bytes grow with the union.
//
// Semantics, the same for both and exact: S = the k nonzero sums of largest magnitude (ties:
// the lower index), or every nonzero sum when k is exchange_options::keep_all; each index's
// sum is added in one fixed tree over the ranks that sent it (sparse_sum.hpp), so both
// exchanges give the same bits, on every rank and every communicator. The update is the
// mean over ranks at S. The entries of a rank's message outside S were not delivered: they
// go back to that rank's residual (error_feedback::return_unsent), so nothing is lost and
// x - mean_i e_i still follows SGD. Blocks switch to dense values when that is smaller
// (sparse_sum.hpp), so a union that becomes dense travels as a dense reduce-scatter.
//
// Errors and skips: every frame starts with a status byte (framing, not counted), so a
// rank that failed or skipped is known to all: in the reduce-scatter every rank hears from
// every rank; in recursive doubling the status is merged like the sums (the lowest failing
// rank's message wins), and reaches every rank.
#include <algorithm>
#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "../comm/collectives.hpp"
#include "../comm/communicator.hpp"
#include "../error.hpp"
#include "../payload/sparse.hpp"
#include "exchange.hpp"
#include "global_selection.hpp"
#include "exchange_options.hpp"
#include "sgd.hpp"
#include "sparse_sum.hpp"
#include "traffic.hpp"

namespace gradcomp {

namespace detail {

template <std::floating_point T>
class sparse_exchange {
 public:
  using key_type = uint_of<T>;

  sparse_exchange(exchange_options opt, std::size_t dim, std::size_t k) : opt_(opt), dim_(dim), k_(k) {}

  const exchange_options& options() const noexcept { return opt_; }
  /// The last applied step's messages and bytes.
  std::span<const exchange_message> messages() const noexcept { return messages_; }
  traffic last_traffic() const noexcept { return traffic_; }
  /// The last applied step's selection S (ascending global indices) and region starts.
  std::span<const std::size_t> selection() const noexcept { return selection_; }
  std::span<const std::size_t> regions() const noexcept { return regions_; }
  /// The entries of this rank's last message that S left out (for return_unsent).
  std::span<const std::size_t> unsent_indices() const noexcept { return unsent_index_; }
  std::span<const T> unsent_values() const noexcept { return unsent_value_; }

  /// Exchanges this rank's message m (status ok), or its failure or skip, with every rank.
  /// Returns skipped if any rank skipped; throws the same gc::error on every rank if any
  /// failed. Applied: mean = the mean over ranks at S, 0 elsewhere; selection(),
  /// unsent_*(), messages() describe the step. A collective.
  template <comm::communicator Comm, class Index>
  step_status run(Comm& comm, frame_status status, std::string_view error, const sparse_vector<T, Index>& m,
                  std::span<T> mean, const char* where) {
    where_ = where;
    pending_.clear();
    pending_traffic_ = {};
    if (status == frame_status::ok && m.dim != dim_)
      fail(where, "the message has dimension ", m.dim, ", the scheme ", dim_);
    const step_status outcome = opt_.kind == exchange_kind::reduce_scatter ? reduce_scatter(comm, status, error, m)
                                                                           : recursive_doubling(comm, status, error, m);
    if (outcome == step_status::skipped) return outcome;
    // Applied on every rank: nothing below throws but the unsent check.
    std::fill(mean.begin(), mean.end(), T(0));
    divide_into(mean, comm.size());
    collect_unsent(m);
    messages_.swap(pending_);
    traffic_ = pending_traffic_;
    selection_.swap(next_selection_);
    if (opt_.kind == exchange_kind::reduce_scatter) regions_ = bounds_;
    return outcome;
  }

 private:
  // ---- recording

  void record(const char* phase, int peer, bool sent, std::size_t nnz, std::size_t len, std::size_t bytes) {
    pending_.push_back({phase, peer, sent, nnz, len, bytes});
    (sent ? pending_traffic_.uplink : pending_traffic_.downlink) += bytes;
  }

  // ---- frames: [status][body]; failed bodies are [u32 rank][message]

  static void status_frame(frame_status s, std::vector<std::byte>& out) {
    out.push_back(static_cast<std::byte>(s));
  }

  static void failure_frame(int rank, std::string_view what, std::vector<std::byte>& out) {
    out.push_back(static_cast<std::byte>(frame_status::failed));
    const auto r = static_cast<std::uint32_t>(rank);
    const std::size_t at = out.size();
    out.resize(at + sizeof(r) + what.size());
    std::memcpy(out.data() + at, &r, sizeof(r));
    std::memcpy(out.data() + at + sizeof(r), what.data(), what.size());
  }

  struct frame_state {
    frame_status status = frame_status::ok;
    int failed_rank = 0;
    std::string what;

    void fail_with(int rank, std::string_view message) {
      if (status == frame_status::failed && failed_rank <= rank) return;
      status = frame_status::failed;
      failed_rank = rank;
      what.assign(message);
    }
    void merge(const frame_state& other) {
      if (other.status == frame_status::failed)
        fail_with(other.failed_rank, other.what);
      else if (other.status == frame_status::skipped && status == frame_status::ok)
        status = frame_status::skipped;
    }
  };

  /// Reads a frame's status; for a failed one also its rank and message. Returns the body.
  std::span<const std::byte> read_status(std::span<const std::byte> frame, int from, frame_state& state) const {
    if (frame.empty()) fail(where_, "rank ", from, " sent an empty frame");
    const auto s = static_cast<frame_status>(frame[0]);
    if (s == frame_status::failed) {
      std::uint32_t r = 0;
      if (frame.size() < 1 + sizeof(r)) fail(where_, "rank ", from, " sent a malformed failure frame");
      std::memcpy(&r, frame.data() + 1, sizeof(r));
      state.fail_with(static_cast<int>(r),
                      std::string_view(reinterpret_cast<const char*>(frame.data() + 1 + sizeof(r)), frame.size() - 1 - sizeof(r)));
      return {};
    }
    if (s == frame_status::skipped) {
      if (state.status == frame_status::ok) state.status = frame_status::skipped;
      return {};
    }
    if (s != frame_status::ok) fail(where_, "rank ", from, " sent a frame of unknown status ", static_cast<int>(frame[0]));
    return frame.subspan(1);
  }

  step_status settle(const frame_state& state) const {
    if (state.status == frame_status::failed) fail(where_, "rank ", state.failed_rank, " failed: ", state.what);
    return state.status == frame_status::skipped ? step_status::skipped : step_status::applied;
  }

  // ---- this rank's message as partial sums

  /// The entries of m in [begin, end), relative, as a settled partial sum.
  template <class Index>
  static void leaf(const sparse_vector<T, Index>& m, std::size_t begin, std::size_t end, region_sum<T>& out) {
    out.reset(end - begin);
    const auto first = std::lower_bound(m.indices.begin(), m.indices.end(), begin,
                                        [](Index i, std::size_t b) { return static_cast<std::size_t>(i) < b; });
    for (auto it = first; it != m.indices.end() && static_cast<std::size_t>(*it) < end; ++it) {
      out.index.push_back(static_cast<std::size_t>(*it) - begin);
      out.value.push_back(canonical_entry(m.values[static_cast<std::size_t>(it - m.indices.begin())]));
    }
    out.settle();
  }

  // ---- the selection

  /// Keys of the nonzero entries of s, in index order.
  void candidates(const region_sum<T>& s) {
    keys_.clear();
    s.for_each_nonzero([&](std::size_t, T v) { keys_.push_back(magnitude_key(v)); });
  }

  /// The selected entries of s (relative indices) by rule, taking `quota` of the ties.
  void take(const region_sum<T>& s, const selection_rule<key_type>& rule, std::uint64_t quota, region_sum<T>& out) const {
    out.reset(s.len);
    s.for_each_nonzero([&](std::size_t i, T v) {
      const key_type key = magnitude_key(v);
      bool keep = rule.everything || key > rule.above;
      if (!keep && rule.has_equal && key == rule.equal && quota > 0) {
        --quota;
        keep = true;
      }
      if (keep) {
        out.index.push_back(i);
        out.value.push_back(v);
      }
    });
    out.settle();
  }

  // ---- reduce-scatter

  void place_regions(int n) {
    bounds_.assign(static_cast<std::size_t>(n) + 1, 0);
    const std::size_t s = selection_.size(), ranks = static_cast<std::size_t>(n);
    for (int r = 0; r < n; ++r) {
      const auto shard = comm::shard_of(dim_, n, r);
      bounds_[static_cast<std::size_t>(r)] =
          opt_.balance == region_balance::previous_selection && s >= ranks && r > 0
              ? selection_[static_cast<std::size_t>(r) * s / ranks]
              : shard.begin;
    }
    bounds_.back() = dim_;
  }

  std::size_t region_len(int r) const {
    return bounds_[static_cast<std::size_t>(r) + 1] - bounds_[static_cast<std::size_t>(r)];
  }

  template <comm::communicator Comm, class Index>
  step_status reduce_scatter(Comm& comm, frame_status status, std::string_view error,
                             const sparse_vector<T, Index>& m) {
    const int n = comm.size(), me = comm.rank();
    place_regions(n);
    // Reduce: this rank's entries of region r go to rank r.
    std::vector<std::size_t> sizes(static_cast<std::size_t>(n));
    send_.clear();
    parts_.resize(static_cast<std::size_t>(n));
    for (int r = 0; r < n; ++r) {
      const std::size_t before = send_.size();
      if (status == frame_status::failed) {
        failure_frame(me, error, send_);
      } else {
        status_frame(status, send_);
        if (status == frame_status::ok) {
          region_sum<T>& mine = parts_[static_cast<std::size_t>(r)];
          leaf(m, bounds_[static_cast<std::size_t>(r)], bounds_[static_cast<std::size_t>(r) + 1], mine);
          if (r != me) {
            append_block(mine, send_);
            record("reduce", r, true, mine.entries(), mine.len, send_.size() - before - 1);
          }
        }
      }
      sizes[static_cast<std::size_t>(r)] = send_.size() - before;
    }
    if (n > 1) {
      comm.start_alltoallv(std::span<const std::byte>(send_), sizes, received_.receive()).wait();
    } else {
      received_.resize(sizes);
      std::copy(send_.begin(), send_.end(), received_.data.begin());
    }
    frame_state state;
    for (int j = 0; j < n; ++j) read_status(received_.from(j), j, state);
    if (const step_status s = settle(state); s == step_status::skipped) return s;

    // Sum this rank's region; a malformed block fails this rank in the gather below.
    const std::size_t len = region_len(me);
    std::string owner_error;
    try {
      for (int j = 0; j < n; ++j) {
        if (j == me) continue;  // parts_[me] is this rank's own entries already
        const auto body = received_.from(j).subspan(1);
        read_block(body, len, parts_[static_cast<std::size_t>(j)], where_, j);
        record("reduce", j, false, parts_[static_cast<std::size_t>(j)].entries(), len, body.size());
      }
      tree_sum(parts_, total_);
    } catch (const std::exception& e) {
      owner_error = e.what();
      total_.reset(len);
    }

    // Select: the global Top-k of the sums.
    candidates(total_);
    const auto reduce = [&](std::span<double> hist) {
      if (n == 1) return;
      // A bin counts at most d entries: float counts are exact (and half the bytes) up to 2^24.
      if (dim_ <= (std::size_t{1} << 24)) {
        std::copy(hist.begin(), hist.end(), float_hist_.begin());
        comm.start_allreduce_sum(std::span<float>(float_hist_)).wait();
        std::copy(float_hist_.begin(), float_hist_.end(), hist.begin());
      } else {
        comm.start_allreduce_sum(hist).wait();
      }
      const std::size_t bytes = hist.size() * (dim_ <= (std::size_t{1} << 24) ? sizeof(float) : sizeof(double));
      record("histogram", -1, true, hist.size(), hist.size(), bytes);
      record("histogram", -1, false, hist.size(), hist.size(), bytes);
    };
    const selection_rule<key_type> rule = opt_.global_k == exchange_options::keep_all
                                              ? selection_rule<key_type>{.everything = true}
                                              : select_largest<key_type>(keys_, k_, reduce);
    const std::uint64_t quota = rule.splits_ties() && n > 1 ? tie_quota(comm, rule) : rule.take_equal;
    take(total_, rule, quota, chosen_);

    // Gather every owner's selected sums.
    send_.clear();
    if (owner_error.empty()) {
      status_frame(frame_status::ok, send_);
      append_block(chosen_, send_);
      if (n > 1) record("gather", -1, true, chosen_.entries(), len, send_.size() - 1);
    } else {
      failure_frame(me, owner_error, send_);
    }
    if (n > 1) {
      comm.start_allgatherv(std::span<const std::byte>(send_), gathered_.receive()).wait();
    } else {
      const std::size_t one = send_.size();
      gathered_.resize(std::span<const std::size_t>(&one, 1));
      std::copy(send_.begin(), send_.end(), gathered_.data.begin());
    }
    frame_state gather_state;
    for (int r = 0; r < n; ++r) read_status(gathered_.from(r), r, gather_state);
    settle(gather_state);
    next_selection_.clear();
    next_sums_.clear();
    for (int r = 0; r < n; ++r) {
      const auto body = gathered_.from(r).subspan(1);
      read_block(body, region_len(r), piece_, where_, r);
      if (r != me) record("gather", r, false, piece_.entries(), region_len(r), body.size());
      const std::size_t begin = bounds_[static_cast<std::size_t>(r)];
      piece_.for_each_nonzero([&](std::size_t i, T v) {
        next_selection_.push_back(begin + i);
        next_sums_.push_back(v);
      });
    }
    return step_status::applied;
  }

  /// The share of the ties this rank takes: the ranks below it take theirs first.
  template <comm::communicator Comm>
  std::uint64_t tie_quota(Comm& comm, const selection_rule<key_type>& rule) {
    std::uint64_t mine = 0;
    for (const key_type key : keys_) mine += key == rule.equal ? 1 : 0;
    comm::gathered_bytes counts;
    comm.start_allgatherv(comm::detail::bytes_of(mine), counts.receive()).wait();
    std::uint64_t below = 0;
    for (int r = 0; r < comm.rank(); ++r) below += comm::detail::value_at<std::uint64_t>(counts.from(r));
    record("tie", -1, true, 1, 1, sizeof(mine));
    for (int r = 0; r < comm.size(); ++r)
      if (r != comm.rank()) record("tie", r, false, 1, 1, sizeof(mine));
    const std::uint64_t left = rule.take_equal > below ? rule.take_equal - below : 0;
    return std::min(left, mine);
  }

  // ---- recursive doubling

  /// Sends frame to `to` (or nothing, -1) and receives from `from` (or nothing), one
  /// alltoallv of every rank.
  template <comm::communicator Comm>
  std::span<const std::byte> swap_with(Comm& comm, int to, std::span<const std::byte> frame) {
    std::vector<std::size_t> sizes(static_cast<std::size_t>(comm.size()), 0);
    if (to >= 0) sizes[static_cast<std::size_t>(to)] = frame.size();
    comm.start_alltoallv(frame, sizes, received_.receive()).wait();
    return received_.data;  // only the sender's block is non-empty
  }

  static void frame_of(const frame_state& state, const region_sum<T>& s, std::vector<std::byte>& out) {
    out.clear();
    if (state.status == frame_status::failed) {
      failure_frame(state.failed_rank, state.what, out);
    } else {
      status_frame(state.status, out);
      if (state.status == frame_status::ok) append_block(s, out);
    }
  }

  /// Merges a received frame into (state, sum): the received sum is the lower one if
  /// `received_is_lower`.
  void merge_frame(std::span<const std::byte> frame, int from, bool received_is_lower, frame_state& state,
                   region_sum<T>& sum, const char* phase) {
    frame_state theirs;
    const auto body = read_status(frame, from, theirs);
    state.merge(theirs);
    if (state.status != frame_status::ok) return;
    read_block(body, dim_, piece_, where_, from);
    record(phase, from, false, piece_.entries(), dim_, body.size());
    if (received_is_lower)
      add_sums(piece_, sum, merged_);
    else
      add_sums(sum, piece_, merged_);
    std::swap(sum, merged_);
  }

  template <comm::communicator Comm, class Index>
  step_status recursive_doubling(Comm& comm, frame_status status, std::string_view error,
                                 const sparse_vector<T, Index>& m) {
    const int n = comm.size(), me = comm.rank();
    const summation_tree tree(n);
    frame_state state;
    if (status == frame_status::failed) state.fail_with(me, error);
    if (status == frame_status::skipped) state.status = frame_status::skipped;
    if (status == frame_status::ok) leaf(m, 0, dim_, total_);
    else total_.reset(dim_);
    const auto sent = [&](const char* phase, int to) {
      if (state.status == frame_status::ok) record(phase, to, true, total_.entries(), dim_, send_.size() - 1);
    };
    // Fold: rank 2v gives its message to 2v + 1.
    if (tree.folded > 0) {
      const bool gives = me < 2 * tree.folded && me % 2 == 0, takes = me < 2 * tree.folded && me % 2 == 1;
      frame_of(state, total_, send_);
      if (gives) sent("fold", me + 1);
      const auto got = swap_with(comm, gives ? me + 1 : -1, gives ? std::span<const std::byte>(send_) : std::span<const std::byte>());
      if (takes) merge_frame(got, me - 1, true, state, total_, "fold");
    }
    // Rounds: groups v and v ^ width swap partial sums; the lower group's comes first.
    for (int width = 1; width < tree.groups; width *= 2) {
      int partner = -1;
      if (tree.in_rounds(me)) {
        const int v = tree.group_of(me);
        partner = tree.rank_of_group(v ^ width);
        frame_of(state, total_, send_);
        sent("round", partner);
      }
      const auto got = swap_with(comm, partner, partner >= 0 ? std::span<const std::byte>(send_) : std::span<const std::byte>());
      if (partner >= 0) merge_frame(got, partner, tree.group_of(partner) < tree.group_of(me), state, total_, "round");
    }
    // Select (every rank in the rounds holds the whole sum), then hand the result back to
    // the ranks that folded.
    if (tree.in_rounds(me) && state.status == frame_status::ok) select_locally();
    if (tree.folded > 0) {
      const bool gives = me < 2 * tree.folded && me % 2 == 1, takes = me < 2 * tree.folded && me % 2 == 0;
      frame_of(state, chosen_, send_);
      if (gives && state.status == frame_status::ok)
        record("unfold", me - 1, true, chosen_.entries(), dim_, send_.size() - 1);
      const auto got = swap_with(comm, gives ? me - 1 : -1, gives ? std::span<const std::byte>(send_) : std::span<const std::byte>());
      if (takes) {
        state = {};
        const auto body = read_status(got, me + 1, state);
        if (state.status == frame_status::ok) {
          read_block(body, dim_, chosen_, where_, me + 1);
          record("unfold", me + 1, false, chosen_.entries(), dim_, body.size());
        }
      }
    }
    if (const step_status s = settle(state); s == step_status::skipped) return s;
    next_selection_.clear();
    next_sums_.clear();
    chosen_.for_each_nonzero([&](std::size_t i, T v) {
      next_selection_.push_back(i);
      next_sums_.push_back(v);
    });
    return step_status::applied;
  }

  void select_locally() {
    candidates(total_);
    const selection_rule<key_type> rule = opt_.global_k == exchange_options::keep_all
                                              ? selection_rule<key_type>{.everything = true}
                                              : select_largest<key_type>(keys_, k_, [](std::span<double>) {});
    take(total_, rule, rule.take_equal, chosen_);
  }

  // ---- after the exchange

  GRADCOMP_NO_FP_CONTRACT void divide_into(std::span<T> mean, int n) const {
    GRADCOMP_NO_FP_CONTRACT_BODY
    const T divisor = static_cast<T>(n);
    for (std::size_t j = 0; j < next_selection_.size(); ++j) mean[next_selection_[j]] = next_sums_[j] / divisor;
  }

  template <class Index>
  void collect_unsent(const sparse_vector<T, Index>& m) {
    unsent_index_.clear();
    unsent_value_.clear();
    std::size_t s = 0;
    for (std::size_t j = 0; j < m.indices.size(); ++j) {
      const auto i = static_cast<std::size_t>(m.indices[j]);
      while (s < next_selection_.size() && next_selection_[s] < i) ++s;
      if (s < next_selection_.size() && next_selection_[s] == i) continue;
      unsent_index_.push_back(i);
      unsent_value_.push_back(m.values[j]);
    }
  }

  exchange_options opt_;
  std::size_t dim_;
  std::size_t k_;
  const char* where_ = "";
  std::vector<std::size_t> regions_;  // the last applied step's region starts (and d)
  std::vector<std::size_t> bounds_;   // this step's
  std::vector<std::size_t> selection_, next_selection_;
  std::vector<T> next_sums_;
  std::vector<std::size_t> unsent_index_;
  std::vector<T> unsent_value_;
  std::vector<exchange_message> messages_, pending_;
  traffic traffic_, pending_traffic_;
  // Scratch kept across steps.
  std::vector<std::byte> send_;
  comm::gathered_bytes received_, gathered_;
  std::vector<region_sum<T>> parts_;
  region_sum<T> total_, chosen_, piece_, merged_;
  std::vector<key_type> keys_;
  std::array<float, selection_bins> float_hist_{};
};

}  // namespace detail

}  // namespace gradcomp
