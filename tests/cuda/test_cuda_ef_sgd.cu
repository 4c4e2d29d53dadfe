// gc::cuda::ef_sgd (docs/device-exchanges.md, "gc::cuda::ef_sgd") on 1 to 5 thread ranks of
// gc::cuda::comm::thread_group against the host gc::ef_sgd over gc::comm::local_group with the
// same inputs, bit for bit, rank by rank and step by step: x, the residual, the mean, the
// momentum, the feedback metrics, the byte counts, the skipped steps, and for the sparse
// exchanges every message record, the selection and the regions. The all-gather and both
// sparse exchanges; top_k and hard_threshold (and scaled_sign through the all-gather's staged
// path); momentum off, on the aggregate and in the update; error feedback off; loss scales and
// per-step learning rates; gradients with ties and a concentrated layer. A rank whose gradient
// holds NaN makes every rank skip; a rank whose local part fails (a wrong length, an overflow)
// makes every rank throw the same error; nothing changes, and the next step matches the host.
// The constructor's refusals reach every rank. Compiled in CI, never run there (no GPU:
// main.cpp exits 77).
//
// Rank threads record what they see and the test thread checks it (a failing REQUIRE inside a
// rank thread would abort its group).
#include "cuda_support.cuh"

#include <gradcomp/cuda/comm/thread_group.cuh>
#include <gradcomp/cuda/ef_sgd.cuh>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gct = gradcomp_cuda_test;

namespace {

using gc::cuda::comm::thread_communicator;
using gc::cuda::comm::thread_group;

/// What a rank brings to a step besides a good gradient.
enum class fault {
  none,
  nan,           // a NaN in its gradient: every rank skips
  wrong_length,  // a gradient of d - 1 values: every rank throws this rank's message
  overflow,      // lr 4 and a gradient of FLT_MAX entries: its residual overflows, every rank throws
};

struct scenario {
  int ranks = 1;
  std::size_t d = 389;
  gc::sgd_options options;
  int steps = 4;
  std::uint64_t salt = 1;
  /// (step, rank) -> fault (the first match).
  std::vector<std::pair<std::pair<int, int>, fault>> faults;

