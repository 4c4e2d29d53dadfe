#pragma once
// Runs of the distributed schemes that the unit tests (comm::local) and the MPI tests both
// execute: the same code on any communicator, so an MPI rank can compare its results with
// the same rank of an in-process run, bit for bit.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <gradcomp/distributed.hpp>
#include <limits>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace gradcomp_test {

namespace gc = gradcomp;

/// What a rank ends with: its replica, its worker residual(s), the server residual it
/// holds (if any), and its byte counts.
struct rank_result {
  std::vector<float> x;
  std::vector<float> worker_error;
  std::vector<float> server_error;
  gc::traffic bytes;
  std::vector<gc::traffic> per_step;
};

/// Rank r's gradient at step t: deterministic, a mix of scales and exact zeros.
inline std::vector<float> scenario_gradient(std::size_t d, int rank, int step) {
  std::mt19937_64 rng(static_cast<std::uint64_t>(rank) * 1000003u + static_cast<std::uint64_t>(step) * 7919u + d);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> g(d);
  for (std::size_t i = 0; i < d; ++i) g[i] = (i % 7 == 3) ? 0.0f : normal(rng) * (1.0f + static_cast<float>(i % 5));
  return g;
}

inline std::vector<float> scenario_start(std::size_t d) {
  std::vector<float> x(d);
  for (std::size_t i = 0; i < d; ++i) x[i] = 0.01f * static_cast<float>(i % 13) - 0.05f;
  return x;
}

template <class Scheme, class Comm, class Policy>
void run_steps(Scheme& scheme, Comm& comm, const Policy& policy, std::size_t d, int steps, rank_result& out) {
  out.x = scenario_start(d);
  for (int t = 0; t < steps; ++t) {
    const std::vector<float> g = scenario_gradient(d, comm.rank(), t);
    scheme.step(policy, std::span<float>(out.x), std::span<const float>(g));
    out.per_step.push_back(scheme.bytes().last);
  }
  out.bytes = scheme.bytes().total;
}

/// A learning-rate schedule and a loss scale that change every step; at step 3 the last
/// rank's gradient overflows (the step is skipped on every rank).
inline gc::step_options scheduled(int t) {
  const double lrs[] = {0.1, 0.05, 0.08, 0.02, 0.04, 0.01, 0.03};
  const double scales[] = {1.0, 1024.0, 512.0, 65536.0, 3.0, 1.0, 0.25};
  return {.lr = lrs[t % 7], .loss_scale = scales[t % 7]};
}

inline std::vector<float> scheduled_gradient(std::size_t d, int rank, int ranks, int t) {
  std::vector<float> g = scenario_gradient(d, rank, t);
  const float s = static_cast<float>(scheduled(t).loss_scale);
  for (float& v : g) v *= s;
  if (t == 3 && rank == ranks - 1) g[d / 2] = std::numeric_limits<float>::infinity();
  return g;
}

/// run_steps with scheduled(t) and scheduled_gradient: the skipped step records nothing.
template <class Scheme, class Comm, class Policy>
void run_scheduled_steps(Scheme& scheme, Comm& comm, const Policy& policy, std::size_t d, int steps, rank_result& out) {
  out.x = scenario_start(d);
  for (int t = 0; t < steps; ++t) {
    const std::vector<float> g = scheduled_gradient(d, comm.rank(), comm.size(), t);
    const gc::step_status s = scheme.step(policy, std::span<float>(out.x), std::span<const float>(g), scheduled(t));
    if ((s == gc::step_status::skipped) != (t == 3))
      throw std::runtime_error("wrong step status at step " + std::to_string(t));
    if (s == gc::step_status::applied) out.per_step.push_back(scheme.bytes().last);
  }
  out.bytes = scheme.bytes().total;
}

