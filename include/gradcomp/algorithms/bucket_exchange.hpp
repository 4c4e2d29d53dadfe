#pragma once
// gc::bucket_exchange: compressed, error-fed gradient averaging per bucket, the way a DDP
// communication hook works. The caller's optimizer (Adam, SGD with weight decay, ...) gets
// the mean decoded gradient of every bucket and applies it itself.
//
//   gc::bucket_exchange ex(gc::top_k{.k = 1000}, comm, bucket_sizes);   // a collective
//   // during backward, as each bucket's gradient is ready (same order on every rank):
//   ex.start(gc::exec::par, b, std::span<const float>(grad_b), loss_scale);
//   // before the optimizer step, for every bucket:
//   if (ex.finish(gc::exec::par, b, std::span<float>(update_b)) == gc::step_status::skipped) ...
//
// Bucket b has its own dimension and its own error feedback, in gradient units:
//     p_b = e_b + g_b / S;   m_b = C(p_b);   e_b = p_b - decode(m_b)
//     update_b = mean over ranks of decode(m_b)
// start() compresses and starts the non-blocking exchange (communicator.hpp); finish()
// waits for it and writes the mean. Several buckets may be in flight at once; they may be
// started in any order, and finished in any order, but every rank must start them in the
// same order (the exchange contract's matching rule; a rank that starts another bucket
// makes finish fail with the same gc::error everywhere). The exchange is picked from the
// compressor's aggregation class (aggregation.hpp): allreduce-class messages (random-k,
// identity) are summed in compressed form, the others are allgathered and decoded.
//
// A bucket whose gradient holds NaN or Inf on any rank is skipped on every rank: finish()
// returns step_status::skipped, fills the caller's output with NaN (so a loss scaler that
// checks the gradients skips the step as it would without compression) and leaves every
// residual, metric and seeded compressor step as it was; undo(b) takes back the buckets
// that were applied in that step, so that the skipped step leaves no trace at all. Any
// other failure (a wrong length, a compressor error, mismatched buckets) throws the same
// gc::error on every rank from finish() and also changes nothing.
#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../aggregation.hpp"
#include "../comm/collectives.hpp"
#include "../comm/communicator.hpp"
#include "../compress.hpp"
#include "../concepts.hpp"
#include "../error.hpp"
#include "../execution.hpp"
#include "../feedback/error_feedback.hpp"
#include "exchange.hpp"
#include "sgd.hpp"
#include "summable.hpp"
#include "traffic.hpp"

namespace gradcomp {

namespace detail {

/// One error-fed exchange of one vector (a bucket, or EF-SGD's whole model): this rank's
/// error feedback and everything the exchange keeps between start and finish. Frames are
/// [status u8][tag u64][body]: the tag (the bucket index) lets finish() check that every
/// rank exchanged the same bucket; the body is the encoded message (gather class), the
/// summation key (allreduce class; the values travel in an allreduce_sum) or the error.
template <class C, comm::communicator Comm, std::floating_point T>
  requires compressor<C, T>
class feedback_round {
 public:
  using payload_type = payload_t<C, T>;
  static constexpr bool summed = aggregation_of_v<C> == aggregation_class::allreduce;
  static_assert(!summed || summable_payload<payload_type>,
                "a compressor of aggregation_class::allreduce needs gc::summation<its payload> (summable.hpp)");

  feedback_round(C c, std::size_t dim) : feedback_(std::move(c), dim, feedback_storage::double_buffered) {}

  std::size_t dim() const noexcept { return feedback_.dim(); }
  bool in_flight() const noexcept { return in_flight_; }
  const error_feedback<C, T>& feedback() const noexcept { return feedback_; }
  const traffic_log& bytes() const noexcept { return traffic_; }
  /// Drops the residual (plain compressed SGD: ef_sgd with error_feedback = false); the
  /// applied exchange can no longer be taken back.
  void clear_error() { feedback_.clear_error(); }