  fault at(int step, int rank) const {
    for (const auto& [where, f] : faults)
      if (where.first == step && where.second == rank) return f;
    return fault::none;
  }
  std::string label() const {
    const char* modes[] = {"on_aggregate", "in_update"};
    return std::string(gc::exchange_name(options.exchange.kind)) + " ranks=" + std::to_string(ranks) +
           " d=" + std::to_string(d) + " momentum=" + std::to_string(options.momentum) + " " +
           modes[static_cast<int>(options.mode)] + " ef=" + std::to_string(options.error_feedback) +
           " global_k=" + std::to_string(options.exchange.global_k) +
           " balance=" + std::to_string(static_cast<int>(options.exchange.balance)) + " salt=" + std::to_string(salt);
  }
};

/// Rank r's gradient at step t (loss_scale times the gradient): normal; few magnitudes (ties
/// within and across ranks); a concentrated last layer; normal times the loss scale 8.
std::vector<float> gradient(const scenario& sc, int rank, int step) {
  std::mt19937_64 rng(sc.salt * 1000003u + static_cast<std::uint64_t>(rank) * 7919u +
                      static_cast<std::uint64_t>(step) * 104729u);
  std::normal_distribution<double> normal;
  std::vector<float> g(sc.d);
  for (std::size_t i = 0; i < sc.d; ++i) {
    switch (step % 4) {
      case 0:
        g[i] = static_cast<float>(normal(rng));
        break;
      case 1:
        g[i] = static_cast<float>(static_cast<int>(rng() % 3) + 1) * ((rng() & 1) ? 0.5f : -0.5f);
        break;
      case 2:
        g[i] = static_cast<float>(normal(rng) * (i >= sc.d - sc.d / 8 ? 100.0 : 0.01));
        break;
      default:
        g[i] = static_cast<float>(normal(rng)) * 8.0f;
        break;
    }
  }
  switch (sc.at(step, rank)) {
    case fault::nan:
      if (!g.empty()) g[sc.d / 2] = std::numeric_limits<float>::quiet_NaN();
      break;
    case fault::wrong_length:
      g.pop_back();
      break;
    case fault::overflow:
      for (std::size_t i = 0; i < g.size(); i += 7) g[i] = std::numeric_limits<float>::max();
      break;
    case fault::none:
      break;
  }
  return g;
}

/// Rank r's settings at step t (step 0 uses step(x, g): the options' lr, no loss scale).
gc::step_options settings(const scenario& sc, int rank, int step) {
  gc::step_options s{.lr = step % 2 == 1 ? 0.05 : sc.options.lr, .loss_scale = step % 4 == 3 ? 8.0 : 1.0};
  if (sc.at(step, rank) == fault::overflow) s = {.lr = 4.0, .loss_scale = 1.0};
  return s;
}

std::vector<float> initial_x(std::size_t d) { return gt::make_input<float>(gt::input_kind::normal, d, 7); }

/// What one rank saw after one step.
struct record {
  bool applied = false;
  std::string error;
  std::vector<float> x, residual, mean, momentum;
  gc::traffic_log bytes;
  std::uint64_t skipped = 0;
  gc::feedback_metrics metrics;
  std::vector<gc::exchange_message> messages;
  std::vector<std::size_t> selection, regions;
};

/// records[rank][step].
using run_records = std::vector<std::vector<record>>;

run_records empty_records(const scenario& sc) {
  return run_records(static_cast<std::size_t>(sc.ranks), std::vector<record>(static_cast<std::size_t>(sc.steps)));
}

template <class C>
run_records host_run(const C& c, const scenario& sc) {
  run_records out = empty_records(sc);
  gc::comm::local_group::run(sc.ranks, [&](gc::comm::local_communicator& comm) {
    gc::ef_sgd<C, gc::comm::local_communicator, float> scheme(c, comm, sc.d, sc.options);
    std::vector<float> x = initial_x(sc.d);
    for (int t = 0; t < sc.steps; ++t) {
      record& rec = out[static_cast<std::size_t>(comm.rank())][static_cast<std::size_t>(t)];
      const std::vector<float> g = gradient(sc, comm.rank(), t);
      try {
        const gc::step_status s = t == 0 ? scheme.step(gc::exec::seq, std::span<float>(x), std::span<const float>(g))
                                         : scheme.step(gc::exec::seq, std::span<float>(x), std::span<const float>(g),
                                                       settings(sc, comm.rank(), t));
        rec.applied = s == gc::step_status::applied;
      } catch (const gc::error& e) {
        rec.error = e.what();
      }
      rec.x = x;
      rec.residual.assign(scheme.feedback().error().begin(), scheme.feedback().error().end());
      rec.mean.assign(scheme.last_mean().begin(), scheme.last_mean().end());
      rec.momentum.assign(scheme.momentum().begin(), scheme.momentum().end());
      rec.bytes = scheme.bytes();
      rec.skipped = scheme.skipped_steps();
      rec.metrics = scheme.feedback().metrics();
      rec.messages.assign(scheme.exchange_messages().begin(), scheme.exchange_messages().end());
      rec.selection.assign(scheme.last_selection().begin(), scheme.last_selection().end());
      rec.regions.assign(scheme.regions().begin(), scheme.regions().end());
    }
  });
  return out;
}

template <class V>
std::vector<V> download(std::span<const V> device, cudaStream_t stream) {
  std::vector<V> out(device.size());
  if (!out.empty())
    gc::cuda::detail::check(cudaMemcpyAsync(out.data(), device.data(), out.size() * sizeof(V), cudaMemcpyDeviceToHost,
                                            stream),
                            "test", "cudaMemcpyAsync");
  gc::cuda::detail::check(cudaStreamSynchronize(stream), "test", "cudaStreamSynchronize");
  return out;
}

template <class V>
void upload(const std::vector<V>& host, gc::cuda::device_buffer<V>& device, cudaStream_t stream) {
  device.resize(std::max<std::size_t>(host.size(), 1));
  if (!host.empty())
    gc::cuda::detail::check(cudaMemcpyAsync(device.data(), host.data(), host.size() * sizeof(V), cudaMemcpyHostToDevice,
                                            stream),
                            "test", "cudaMemcpyAsync");
  gc::cuda::detail::check(cudaStreamSynchronize(stream), "test", "cudaStreamSynchronize");
}

template <class C>
run_records device_run(const C& c, const scenario& sc) {
  run_records out = empty_records(sc);
  thread_group::run(sc.ranks, [&](thread_communicator& comm) {
    const cudaStream_t stream = comm.stream();
    gc::cuda::ef_sgd<C, thread_communicator, float> scheme(c, comm, sc.d, sc.options);
    gc::cuda::device_buffer<float> x, g;
    upload(initial_x(sc.d), x, stream);
    const std::span<float> xs(x.data(), sc.d);
    for (int t = 0; t < sc.steps; ++t) {
      record& rec = out[static_cast<std::size_t>(comm.rank())][static_cast<std::size_t>(t)];
      const std::vector<float> host_g = gradient(sc, comm.rank(), t);
      upload(host_g, g, stream);
      const std::span<const float> gs(g.data(), host_g.size());
      try {
        const gc::step_status s = t == 0 ? scheme.step(xs, gs) : scheme.step(xs, gs, settings(sc, comm.rank(), t));
        rec.applied = s == gc::step_status::applied;
      } catch (const gc::error& e) {
        rec.error = e.what();
      }
      rec.x = download(std::span<const float>(xs), stream);
      rec.residual = download(scheme.feedback().error(), stream);
      rec.mean = download(scheme.last_mean(), stream);
      rec.momentum = download(scheme.momentum(), stream);
      rec.bytes = scheme.bytes();
      rec.skipped = scheme.skipped_steps();
      rec.metrics = scheme.feedback().metrics();
      rec.messages.assign(scheme.exchange_messages().begin(), scheme.exchange_messages().end());
      rec.selection = scheme.last_selection_to_host();
      rec.regions.assign(scheme.regions().begin(), scheme.regions().end());
    }
  });
  return out;
}

bool same_messages(const std::vector<gc::exchange_message>& a, const std::vector<gc::exchange_message>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::string_view(a[i].phase) != std::string_view(b[i].phase) || a[i].peer != b[i].peer ||
        a[i].sent != b[i].sent || a[i].nnz != b[i].nnz || a[i].len != b[i].len || a[i].bytes != b[i].bytes)
      return false;
  return true;
}