/// A trainer with its own optimizer over a bucket exchange: buckets of the given sizes,
/// started in reverse order and finished in order (all in flight at once), the scheduled
/// loss scale, and x_b -= lr * (update_b + 0.01 x_b) (SGD with weight decay) per bucket.
template <class C, class Comm, class Policy>
void run_buckets(const C& c, Comm& comm, const Policy& policy, const std::vector<std::size_t>& dims, int steps,
                 rank_result& out) {
  gc::bucket_exchange ex(c, comm, dims);
  std::vector<std::size_t> offset(dims.size() + 1, 0);
  for (std::size_t b = 0; b < dims.size(); ++b) offset[b + 1] = offset[b] + dims[b];
  const std::size_t d = offset.back();
  out.x = scenario_start(d);
  std::vector<float> update;
  for (int t = 0; t < steps; ++t) {
    const std::vector<float> g = scheduled_gradient(d, comm.rank(), comm.size(), t);
    for (std::size_t b = dims.size(); b-- > 0;)
      ex.start(policy, b, std::span<const float>(g).subspan(offset[b], dims[b]), scheduled(t).loss_scale);
    gc::traffic step_bytes;
    for (std::size_t b = 0; b < dims.size(); ++b) {
      update.resize(dims[b]);
      if (ex.finish(policy, b, std::span<float>(update)) == gc::step_status::skipped) continue;
      const float lr = static_cast<float>(scheduled(t).lr);
      for (std::size_t i = 0; i < dims[b]; ++i) {
        float& x = out.x[offset[b] + i];
        x -= lr * (update[i] + 0.01f * x);
      }
      step_bytes += ex.bytes(b).last;
    }
    out.per_step.push_back(step_bytes);
  }
  for (std::size_t b = 0; b < dims.size(); ++b)
    out.worker_error.insert(out.worker_error.end(), ex.feedback(b).error().begin(), ex.feedback(b).error().end());
  out.bytes = ex.total_bytes();
}

/// The named scenarios; every one runs on any number of ranks.
inline const std::vector<std::string>& scenario_names() {
  static const std::vector<std::string> names{
      "ef_sgd/top_k",          "ef_sgd/hard_threshold/momentum_aggregate", "ef_sgd/top_k/momentum_update",
      "ef_sgd/random_k",       "ef_sgd/scaled_sign",                        "double_squeeze/top_k/single",
      "double_squeeze/sign/sharded", "double_squeeze/hard_threshold+top_k/sharded", "liec_sgd/scaled_sign/single/H3",
      "liec_sgd/blockwise_sign/sharded/H4", "liec_sgd/top_k/single/root1",
      "ef_sgd/top_k/momentum_update/schedule", "ef_sgd/identity/schedule", "double_squeeze/top_k/sharded/schedule",
      "liec_sgd/scaled_sign/single/H3/schedule", "buckets/top_k", "buckets/random_k", "buckets/identity",
      "ef_sgd/top_k/reduce_scatter", "ef_sgd/top_k/recursive_doubling",
      "ef_sgd/hard_threshold/reduce_scatter/momentum_update/schedule", "ef_sgd/top_k/recursive_doubling/schedule"};
  return names;
}

