#pragma once
// Bytes per step and direction, as the papers count them: what one worker must send for the
// scheme to work (uplink) and what it must receive to apply the update (downlink). These
// are payload bytes on the wire (gc::wire_bytes of the encoded messages, or the raw values
// of a dense exchange), not the transport's own overhead: a ring allgather forwards blocks
// through several ranks, MPI adds envelopes, and the few bytes the collectives exchange to
// agree on sizes are not counted. docs/distributed.md lists the formula for each scheme.
#include <cstdint>

namespace gradcomp {

/// Bytes a worker sent toward the aggregation and received back.
struct traffic {
  std::uint64_t uplink = 0;
  std::uint64_t downlink = 0;

  std::uint64_t total() const noexcept { return uplink + downlink; }
  traffic& operator+=(const traffic& other) noexcept {
    uplink += other.uplink;
    downlink += other.downlink;
    return *this;
  }
  friend bool operator==(const traffic&, const traffic&) = default;
};

/// A scheme's accounting: the last step's bytes and the running totals.
struct traffic_log {
  traffic last;
  traffic total;
  std::uint64_t steps = 0;

  void record(const traffic& step) noexcept {
    last = step;
    total += step;
    ++steps;
  }
};

}  // namespace gradcomp