  /// This rank's part: validate() (may throw), the gradient's length, then, unless some g_i
  /// is not finite (a skipped frame), the error-feedback step on prepare()'s {input, scale};
  /// then starts the exchange. Local failures become a failed frame, so they reach every
  /// rank at finish(). Throws at once only if the communicator does.
  template <class Policy, class Validate, class Prepare>
  void start(Comm& comm, const Policy& policy, std::uint64_t tag, std::span<const T> g, const char* where,
             Validate&& validate, Prepare&& prepare) {
    if (in_flight_) fail(where, "bucket ", tag, " is already in flight (finish it first)");
    values_.clear();
    std::string error;
    const frame_status status = compress_only(policy, g, where, validate, prepare, error);
    if (status == frame_status::failed) {
      failed(tag, error);
    } else if (status == frame_status::skipped) {
      frame_header(frame_status::skipped, tag, 0);
    } else {
      try {
        const payload_type& m = feedback_.message();
        if constexpr (summed) {
          const auto key = summation<payload_type>::key(m);
          frame_header(frame_status::ok, tag, key.size() * sizeof(std::uint64_t));
          std::memcpy(frame_.data() + header_bytes, key.data(), key.size() * sizeof(std::uint64_t));
          const auto v = summation<payload_type>::values(m);
          values_.assign(v.begin(), v.end());
        } else {
          frame_header(frame_status::ok, tag, gradcomp::wire_bytes(m));
          gradcomp::encode(m, std::span<std::byte>(frame_).subspan(header_bytes));
        }
      } catch (const std::exception& e) {
        failed(tag, e.what());
      } catch (...) {
        failed(tag, "a non-standard exception");
      }
    }
    try {
      frames_request_.emplace(comm.start_allgatherv(frame_, frames_.receive()));
      // A rank without values (failed, skipped) contributes none: the sum then fails alike on
      // every rank, and finish() reports the frames' reason instead.
      if constexpr (summed) values_request_.emplace(comm.start_allreduce_sum(std::span<T>(values_)));
    } catch (...) {
      frames_request_.reset();
      values_request_.reset();
      take_back();
      throw;
    }
    in_flight_ = true;
  }

  /// start()'s local part alone, for exchanges with a protocol of their own
  /// (sparse_exchange.hpp): validate(), the gradient's length, then the error-feedback step
  /// unless some g_i is not finite. Returns ok (feedback().message() is m_i), skipped, or
  /// failed with its message in `error` (nothing changed). Follow it with applied() or abandon().
  template <class Policy, class Validate, class Prepare>
  frame_status compress_only(const Policy& policy, std::span<const T> g, const char* where, Validate&& validate,
                             Prepare&& prepare, std::string& error) {
    compressed_ = false;
    applied_ = false;
    try {
      validate();
      check_length(where, "the gradient", g.size(), dim());
      if (!all_finite(policy, g)) return frame_status::skipped;
      const auto [input, scale] = prepare();
      feedback_.compress(policy, input, scale);
      compressed_ = true;
      return frame_status::ok;
    } catch (const std::exception& e) {
      error = e.what();
    } catch (...) {
      error = "a non-standard exception";
    }
    take_back();
    return frame_status::failed;
  }

  /// compress_only's exchange applied: records its bytes.
  void applied(const traffic& t) {
    compressed_ = false;
    previous_traffic_ = traffic_;
    traffic_.record(t);
    applied_ = true;
  }

  /// compress_only's exchange failed or skipped: takes the error-feedback step back.
  void abandon() noexcept { take_back(); }

  /// The error feedback, for exchanges that return undelivered entries to it.
  error_feedback<C, T>& feedback() noexcept { return feedback_; }

  /// Whether finish() would not block.
  bool test() {
    if (!in_flight_) return true;
    bool done = frames_request_->test();
    if constexpr (summed) done = values_request_->test() && done;
    return done;
  }