/// The host's error as the device scheme words it: its "where" is cuda::ef_sgd::step.
std::string as_device(std::string host) {
  const std::string from = "gradcomp::ef_sgd::step", to = "gradcomp::cuda::ef_sgd::step";
  for (std::size_t at = host.find(from); at != std::string::npos; at = host.find(from, at + to.size()))
    host.replace(at, from.size(), to);
  return host;
}

/// The error up to and including "failed: " (the part that does not depend on which
/// error_feedback, host or device, worded the cause).
std::string failure_prefix(const std::string& e) {
  const auto at = e.find("failed: ");
  return at == std::string::npos ? e : e.substr(0, at + 8);
}

void check_same(const scenario& sc, const run_records& want, const run_records& got) {
  CAPTURE(sc.label());
  REQUIRE(got.size() == want.size());
  for (std::size_t r = 0; r < want.size(); ++r) {
    for (std::size_t t = 0; t < want[r].size(); ++t) {
      CAPTURE(r);
      CAPTURE(t);
      const record& w = want[r][t];
      const record& g = got[r][t];
      REQUIRE(g.applied == w.applied);
      CHECK(g.error.empty() == w.error.empty());
      if (!w.error.empty()) {
        // Every rank throws the same; the host's text, where the cause is the scheme's own check.
        CHECK(g.error == got[0][t].error);
        CHECK(failure_prefix(g.error) == as_device(failure_prefix(w.error)));
        bool overflow = false;
        for (int q = 0; q < sc.ranks; ++q) overflow |= sc.at(static_cast<int>(t), q) == fault::overflow;
        if (!overflow) CHECK(g.error == as_device(w.error));
      }
      CHECK(gt::same_bits(g.x, w.x));
      CHECK(gt::same_bits(g.residual, w.residual));
      CHECK(gt::same_bits(g.mean, w.mean));
      CHECK(gt::same_bits(g.momentum, w.momentum));
      CHECK(g.bytes.last == w.bytes.last);
      CHECK(g.bytes.total == w.bytes.total);
      CHECK(g.bytes.steps == w.bytes.steps);
      CHECK(g.skipped == w.skipped);
      CHECK(g.metrics.steps == w.metrics.steps);
      CHECK(g.metrics.elements_sent == w.metrics.elements_sent);
      CHECK(g.metrics.wire_bytes == w.metrics.wire_bytes);
      CHECK(g.metrics.total_error == w.metrics.total_error);
      CHECK(same_messages(g.messages, w.messages));
      CHECK(g.selection == w.selection);
      CHECK(g.regions == w.regions);
    }
  }
}

template <class C>
void check_scenario(const C& c, const scenario& sc) {
  check_same(sc, host_run(c, sc), device_run(c, sc));
}

constexpr gc::exchange_kind all_kinds[] = {gc::exchange_kind::allgather, gc::exchange_kind::reduce_scatter,
                                           gc::exchange_kind::recursive_doubling};

/// The options of a momentum setting: 0 none, 1 on the aggregate, 2 in the update.
gc::sgd_options with_momentum(gc::sgd_options o, int setting) {
  o.momentum = setting == 0 ? 0.0 : 0.9;
  o.mode = setting == 2 ? gc::momentum_mode::in_update : gc::momentum_mode::on_aggregate;
  return o;
}