/// Runs scenario `name` on this rank of comm, with the schemes' local work on `policy`.
template <class Comm, class Policy = gc::exec::seq_t>
rank_result run_scenario(const std::string& name, Comm& comm, const Policy& policy = gc::exec::seq) {
  constexpr std::size_t d = 1001;  // not a multiple of the rank count or of the sign blocks
  constexpr int steps = 7;
  rank_result r;
  const auto worker_error = [&](const auto& ef) { r.worker_error.assign(ef.error().begin(), ef.error().end()); };
  if (name == "ef_sgd/top_k") {
    gc::ef_sgd s(gc::top_k{.k = 50}, comm, d, {.lr = 0.1});
    run_steps(s, comm, policy, d, steps, r);
    worker_error(s.feedback());
  } else if (name == "ef_sgd/hard_threshold/momentum_aggregate") {
    gc::ef_sgd s(gc::hard_threshold{.lambda = 0.2}, comm, d, {.lr = 0.05, .momentum = 0.9});
    run_steps(s, comm, policy, d, steps, r);
    worker_error(s.feedback());
  } else if (name == "ef_sgd/top_k/momentum_update") {
    gc::ef_sgd s(gc::top_k{.k = 30}, comm, d, {.lr = 0.05, .momentum = 0.5, .mode = gc::momentum_mode::in_update});
    run_steps(s, comm, policy, d, steps, r);
    worker_error(s.feedback());
  } else if (name == "ef_sgd/random_k") {
    gc::ef_sgd s(gc::random_k{.k = 40, .seed = 11}, comm, d, {.lr = 0.1});
    run_steps(s, comm, policy, d, steps, r);
    worker_error(s.feedback());
  } else if (name == "ef_sgd/scaled_sign") {
    gc::ef_sgd s(gc::scaled_sign{}, comm, d, {.lr = 0.01});
    run_steps(s, comm, policy, d, steps, r);
    worker_error(s.feedback());
  } else if (name == "double_squeeze/top_k/single") {
    gc::double_squeeze s(gc::top_k{.k = 40}, comm, d, {.lr = 0.1});
    run_steps(s, comm, policy, d, steps, r);
    worker_error(s.worker());
    if (s.serves()) r.server_error.assign(s.server().error().begin(), s.server().error().end());
  } else if (name == "double_squeeze/sign/sharded") {
    gc::double_squeeze s(gc::blockwise_sign{.block_size = 64}, comm, d,
                         {.lr = 0.01, .server = {.mode = gc::server_mode::sharded}});
    run_steps(s, comm, policy, d, steps, r);
    for (int sh = 0; sh < s.layout().shards(); ++sh)
      r.worker_error.insert(r.worker_error.end(), s.worker(sh).error().begin(), s.worker(sh).error().end());
    r.server_error.assign(s.server().error().begin(), s.server().error().end());
  } else if (name == "double_squeeze/hard_threshold+top_k/sharded") {
    gc::double_squeeze s(gc::hard_threshold{.lambda = 0.15}, gc::top_k{.k = 20}, comm, d,
                         {.lr = 0.1, .server = {.mode = gc::server_mode::sharded}});
    run_steps(s, comm, policy, d, steps, r);
    for (int sh = 0; sh < s.layout().shards(); ++sh)
      r.worker_error.insert(r.worker_error.end(), s.worker(sh).error().begin(), s.worker(sh).error().end());
    r.server_error.assign(s.server().error().begin(), s.server().error().end());
  } else if (name == "liec_sgd/scaled_sign/single/H3") {
    gc::liec_sgd s(gc::scaled_sign{}, comm, d, {.lr = 0.01, .sync_every = 3});
    run_steps(s, comm, policy, d, steps, r);
    r.worker_error.assign(s.last_residual().begin(), s.last_residual().end());
    if (s.serves()) r.server_error.assign(s.server().error().begin(), s.server().error().end());
  } else if (name == "liec_sgd/blockwise_sign/sharded/H4") {
    gc::liec_sgd s(gc::blockwise_sign{.block_size = 32}, comm, d,
                   {.lr = 0.01, .sync_every = 4, .server = {.mode = gc::server_mode::sharded}});
    run_steps(s, comm, policy, d, steps, r);
    r.worker_error.assign(s.last_residual().begin(), s.last_residual().end());
    r.server_error.assign(s.server().error().begin(), s.server().error().end());
  } else if (name == "liec_sgd/top_k/single/root1") {
    const int root = comm.size() > 1 ? 1 : 0;
    gc::liec_sgd s(gc::top_k{.k = 25}, comm, d, {.lr = 0.1, .server = {.root = root}});
    run_steps(s, comm, policy, d, steps, r);
    r.worker_error.assign(s.last_residual().begin(), s.last_residual().end());
    if (s.serves()) r.server_error.assign(s.server().error().begin(), s.server().error().end());
  } else if (name == "ef_sgd/top_k/momentum_update/schedule") {
    gc::ef_sgd s(gc::top_k{.k = 30}, comm, d, {.lr = 0.05, .momentum = 0.5, .mode = gc::momentum_mode::in_update});
    run_scheduled_steps(s, comm, policy, d, steps, r);
    worker_error(s.feedback());
  } else if (name == "ef_sgd/identity/schedule") {
    gc::ef_sgd s(gc::identity{}, comm, d, {.lr = 0.05, .momentum = 0.9});
    run_scheduled_steps(s, comm, policy, d, steps, r);
    worker_error(s.feedback());
  } else if (name == "double_squeeze/top_k/sharded/schedule") {
    gc::double_squeeze s(gc::top_k{.k = 20}, comm, d, {.lr = 0.1, .server = {.mode = gc::server_mode::sharded}});
    run_scheduled_steps(s, comm, policy, d, steps, r);
    for (int sh = 0; sh < s.layout().shards(); ++sh)
      r.worker_error.insert(r.worker_error.end(), s.worker(sh).error().begin(), s.worker(sh).error().end());
    r.server_error.assign(s.server().error().begin(), s.server().error().end());
  } else if (name == "liec_sgd/scaled_sign/single/H3/schedule") {
    gc::liec_sgd s(gc::scaled_sign{}, comm, d, {.lr = 0.01, .sync_every = 3});
    run_scheduled_steps(s, comm, policy, d, steps, r);
    r.worker_error.assign(s.last_residual().begin(), s.last_residual().end());
    if (s.serves()) r.server_error.assign(s.server().error().begin(), s.server().error().end());
  } else if (name == "ef_sgd/top_k/reduce_scatter" || name == "ef_sgd/top_k/recursive_doubling") {
    gc::sgd_options o{.lr = 0.1};
    o.exchange.kind = name.ends_with("reduce_scatter") ? gc::exchange_kind::reduce_scatter
                                                       : gc::exchange_kind::recursive_doubling;
    gc::ef_sgd s(gc::top_k{.k = 50}, comm, d, o);
    run_steps(s, comm, policy, d, steps, r);
    worker_error(s.feedback());
  } else if (name == "ef_sgd/hard_threshold/reduce_scatter/momentum_update/schedule") {
    gc::sgd_options o{.lr = 0.05, .momentum = 0.5, .mode = gc::momentum_mode::in_update};
    o.exchange = {.kind = gc::exchange_kind::reduce_scatter, .global_k = 40};
    gc::ef_sgd s(gc::hard_threshold{.lambda = 0.1}, comm, d, o);
    run_scheduled_steps(s, comm, policy, d, steps, r);
    worker_error(s.feedback());
  } else if (name == "ef_sgd/top_k/recursive_doubling/schedule") {
    gc::sgd_options o{.lr = 0.05, .momentum = 0.9};
    o.exchange = {.kind = gc::exchange_kind::recursive_doubling, .global_k = 35};
    gc::ef_sgd s(gc::top_k{.k = 30}, comm, d, o);
    run_scheduled_steps(s, comm, policy, d, steps, r);
    worker_error(s.feedback());
  } else if (name == "buckets/top_k") {
    run_buckets(gc::top_k{.k = 20}, comm, policy, {400, 1, 600}, steps, r);
  } else if (name == "buckets/random_k") {
    run_buckets(gc::random_k{.k = 30, .seed = 4}, comm, policy, {500, 501}, steps, r);
  } else if (name == "buckets/identity") {
    run_buckets(gc::identity{}, comm, policy, {1000, 1}, steps, r);
  } else {
    throw std::invalid_argument("unknown scenario " + name);
  }
  return r;
}

/// Every rank's result of scenario `name` run on an in-process group of n ranks.
template <class Policy = gc::exec::seq_t>
std::vector<rank_result> run_scenario_locally(const std::string& name, int n, const Policy& policy = gc::exec::seq) {
  std::vector<rank_result> results(static_cast<std::size_t>(n));
  gc::comm::local_group::run(n, [&](gc::comm::local_communicator& comm) {
    results[static_cast<std::size_t>(comm.rank())] = run_scenario(name, comm, policy);
  });
  return results;
}

/// Bitwise equality of float vectors.
inline bool same_bits(std::span<const float> a, std::span<const float> b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size_bytes()) == 0);
}

}  // namespace gradcomp_test