  /// Waits for the exchange and writes mean over ranks of decode(m_r) into mean (the
  /// caller checked its length). Returns skipped (mean untouched) if any rank skipped.
  /// Throws the same gc::error on every rank if any rank failed, the ranks exchanged
  /// different tags, or their messages do not add up; this rank's step is then undone.
  template <class Policy>
  step_status finish(const Comm& comm, const Policy& policy, std::span<T> mean, const char* where) {
    if (!in_flight_) fail(where, "no exchange was started for this bucket");
    in_flight_ = false;
    std::exception_ptr frames_error, values_error;
    try {
      frames_request_->wait();
    } catch (...) {
      frames_error = std::current_exception();
    }
    if constexpr (summed) {
      try {
        values_request_->wait();
      } catch (...) {
        values_error = std::current_exception();
      }
    }
    frames_request_.reset();
    values_request_.reset();
    try {
      if (frames_error) std::rethrow_exception(frames_error);
      check_frames(where);
      if (any_skipped()) {
        take_back();
        return step_status::skipped;
      }
      traffic t;
      if constexpr (summed) {
        check_keys(where);
        if (values_error) std::rethrow_exception(values_error);
        divide_by(std::span<T>(values_), comm.size());
        summation<payload_type>::with_values(feedback_.message(), values_, scratch_);
        apply(policy, std::span<const payload_type>(&scratch_, 1), mean);
        t = {.uplink = values_.size() * sizeof(T), .downlink = values_.size() * sizeof(T)};
      } else {
        // Decode everything before writing to mean: a malformed message then leaves it as it was.
        decoded_.resize(static_cast<std::size_t>(frames_.ranks()));
        for (int r = 0; r < frames_.ranks(); ++r) {
          const auto body = frames_.from(r).subspan(header_bytes);
          gradcomp::decode_into(body, decoded_[static_cast<std::size_t>(r)]);
          (r == comm.rank() ? t.uplink : t.downlink) += body.size();
        }
        apply(policy, std::span<const payload_type>(decoded_), mean);
        divide_by(mean, frames_.ranks());
      }
      compressed_ = false;
      previous_traffic_ = traffic_;
      traffic_.record(t);
      applied_ = true;
      return step_status::applied;
    } catch (...) {
      take_back();
      throw;
    }
  }

  /// Takes back the exchange the last finish() applied: the residual, the metrics, a seeded
  /// compressor's step and the byte counts return to what they were before its start().
  /// Only once, and only before the bucket starts again.
  void undo(const char* where) {
    if (in_flight_ || !applied_ || !feedback_.can_undo())
      fail(where,
           "there is no finished exchange to take back (only the last one, once, before the bucket starts again)");
    feedback_.undo();
    traffic_ = previous_traffic_;
    applied_ = false;
  }

 private:
  static constexpr std::size_t header_bytes = 1 + sizeof(std::uint64_t);

  void frame_header(frame_status status, std::uint64_t tag, std::size_t body) {
    frame_.resize(header_bytes + body);
    frame_[0] = static_cast<std::byte>(status);
    std::memcpy(frame_.data() + 1, &tag, sizeof(tag));
  }

  void failed(std::uint64_t tag, std::string_view what) {
    take_back();
    values_.clear();
    frame_header(frame_status::failed, tag, what.size());
    std::memcpy(frame_.data() + header_bytes, what.data(), what.size());
  }

  /// Undoes this rank's error-feedback step, if it took one.
  void take_back() noexcept {
    if (compressed_) feedback_.undo();
    compressed_ = false;
  }

  std::uint64_t tag_of(int r) const {
    std::uint64_t tag;
    std::memcpy(&tag, frames_.from(r).data() + 1, sizeof(tag));
    return tag;
  }

  std::span<const std::byte> body_of(int r) const { return frames_.from(r).subspan(header_bytes); }

  /// A failure anywhere, or ranks that exchanged different tags, fails every rank alike.
  void check_frames(const char* where) const {
    for (int r = 0; r < frames_.ranks(); ++r) {
      const auto f = frames_.from(r);
      if (f.size() < header_bytes) fail(where, "rank ", r, " sent a malformed frame of ", f.size(), " bytes");
      if (f[0] == static_cast<std::byte>(frame_status::failed)) {
        const auto body = body_of(r);
        fail(where, "rank ", r, " failed: ", std::string_view(reinterpret_cast<const char*>(body.data()), body.size()));
      }
    }
    for (int r = 1; r < frames_.ranks(); ++r)
      if (tag_of(r) != tag_of(0))
        fail(where, "the ranks exchanged different buckets: rank 0 bucket ", tag_of(0), ", rank ", r, " bucket ",
             tag_of(r), "; every rank must start its buckets in the same order");
  }

  bool any_skipped() const {
    for (int r = 0; r < frames_.ranks(); ++r)
      if (frames_.from(r)[0] == static_cast<std::byte>(frame_status::skipped)) return true;
    return false;
  }

