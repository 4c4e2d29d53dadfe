#pragma once
// The server side of the bidirectional schemes (DoubleSqueeze, LIEC-SGD): where the server
// lives, and one round trip of compressed messages through it.
//
// server_mode::single: rank `root` serves the whole vector. Workers' messages go up with a
//   gatherv; the server's one message comes down with a broadcast.
// server_mode::sharded: rank r serves shard r of the vector (comm::shard_of), so no rank
//   carries the whole server load. Every worker compresses each shard separately (as in
//   layer-wise compression: top_k{k} keeps k per shard); the shard messages go up with an
//   alltoallv and the server messages come down with an allgatherv.
// In both, a failure anywhere (a worker's compressor, a malformed message, the server's
// compressor) reaches every rank as the same gc::error, and a worker whose gradient holds
// NaN or Inf makes every server send "skipped" down, so every rank skips the step.
#include <algorithm>
#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "../comm/collectives.hpp"
#include "../comm/communicator.hpp"
#include "../compress.hpp"
#include "../error.hpp"
#include "../feedback/error_feedback.hpp"
#include "exchange.hpp"
#include "sgd.hpp"
#include "traffic.hpp"

namespace gradcomp {

enum class server_mode { single, sharded };

struct server_options {
  server_mode mode = server_mode::single;
  int root = 0;  // the serving rank in single mode
};

/// Which rank serves which slice of [0, dim).
struct server_layout {
  server_mode mode = server_mode::single;
  int root = 0;
  int ranks = 1;
  std::size_t dim = 0;