/// Runs f(comm) on n thread ranks; returns each rank's gc::error message ("" if none).
template <class F>
std::vector<std::string> errors_of(int n, F&& f) {
  std::vector<std::string> out(static_cast<std::size_t>(n));
  thread_group::run(n, [&](thread_communicator& comm) {
    try {
      f(comm);
    } catch (const gc::error& e) {
      out[static_cast<std::size_t>(comm.rank())] = e.what();
    }
  });
  return out;
}

}  // namespace

TEST_CASE("cuda ef_sgd: every exchange, compressor and momentum gives the host's bits on 1 to 5 ranks") {
  const gc::top_k top{.k = 17};
  const gc::hard_threshold threshold{.lambda = 0.12};
  for (int n = 1; n <= 5; ++n) {
    for (const gc::exchange_kind kind : all_kinds) {
      for (int setting = 0; setting < 3; ++setting) {
        scenario sc;
        sc.ranks = n;
        sc.d = n % 2 == 0 ? 1000 : 389;
        sc.salt = static_cast<std::uint64_t>(n * 10 + setting);
        sc.options = with_momentum({}, setting);
        sc.options.exchange.kind = kind;
        check_scenario(top, sc);
        if (kind != gc::exchange_kind::allgather) sc.options.exchange.global_k = 20;  // hard_threshold has no k
        check_scenario(threshold, sc);
      }
    }
  }
}

TEST_CASE("cuda ef_sgd: error feedback off, equal regions, keep_all, larger vectors with dense blocks") {
  for (const gc::exchange_kind kind : all_kinds) {
    scenario sc;
    sc.ranks = 3;
    sc.options.exchange.kind = kind;
    sc.options.error_feedback = false;
    check_scenario(gc::top_k{.k = 17}, sc);
    sc.options = with_momentum({}, 1);
    sc.options.error_feedback = false;
    sc.options.exchange.kind = kind;
    if (kind != gc::exchange_kind::allgather) sc.options.exchange.global_k = 20;  // hard_threshold has no k
    check_scenario(gc::hard_threshold{.lambda = 0.12}, sc);
    // d = 70,001 with k = 9,000: the regions' blocks are dense; a concentrated layer in step 2.
    scenario big;
    big.ranks = 3;
    big.d = 70001;
    big.steps = 3;
    big.options.exchange.kind = kind;
    check_scenario(gc::top_k{.k = 9000}, big);
  }
  for (const gc::exchange_kind kind : {gc::exchange_kind::reduce_scatter, gc::exchange_kind::recursive_doubling}) {
    scenario sc;
    sc.ranks = 4;
    sc.options.exchange.kind = kind;
    sc.options.exchange.balance = gc::region_balance::equal;
    check_scenario(gc::top_k{.k = 17}, sc);
    sc.options.exchange.balance = gc::region_balance::previous_selection;
    sc.options.exchange.global_k = gc::exchange_options::keep_all;
    check_scenario(gc::top_k{.k = 17}, sc);
  }
}

TEST_CASE("cuda ef_sgd: the all-gather of other payloads (scaled_sign, staged through the host)") {
  for (int n = 1; n <= 3; ++n) {
    scenario sc;
    sc.ranks = n;
    sc.options = with_momentum({}, n - 1);
    check_scenario(gc::scaled_sign{}, sc);
  }
}