  /// Allreduce class: the messages add up only if their keys agree.
  void check_keys(const char* where) const {
    using key_type = decltype(summation<payload_type>::key(std::declval<const payload_type&>()));
    const auto key_of = [&](int r) {
      key_type k;
      const auto body = body_of(r);
      if (body.size() != sizeof(k)) fail(where, "rank ", r, " sent a malformed key of ", body.size(), " bytes");
      std::memcpy(k.data(), body.data(), sizeof(k));
      return k;
    };
    const key_type first = key_of(0);
    for (int r = 1; r < frames_.ranks(); ++r)
      if (const key_type k = key_of(r); k != first)
        fail(where, summation<payload_type>::label, " differ across ranks: rank 0 has ",
             describe_key<payload_type>(first), ", rank ", r, " has ", describe_key<payload_type>(k), ": ",
             summation<payload_type>::hint);
  }

  /// mean = sum of decode(messages[r]) in rank order (from zero). If a message does not fit
  /// (a user compressor's wrong dimension), mean is left NaN rather than half-summed.
  template <class Policy>
  static void apply(const Policy& policy, std::span<const payload_type> messages, std::span<T> mean) {
    std::fill(mean.begin(), mean.end(), T(0));
    try {
      for (const payload_type& m : messages) gradcomp::decompress_add(policy, m, mean);
    } catch (...) {
      fill_nan(mean);
      throw;
    }
  }

  error_feedback<C, T> feedback_;
  std::vector<std::byte> frame_;       // this rank's frame
  comm::gathered_bytes frames_;        // every rank's frame
  std::vector<T> values_;              // allreduce class: this rank's values, then their sum
  payload_type scratch_;               // allreduce class: the summed message
  std::vector<payload_type> decoded_;  // gather class: every rank's message
  std::optional<typename Comm::request> frames_request_, values_request_;
  bool in_flight_ = false;
  bool compressed_ = false;
  bool applied_ = false;  // the last finish() applied, and nothing has started since
  traffic_log traffic_;
  traffic_log previous_traffic_;  // what undo() restores
};

}  // namespace detail

template <class C, comm::communicator Comm, std::floating_point T = float>
  requires compressor<C, T>
class bucket_exchange {
 public:
  using compressor_type = C;
  using payload_type = payload_t<C, T>;
  static constexpr aggregation_class aggregation = aggregation_of_v<C>;

  /// One error feedback of dims[b] values per bucket b, each with a copy of c. A collective:
  /// every rank must pass the same bucket sizes (else the same gc::error on every rank).
  bucket_exchange(C c, Comm& comm, std::span<const std::size_t> dims) : comm_(&comm) {
    const char* where = "bucket_exchange";
    comm::agree_on(comm, dims.size(), where, "the number of buckets");
    for (std::size_t b = 0; b < dims.size(); ++b) {
      comm::agree_on(comm, dims[b], where, "a bucket's size");
      buckets_.emplace_back(c, dims[b]);
    }
  }
  bucket_exchange(C c, Comm& comm, std::initializer_list<std::size_t> dims)
      : bucket_exchange(std::move(c), comm, std::span<const std::size_t>(dims.begin(), dims.size())) {}

  /// Bucket b compresses with compressors[b] (say, Top-k with k in proportion to the
  /// bucket's size). A collective; every rank must pass one compressor per bucket.
  bucket_exchange(std::vector<C> compressors, Comm& comm, std::span<const std::size_t> dims) : comm_(&comm) {
    const char* where = "bucket_exchange";
    detail::check_on_every_rank(comm, where, [&] {
      if (compressors.size() != dims.size())
        detail::fail(where, "got ", compressors.size(), " compressors for ", dims.size(), " buckets");
    });
    comm::agree_on(comm, dims.size(), where, "the number of buckets");
    for (std::size_t b = 0; b < dims.size(); ++b) {
      comm::agree_on(comm, dims[b], where, "a bucket's size");
      buckets_.emplace_back(std::move(compressors[b]), dims[b]);
    }
  }

  std::size_t buckets() const noexcept { return buckets_.size(); }
  std::size_t dim(std::size_t b) const { return at(b, "bucket_exchange::dim").dim(); }
  bool in_flight(std::size_t b) const { return at(b, "bucket_exchange::in_flight").in_flight(); }