  int shards() const noexcept { return mode == server_mode::single ? 1 : ranks; }
  comm::index_range shard(int s) const noexcept {
    return mode == server_mode::single ? comm::index_range{0, dim} : comm::shard_of(dim, ranks, s);
  }
  int owner(int s) const noexcept { return mode == server_mode::single ? root : s; }
  /// The shard this rank serves, or -1 if it serves none.
  int served_by(int rank) const noexcept {
    if (mode == server_mode::sharded) return rank;
    return rank == root ? 0 : -1;
  }
};

namespace detail {

/// The layout for opt (its root is checked by check_server_options, on every rank).
inline server_layout make_server_layout(const server_options& opt, int ranks, std::size_t dim) {
  return {opt.mode, opt.root, ranks, dim};
}

inline void check_server_options(const server_options& opt, int ranks, const char* where) {
  if (opt.mode != server_mode::single && opt.mode != server_mode::sharded)
    fail(where, "server mode ", static_cast<int>(opt.mode), " is not single or sharded");
  comm::detail::check_root(where, opt.root, ranks);
}

/// What the bidirectional schemes check at construction, as one collective: the options on
/// every rank, then that all ranks agree on the dimension and the server placement.
template <comm::communicator Comm>
void check_bidirectional_setup(Comm& comm, double lr, const server_options& server, std::size_t dim,
                               const char* where) {
  check_on_every_rank(comm, where, [&] {
    check_sgd_options({.lr = lr}, where);
    check_server_options(server, comm.size(), where);
  });
  comm::agree_on(comm, dim, where, "the dimension");
  comm::agree_on(comm, static_cast<std::uint64_t>(server.mode), where, "the server mode");
  comm::agree_on(comm, static_cast<std::uint64_t>(server.root), where, "the server root");
}

/// Throws the error a server put in a failed down frame, verbatim (it already names the
/// rank and the cause).
inline void throw_if_down_failed(std::span<const std::byte> frame) {
  if (!frame.empty() && (frame[0] == static_cast<std::byte>(frame_status::ok) || is_skipped(frame))) return;
  std::string what(frame.empty() ? 0 : frame.size() - 1, '\0');
  for (std::size_t i = 1; i < frame.size(); ++i) what[i - 1] = static_cast<char>(frame[i]);
  throw error(what);
}

/// The buffers of one round trip through the server(s). A scheme keeps them across steps,
/// so that once the message sizes have settled a step allocates nothing.
template <class T, class WorkerPayload, class ServerPayload>
struct round_buffers {
  std::vector<std::vector<std::byte>> up;  // this worker's frame for each shard
  comm::scattered_bytes send;              // sharded: the up frames, packed for alltoallv
  comm::gathered_bytes from_workers;       // on a serving rank: every worker's frame for its shard
  std::vector<T> mean;                     // the mean of the decoded worker messages
  WorkerPayload worker_message;            // decode scratch
  std::vector<std::byte> down;             // this rank's server frame (single: root's, after the broadcast)
  comm::gathered_bytes from_servers;       // sharded: every shard's server frame
  ServerPayload server_message;            // decode scratch
};

/// What a round trip did: this worker's bytes, and whether the step was skipped.
struct round_outcome {
  traffic bytes;
  step_status status = step_status::applied;
};

/// One round trip through the server(s).
///   buffers.up[s]: this worker's frame for shard s (an ok frame of its message, a failed
///           frame, or a skipped frame)
///   serve(s, mean) -> const ServerPayload&: on the rank that serves shard s, given the mean
///           over workers of their decoded messages for s; may throw
///   update: receives sum over shards of decode(server message) at the shard's offset
/// Returns this worker's traffic: messages that leave the rank (up) and server messages
/// from other ranks (down); a worker's message to a server on its own rank does not travel.
/// If any worker skipped, every server sends "skipped" instead of serving and the outcome
/// is skipped on every rank (update untouched). Throws on every rank if any part failed;
/// `served` tells whether serve() returned.
template <class T, class WorkerPayload, class ServerPayload, comm::communicator Comm, class Policy, class Serve>
round_outcome server_round(Comm& comm, const Policy& policy, const server_layout& layout,
                           round_buffers<T, WorkerPayload, ServerPayload>& buffers, Serve&& serve, std::span<T> update,
                           bool& served, const char* where) {
  const int me = comm.rank();
  const bool single = layout.mode == server_mode::single;
  auto& up = buffers.up;
  served = false;
  traffic t;
  // Up: the serving rank(s) collect every worker's frame for their shard.
  if (single) {
    comm::gatherv(comm, up[0], buffers.from_workers, layout.root);
    if (me != layout.root) t.uplink += frame_body(up[0]).size();
  } else {
    std::vector<std::size_t> sizes(up.size());
    for (std::size_t s = 0; s < up.size(); ++s) sizes[s] = up[s].size();
    buffers.send.resize(sizes);
    for (std::size_t s = 0; s < up.size(); ++s)
      std::copy(up[s].begin(), up[s].end(), buffers.send.data.begin() + static_cast<std::ptrdiff_t>(buffers.send.offsets[s]));
    comm::alltoallv(comm, buffers.send, buffers.from_workers);
    for (int s = 0; s < layout.shards(); ++s)
      if (s != me) t.uplink += frame_body(up[static_cast<std::size_t>(s)]).size();
  }
  // Serve: mean of the decoded messages, then the server's own compression.
  const int shard = layout.served_by(me);
  if (shard >= 0) {
    attempt(buffers.down, [&](std::vector<std::byte>& frame) {
      throw_if_any_failed(buffers.from_workers, where);
      if (any_skipped(buffers.from_workers)) {
        skipped_frame(frame);
        return;
      }
      buffers.mean.resize(layout.shard(shard).size());
      mean_of_frames(policy, buffers.from_workers, std::span<T>(buffers.mean), buffers.worker_message);
      const ServerPayload& m = serve(shard, std::span<const T>(buffers.mean));
      served = true;
      ok_frame(m, frame);
    });
  } else {
    empty_ok_frame(buffers.down);
  }
  // Down: every worker gets every server message.
  if (single) {
    comm::broadcast(comm, buffers.down, layout.root);
    throw_if_down_failed(buffers.down);
    if (is_skipped(buffers.down)) return {t, step_status::skipped};
    if (me != layout.root) t.downlink += frame_body(buffers.down).size();
  } else {
    comm::allgatherv(comm, buffers.down, buffers.from_servers);
    for (int s = 0; s < buffers.from_servers.ranks(); ++s) throw_if_down_failed(buffers.from_servers.from(s));
    if (any_skipped(buffers.from_servers)) return {t, step_status::skipped};
    for (int s = 0; s < buffers.from_servers.ranks(); ++s)
      if (s != me) t.downlink += frame_body(buffers.from_servers.from(s)).size();
  }
  std::fill(update.begin(), update.end(), T(0));
  for (int s = 0; s < layout.shards(); ++s) {
    const comm::index_range range = layout.shard(s);
    const std::span<const std::byte> frame = single ? std::span<const std::byte>(buffers.down) : buffers.from_servers.from(s);
    gradcomp::decode_into(frame_body(frame), buffers.server_message);
    gradcomp::decompress_add(policy, buffers.server_message, update.subspan(range.begin, range.size()));
  }
  return {t, step_status::applied};
}

/// The step both bidirectional schemes share, around their own worker compression (with
/// the scheme's buffers):
///   validate(): checks the step's settings (may throw);
///   compress_shard(s, g_s, frame): compresses shard s of g into an ok frame (may throw);
///   undo_shards(n): takes back the compression of the first n shards.
/// Checks the lengths of x and g, builds the up frames (a local failure becomes a failed
/// frame for every shard, so it reaches every rank; a g holding NaN or Inf a skipped frame),
/// goes through the server(s), whose error feedback `server` (this rank's shard, if any)
/// compresses the mean with scale 1, and on any failure undoes the workers and the server
/// before rethrowing; a skipped step is undone the same way. `update` receives the decoded
/// server messages. Returns this worker's traffic and whether the step was skipped.
template <class WorkerPayload, class ServerC, class T, comm::communicator Comm, class Policy, class Validate,
          class CompressShard, class UndoShards>
round_outcome two_way_step(Comm& comm, const Policy& policy, const server_layout& layout,
                           std::vector<error_feedback<ServerC, T>>& server,
                           round_buffers<T, WorkerPayload, typename error_feedback<ServerC, T>::message_type>& buffers,
                           std::span<const T> x, std::span<const T> g, std::span<T> update, Validate&& validate,
                           CompressShard&& compress_shard, UndoShards&& undo_shards, const char* where) {
  using server_payload = typename error_feedback<ServerC, T>::message_type;
  const auto shards = static_cast<std::size_t>(layout.shards());
  auto& up = buffers.up;
  up.resize(shards);
  std::size_t compressed = 0;
  bool skip = false;
  std::vector<std::byte> failure;
  const bool ok = attempt(failure, [&](std::vector<std::byte>&) {
    validate();
    check_length(where, "x", x.size(), layout.dim);
    check_length(where, "the gradient", g.size(), layout.dim);
    if (!all_finite(policy, g)) {
      skip = true;
      return;
    }
    for (std::size_t s = 0; s < shards; ++s) {
      const comm::index_range range = layout.shard(static_cast<int>(s));
      compress_shard(s, g.subspan(range.begin, range.size()), up[s]);
      ++compressed;
    }
  });
  if (!ok)
    for (auto& frame : up) frame = failure;
  else if (skip)
    for (auto& frame : up) skipped_frame(frame);
  bool served = false;
  round_outcome outcome;
  try {
    outcome = server_round(
        comm, policy, layout, buffers,
        [&](int, std::span<const T> mean) -> const server_payload& {
          return server.front().compress(policy, mean, T(1));
        },
        update, served, where);
  } catch (...) {
    undo_shards(compressed);
    if (served) server.front().undo();
    throw;
  }
  if (outcome.status == step_status::skipped) undo_shards(compressed);  // no server served
  return outcome;
}

}  // namespace detail

}  // namespace gradcomp
