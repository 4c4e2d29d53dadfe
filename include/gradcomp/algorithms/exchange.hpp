#pragma once
// What the distributed schemes share: framed messages, so that a rank whose local work
// failed still takes part in the collective (and every rank then raises the same error
// instead of waiting for it forever), and the mean of decoded messages in rank order.
//
// A frame is one status byte, then either the payload's encoding (ok), an error message
// (failed), or nothing (skipped: this rank's gradient held NaN or Inf, so every rank skips
// the step). The status byte is framing, not payload: traffic counts wire_bytes only.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "../backend.hpp"
#include "../comm/communicator.hpp"
#include "../compress.hpp"
#include "../detail/host_device.hpp"
#include "../detail/strict_fp.hpp"
#include "../error.hpp"

namespace gradcomp::detail {

enum class frame_status : std::uint8_t { ok = 0, failed = 1, skipped = 2 };

/// status ok, then encode(p).
template <class Payload>
void ok_frame(const Payload& p, std::vector<std::byte>& frame) {
  frame.resize(1 + gradcomp::wire_bytes(p));
  frame[0] = static_cast<std::byte>(frame_status::ok);
  gradcomp::encode(p, std::span<std::byte>(frame).subspan(1));
}

/// status ok and no payload (a rank with nothing to send, e.g. a non-root in a gather).
inline void empty_ok_frame(std::vector<std::byte>& frame) { frame.assign(1, static_cast<std::byte>(frame_status::ok)); }

/// status skipped and nothing else.
inline void skipped_frame(std::vector<std::byte>& frame) {
  frame.assign(1, static_cast<std::byte>(frame_status::skipped));
}

inline bool is_skipped(std::span<const std::byte> frame) {
  return !frame.empty() && frame[0] == static_cast<std::byte>(frame_status::skipped);
}

/// status failed, then the message.
inline void failed_frame(std::string_view what, std::vector<std::byte>& frame) {
  frame.resize(1 + what.size());
  frame[0] = static_cast<std::byte>(frame_status::failed);
  for (std::size_t i = 0; i < what.size(); ++i) frame[1 + i] = static_cast<std::byte>(what[i]);
}

/// Runs local(frame), which fills frame with an ok frame; if it throws, frame becomes a
/// failed frame with the exception's message. Returns whether it succeeded.
template <class Local>
bool attempt(std::vector<std::byte>& frame, Local&& local) {
  try {
    local(frame);
    return true;
  } catch (const std::exception& e) {
    failed_frame(e.what(), frame);
  } catch (...) {
    failed_frame("a non-standard exception", frame);
  }
  return false;
}

/// Throws gc::error (on every rank that sees the same frames) naming the first rank whose
/// frame says it failed.
inline void throw_if_failed(std::span<const std::byte> frame, int rank, const char* where) {
  if (frame.empty()) fail(where, "rank ", rank, " sent an empty frame");
  if (frame[0] == static_cast<std::byte>(frame_status::ok) || is_skipped(frame)) return;
  std::string what(frame.size() - 1, '\0');
  for (std::size_t i = 1; i < frame.size(); ++i) what[i - 1] = static_cast<char>(frame[i]);
  fail(where, "rank ", rank, " failed: ", what);
}

inline void throw_if_any_failed(const comm::gathered_bytes& frames, const char* where) {
  for (int r = 0; r < frames.ranks(); ++r) throw_if_failed(frames.from(r), r, where);
}

/// Whether any rank's frame says skipped (call after throw_if_any_failed: a failure wins).
inline bool any_skipped(const comm::gathered_bytes& frames) {
  for (int r = 0; r < frames.ranks(); ++r)
    if (is_skipped(frames.from(r))) return true;
  return false;
}

/// Runs check() on every rank and exchanges the outcome, so that a check that fails on
/// some ranks only (a bad option passed on one rank) raises the same gc::error on every
/// rank instead of leaving the others waiting in the next collective. A collective.
template <comm::communicator Comm, class Check>
void check_on_every_rank(Comm& comm, const char* where, Check&& check) {
  std::vector<std::byte> frame;
  attempt(frame, [&](std::vector<std::byte>& f) {
    check();
    empty_ok_frame(f);
  });
  comm::gathered_bytes all;
  comm::allgatherv(comm, frame, all);
  throw_if_any_failed(all, where);
}

/// The payload bytes of an ok frame.
inline std::span<const std::byte> frame_body(std::span<const std::byte> frame) { return frame.subspan(1); }

/// Throws unless a vector has the scheme's dimension.
inline void check_length(const char* where, const char* what, std::size_t got, std::size_t dim) {
  if (got != dim) fail(where, what, " has ", got, " elements, the scheme's dimension is ", dim);
}

/// Whether every g_i is finite: what decides that a step is skipped (a loss-scale overflow).
/// ||g||^2 is finite iff every g_i is, for float (a double sum of squares can also overflow,
/// hence the exact scan then): one parallel read of g on a parallel back end.
template <class Policy, class T>
bool all_finite(const Policy& policy, std::span<const T> g) {
  if (std::isfinite(backend::run<backend::squared_norm_hook>(policy, g))) return true;
  for (const T v : g)
    if (!std::isfinite(v)) return false;
  return true;
}

/// Fills x with quiet NaN: what a skipped exchange leaves in the caller's output, so that a
/// loss scaler that checks the gradient for overflow sees it.
template <class T>
void fill_nan(std::span<T> x) {
  std::fill(x.begin(), x.end(), std::numeric_limits<T>::quiet_NaN());
}

/// out[i] = sum[i] / n (one rounding), the mean of n summed contributions. GRADCOMP_HD: the
/// device scheme (cuda/ef_sgd.cuh) calls it per element.
template <class T>
GRADCOMP_NO_FP_CONTRACT GRADCOMP_HD void divide_by(std::span<T> values, int n) {
  GRADCOMP_NO_FP_CONTRACT_BODY
  const T divisor = static_cast<T>(n);
  for (T& v : values) v /= divisor;
}

/// mean = (sum over ranks r, in rank order, of decode(frame r)) / frames.ranks(). Frames
/// must all be ok. Throws gc::error if a payload is malformed or of another dimension.
template <class Payload, class Policy, class T>
void mean_of_frames(const Policy& policy, const comm::gathered_bytes& frames, std::span<T> mean, Payload& scratch) {
  std::fill(mean.begin(), mean.end(), T(0));
  for (int r = 0; r < frames.ranks(); ++r) {
    gradcomp::decode_into(frame_body(frames.from(r)), scratch);
    gradcomp::decompress_add(policy, scratch, mean);
  }
  divide_by(mean, frames.ranks());
}

}  // namespace gradcomp::detail