  /// Compresses this rank's gradient g for bucket b (g holds loss_scale times the gradient)
  /// with the bucket's residual, p = e + g / loss_scale, and starts the bucket's exchange.
  /// Returns without waiting for the other ranks. A bad g or loss_scale is reported by
  /// finish(), on every rank; a bucket index out of range or a bucket already in flight
  /// throws here, on this rank.
  template <execution_policy Policy>
  void start(const Policy& policy, std::size_t b, std::span<const T> g, double loss_scale = 1.0) {
    const char* where = "bucket_exchange::start";
    detail::feedback_round<C, Comm, T>& bucket = at(b, where);
    bucket.start(
        *comm_, policy, b, g, where,
        [&] {
          if (!(loss_scale > 0.0) || !std::isfinite(loss_scale))
            detail::fail(where, "loss_scale must be finite and > 0 (got ", loss_scale, ")");
        },
        [&] {
          return std::pair{g, detail::unscale_factor<T>(1.0, loss_scale)};
        });
  }

  /// Whether finish(b) would return without waiting (lets the exchange progress).
  bool test(std::size_t b) { return at(b, "bucket_exchange::test").test(); }

  /// Waits for bucket b's exchange and writes the mean over ranks of the decoded messages
  /// into update (dim(b) values, gradient units). Returns applied, or skipped (some rank's
  /// gradient held NaN or Inf: update is NaN, nothing changed). Throws the same gc::error on
  /// every rank if any rank's start failed or the ranks' buckets or messages do not match;
  /// nothing changes then either. An index out of range, a bucket not started or an update
  /// of the wrong length throw at once, on this rank only.
  template <execution_policy Policy>
  step_status finish(const Policy& policy, std::size_t b, std::span<T> update) {
    const char* where = "bucket_exchange::finish";
    detail::feedback_round<C, Comm, T>& bucket = at(b, where);
    if (!bucket.in_flight()) detail::fail(where, "bucket ", b, " was not started");
    // The caller's own buffer: refused before anything happens; the bucket stays in flight.
    if (update.size() != bucket.dim())
      detail::fail(where, "update has ", update.size(), " elements, bucket ", b, " has ", bucket.dim(),
                   " (the bucket stays in flight: finish it with a buffer of the right size)");
    const step_status status = bucket.finish(*comm_, policy, update, where);
    if (status == step_status::skipped) detail::fill_nan(update);
    return status;
  }

  /// Takes back bucket b's last finished exchange, as if it had never started: its residual,
  /// metrics, seeded compressor step and byte counts return to what they were. For a step the
  /// trainer skips as a whole because another bucket was skipped (a loss scaler skips the
  /// optimizer step when any gradient overflowed): undoing the buckets that were applied
  /// makes the skipped step leave no trace. Only once, and before b starts again; every
  /// rank should take back the same buckets (they all see the same statuses).
  void undo(std::size_t b) { at(b, "bucket_exchange::undo").undo("bucket_exchange::undo"); }

  /// Bucket b's error feedback: its residual, metrics (total_error: sum over steps of
  /// ||e_b||^2) and compressor.
  const error_feedback<C, T>& feedback(std::size_t b) const { return at(b, "bucket_exchange::feedback").feedback(); }
  /// Bucket b's bytes per exchange and in total (uplink: this rank's message; downlink: the
  /// others' messages, or the summed values for the allreduce class).
  const traffic_log& bytes(std::size_t b) const { return at(b, "bucket_exchange::bytes").bytes(); }
  /// All buckets' bytes so far.
  traffic total_bytes() const {
    traffic t;
    for (const auto& b : buckets_) t += b.bytes().total;
    return t;
  }
  /// Sum over buckets of their total_error: the sum over steps of ||e||^2 of the whole model.
  double total_error() const {
    double e = 0.0;
    for (const auto& b : buckets_) e += b.feedback().metrics().total_error;
    return e;
  }

 private:
  detail::feedback_round<C, Comm, T>& at(std::size_t b, const char* where) {
    if (b >= buckets_.size()) detail::fail(where, "bucket ", b, " is out of range (there are ", buckets_.size(), ")");
    return buckets_[b];
  }
  const detail::feedback_round<C, Comm, T>& at(std::size_t b, const char* where) const {
    if (b >= buckets_.size()) detail::fail(where, "bucket ", b, " is out of range (there are ", buckets_.size(), ")");
    return buckets_[b];
  }

  Comm* comm_;
  std::vector<detail::feedback_round<C, Comm, T>> buckets_;
};

}  // namespace gradcomp