TEST_CASE("cuda ef_sgd: skips and failures reach every rank and change nothing, as on the host") {
  for (const gc::exchange_kind kind : all_kinds) {
    for (const int n : {1, 3, 5}) {
      scenario sc;
      sc.ranks = n;
      sc.steps = 6;
      sc.options = with_momentum({}, n == 3 ? 2 : 1);
      sc.options.exchange.kind = kind;
      sc.faults = {{{1, n - 1}, fault::nan},
                   {{2, 0}, fault::wrong_length},
                   {{2, n - 1}, fault::overflow},  // rank 0's message wins (n > 1)
                   {{3, n - 1}, fault::overflow},
                   {{4, 0}, fault::nan},
                   {{4, n - 1}, fault::wrong_length}};  // a failure wins over a skip (n > 1)
      for (int use_threshold = 0; use_threshold < 2; ++use_threshold) {
        scenario used = sc;
        if (use_threshold && kind != gc::exchange_kind::allgather) used.options.exchange.global_k = 20;
        const gc::top_k top{.k = 17};
        const gc::hard_threshold threshold{.lambda = 0.12};
        const run_records want = use_threshold ? host_run(threshold, used) : host_run(top, used);
        const run_records got = use_threshold ? device_run(threshold, used) : device_run(top, used);
        check_same(used, want, got);
        for (int r = 0; r < n; ++r) {
          CAPTURE(r);
          const auto& steps = got[static_cast<std::size_t>(r)];
          CHECK_FALSE(steps[1].applied);  // skipped
          CHECK(steps[1].error.empty());
          CHECK(steps[1].skipped == 1);
          CHECK(steps[2].error.rfind("gradcomp::cuda::ef_sgd::step: rank 0 failed: gradcomp::cuda::ef_sgd::step: "
                                     "the gradient has ",
                                     0) == 0);
          CHECK(steps[3].error.rfind("gradcomp::cuda::ef_sgd::step: rank " + std::to_string(n - 1) + " failed: ", 0) ==
                0);
          if (n > 1) CHECK(steps[4].error.find("rank " + std::to_string(n - 1) + " failed: ") != std::string::npos);
          CHECK(steps[5].applied);
          // Nothing changed in the steps that did not apply.
          for (int t = 1; t <= 4; ++t) {
            CHECK(gt::same_bits(steps[static_cast<std::size_t>(t)].x, steps[0].x));
            CHECK(gt::same_bits(steps[static_cast<std::size_t>(t)].residual, steps[0].residual));
            CHECK(gt::same_bits(steps[static_cast<std::size_t>(t)].momentum, steps[0].momentum));
            CHECK(steps[static_cast<std::size_t>(t)].bytes.steps == 1);
          }
        }
      }
    }
  }
}

TEST_CASE("cuda ef_sgd: the constructor's refusals reach every rank") {
  const auto same_everywhere = [](const std::vector<std::string>& errors, std::string_view part) {
    for (const auto& e : errors) {
      CAPTURE(e);
      CHECK(e == errors[0]);
      CHECK(e.find(part) != std::string::npos);
    }
  };
  // An allreduce-class compressor (random_k): the host sums it in compressed form; refused.
  same_everywhere(errors_of(2,
                            [](thread_communicator& comm) {
                              gc::cuda::ef_sgd<gc::random_k, thread_communicator> s(gc::random_k{.k = 3}, comm, 50);
                            }),
                  "allreduce-class");
  // A sparse exchange over hard_threshold without a global k (the host's refusal).
  same_everywhere(errors_of(3,
                            [](thread_communicator& comm) {
                              gc::sgd_options o;
                              o.exchange.kind = gc::exchange_kind::reduce_scatter;
                              gc::cuda::ef_sgd<gc::hard_threshold, thread_communicator> s(
                                  gc::hard_threshold{.lambda = 1.0}, comm, 50, o);
                            }),
                  "set exchange_options::global_k");
  // A sparse exchange over a compressor that is not a sparsifier.
  same_everywhere(errors_of(2,
                            [](thread_communicator& comm) {
                              gc::sgd_options o;
                              o.exchange.kind = gc::exchange_kind::recursive_doubling;
                              o.exchange.global_k = 5;
                              gc::cuda::ef_sgd<gc::scaled_sign, thread_communicator> s(gc::scaled_sign{}, comm, 50, o);
                            }),
                  "rank 0 failed: ");
  // A bad option on one rank only.
  same_everywhere(errors_of(3,
                            [](thread_communicator& comm) {
                              gc::sgd_options o;
                              if (comm.rank() == 1) o.lr = -1.0;
                              gc::cuda::ef_sgd<gc::top_k, thread_communicator> s(gc::top_k{.k = 3}, comm, 50, o);
                            }),
                  "rank 1 failed: gradcomp::cuda::ef_sgd: lr must be finite and > 0");
  // Ranks that disagree on the dimension, or on the exchange.
  same_everywhere(errors_of(3,
                            [](thread_communicator& comm) {
                              gc::cuda::ef_sgd<gc::top_k, thread_communicator> s(gc::top_k{.k = 3}, comm,
                                                                                 comm.rank() == 2 ? 49 : 50);
                            }),
                  "the dimension differs across ranks: rank 0 has 50, rank 2 has 49");
  same_everywhere(errors_of(2,
                            [](thread_communicator& comm) {
                              gc::sgd_options o;
                              if (comm.rank() == 1) o.exchange.kind = gc::exchange_kind::reduce_scatter;
                              gc::cuda::ef_sgd<gc::top_k, thread_communicator> s(gc::top_k{.k = 3}, comm, 50, o);
                            }),
                  "the exchange kind differs across ranks");
}
