#pragma once
// The non-convex comparison at small scale: the examples' 784-128-10 MLP on all ten classes
// of Fashion-MNIST, n workers (8 by default) with a batch each per step, and the methods of
// both papers over the library's schemes:
//   sgd                          ef_sgd + identity (no compression)
//   ef_top_k, ef_hard_threshold  ef_sgd (the hard-threshold paper; lambda calibrated to
//                                Top-k's average density)
//   ef_scaled_sign               ef_sgd + scaled sign (MEM-SGD, the LIEC paper's one-way baseline)
//   double_squeeze_{scaled,blockwise}_sign, liec_{scaled,blockwise}_sign
// and the peers' compressors (peer_methods()), each as its paper runs it:
//   qsgd_4bit, terngrad, natural_compression, natural_dithering, maxmin_8bit, float16_cast,
//   bfloat16_cast                plain compressed SGD (ef_sgd without error feedback)
//   signum                       momentum<sign{.scale = signum_lr}>, plain, ef_sgd's lr 1
//   ef_onebit                    1-bit SGD: ef_sgd + onebit (one block: the whole model vector)
//   ef_budget_threshold          ef_sgd + budget_threshold at Top-k's density
//   ef21_top_k                   EF21-SGD: ef_sgd over ef21<top_k>
//   ok_topk                      Ok-Topk's global Top-k: ef_sgd + top_k over the sparse
//                                reduce-scatter (the k largest sums; the rest back to residuals)
//   dgc                          DGC's momentum correction and masking around EF Top-k
//   powersgd_r1, powersgd_r2, powersgd_r4   powersgd_sgd, one tensor per layer
// Logged: test accuracy of the averaged model, training loss, bytes and error, against
// epochs and bytes. Each worker draws its batches from its own block of a seeded shuffle of
// the canonically ordered training images (samples.hpp). A collective: every rank calls it
// with the same arguments.
#include <gradcomp/distributed.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "calibration.hpp"
#include "curves.hpp"
#include "fashion_mnist.hpp"
#include "mlp.hpp"
#include "progress.hpp"
#include "report.hpp"
#include "run_log.hpp"
#include "samples.hpp"
#include "util.hpp"

namespace repro {

namespace gc = gradcomp;
using examples::mlp;

inline const std::vector<std::string>& nonconvex_methods() {
  static const std::vector<std::string> all{"sgd",
                                            "ef_top_k",
                                            "ef_hard_threshold",
                                            "ef_scaled_sign",
                                            "double_squeeze_scaled_sign",
                                            "double_squeeze_blockwise_sign",
                                            "liec_scaled_sign",
                                            "liec_blockwise_sign"};
  return all;
}

/// The peers' compressors (issue 14's comparison); `--methods all` runs both lists.
inline const std::vector<std::string>& peer_methods() {
  static const std::vector<std::string> all{"qsgd_4bit",   "terngrad",      "natural_compression", "natural_dithering",
                                            "maxmin_8bit", "float16_cast",  "bfloat16_cast",
                                            "signum",      "ef_onebit",     "ef_budget_threshold", "ef21_top_k", "ok_topk", "dgc",
                                            "powersgd_r1", "powersgd_r2", "powersgd_r4"};
  return all;
}

struct nonconvex_settings {
  int workers = 8;
  double epochs = 10;
  std::size_t batch = 32;  // per worker and step
  double lr = 0.1;
  double density = 0.01;          // Top-k's k = density * d
  std::size_t block_size = 256;   // blockwise sign
  std::uint64_t sync_every = 32;  // LIEC-SGD's H
  gc::server_mode server = gc::server_mode::single;
  int seeds = 3;
  std::uint64_t seed = 1;
  int points_per_epoch = 2;
  double calibration_fraction = 0.2;  // hard-threshold's calibration runs, as a fraction of a run
  double tolerance = 0.05;
  double dgc_momentum = 0.9;  // DGC's beta; its lr is lr * (1 - beta), the same steady-state step
  double signum_lr = 1e-3;    // Signum's step per coordinate (its own scale: sign drops magnitudes)
  double signum_momentum = 0.9;
};

/// The images, both sets in canonical order (make_nonconvex_data).
struct nonconvex_data {
  fashion_mnist::labelled_images train, test;
};

/// Puts both sets in canonical order, then keeps train_samples and test_samples images of them
/// (0: all), drawn by a shuffle seeded with `seed` (samples.hpp): the same images, in the same
/// order, for any order of the files' images.
inline nonconvex_data make_nonconvex_data(fashion_mnist::labelled_images train, fashion_mnist::labelled_images test,
                                          std::size_t train_samples, std::size_t test_samples, std::uint64_t seed) {
  return {seeded_sample(canonical(std::move(train)), train_samples, seed),
          seeded_sample(canonical(std::move(test)), test_samples, seed)};
}

struct nonconvex_plan {
  std::uint64_t steps = 0, log_every = 0;
  std::size_t k = 0;
};

inline nonconvex_plan plan_of(const nonconvex_data& data, const nonconvex_settings& s) {
  if (s.workers < 1 || s.batch < 1 || !(s.epochs > 0) || s.points_per_epoch < 1)
    throw std::invalid_argument("workers, batch, epochs and points per epoch must be positive");
  if (data.train.size() < static_cast<std::size_t>(s.workers))
    throw std::invalid_argument("fewer training images than workers");
  const double per_epoch = static_cast<double>(data.train.size()) / (static_cast<double>(s.workers) * s.batch);
  nonconvex_plan plan;
  plan.steps = std::max<std::uint64_t>(1, static_cast<std::uint64_t>(std::ceil(s.epochs * per_epoch)));
  plan.log_every = std::max<std::uint64_t>(1, static_cast<std::uint64_t>(std::llround(per_epoch / s.points_per_epoch)));
  plan.k = static_cast<std::size_t>(std::max(1.0, std::round(s.density * static_cast<double>(mlp::size))));
  return plan;
}

namespace detail {

/// LIEC-SGD keeps no worker residual, and its replicas differ between synchronisations.
template <class Scheme>
constexpr bool is_liec_sgd = false;
template <class C, class Comm, class S>
constexpr bool is_liec_sgd<gc::liec_sgd<C, Comm, float, S>> = true;

/// Elements sent and sum of ||e_t||^2 from error-feedback metrics (one per server shard).
template <class C>
void add_metrics(worker_totals& w, const gc::error_feedback<C, float>& feedback) {
  w.elements_sent += static_cast<double>(feedback.metrics().elements_sent);
  w.error += feedback.metrics().total_error;
}

template <class C, class Comm>
void add_metrics(worker_totals& w, const gc::ef_sgd<C, Comm, float>& s) {
  add_metrics(w, s.feedback());
}

template <class C, class Comm, class S>
void add_metrics(worker_totals& w, const gc::double_squeeze<C, Comm, float, S>& s) {
  const int shards = s.layout().mode == gc::server_mode::sharded ? s.layout().ranks : 1;
  for (int i = 0; i < shards; ++i) add_metrics(w, s.worker(i));
}

template <class Scheme>
constexpr bool is_powersgd_sgd = false;
template <class Comm>
constexpr bool is_powersgd_sgd<gc::powersgd_sgd<Comm, float>> = true;

/// DGC (momentum<error_feedback<C>> inside ef_sgd without error feedback): the residual that
/// matters is the inner error feedback's.
template <class C, class Comm>
void add_metrics(worker_totals& w, const gc::ef_sgd<gc::momentum<gc::error_feedback<C, float>, float>, Comm, float>& s) {
  w.elements_sent += static_cast<double>(s.feedback().metrics().elements_sent);
  w.error += s.feedback().base().base().metrics().total_error;
}

/// EF21: the error is its own, ||lr g - h||^2 summed over steps.
template <class C, class Comm>
void add_metrics(worker_totals& w, const gc::ef_sgd<gc::ef21<C, float>, Comm, float>& s) {
  w.elements_sent += static_cast<double>(s.feedback().metrics().elements_sent);
  w.error += s.feedback().base().metrics().total_error;
}

/// The payload of LIEC-SGD's worker messages (nothing for the other schemes).
template <class Scheme>
struct liec_payload {
  struct type {};
};
template <class C, class Comm, class S>
struct liec_payload<gc::liec_sgd<C, Comm, float, S>> {
  using type = typename gc::liec_sgd<C, Comm, float, S>::worker_payload;
};

/// This worker's running totals. The EF schemes' error feedback counts what it sent and sums
/// ||e_t||^2 as it steps. LIEC-SGD has no residual and does not expose its messages, so the
/// meter measures them itself:
///  - elements: before a compressed step, it compresses g as the step will (each shard of the
///    server layout with a copy of that shard's worker compressor, so a seeded one draws the
///    same) and adds gc::sent_elements of those messages; a synchronising step (every
///    sync_every-th; the meter must be given the scheme's H) sends x and g uncompressed, 2d
///    values;
///  - error: after a compressed step, lr^2 ||r_i||^2, the compression error that the step
///    compensated, in the same units (a step) as ||e||^2; a synchronising step compresses
///    nothing and adds 0.
/// PowerSGD: elements are the values of P, Q and the uncompressed tensors it all-reduces each
/// step; error is ||e_t||^2 of its residual, as for the EF schemes.
template <class Scheme>
class worker_meter {
 public:
  explicit worker_meter(std::uint64_t sync_every = 0) : sync_every_(sync_every) {}

  void before_step(const Scheme& s, std::span<const float> g) {
    if constexpr (is_liec_sgd<Scheme>) {
      syncing_ = sync_every_ != 0 && (s.steps() + 1) % sync_every_ == 0;
      if (syncing_) {
        liec_elements_ += 2.0 * static_cast<double>(s.dim());
        return;
      }
      for (int shard = 0; shard < s.layout().shards(); ++shard) {
        auto c = s.worker_compressor(shard);  // a copy: the scheme's own is not advanced
        const gc::comm::index_range range = s.layout().shard(shard);
        gc::compress(gc::exec::seq, c, g.subspan(range.begin, range.size()), message_);
        liec_elements_ += static_cast<double>(gc::sent_elements(message_));
      }
    }
  }

  void after_step(const Scheme& s, double lr) {
    if constexpr (is_liec_sgd<Scheme>)
      if (!syncing_) liec_error_ += lr * lr * squared_norm(s.last_residual());
    if constexpr (is_powersgd_sgd<Scheme>) {
      liec_elements_ += static_cast<double>(s.compression().values_per_step());
      liec_error_ += squared_norm(s.compression().residual());
    }
  }

  worker_totals totals(const Scheme& s) const {
    worker_totals w;
    if constexpr (is_liec_sgd<Scheme> || is_powersgd_sgd<Scheme>) {
      w.elements_sent = liec_elements_;
      w.error = liec_error_;
    } else {
      add_metrics(w, s);
    }
    w.bytes_up = static_cast<double>(s.bytes().total.uplink);
    w.bytes_down = static_cast<double>(s.bytes().total.downlink);
    return w;
  }

 private:
  std::uint64_t sync_every_;
  bool syncing_ = false;
  double liec_elements_ = 0;  // LIEC-SGD and PowerSGD: what the meter counted itself
  double liec_error_ = 0;
  typename liec_payload<Scheme>::type message_;
};

}  // namespace detail

/// One training run with `scheme` (constructed on comm). The record is complete on rank 0.
template <class Scheme, gc::comm::communicator Comm>
run_outcome train_mlp(Comm& comm, Scheme& scheme, const nonconvex_data& data, const nonconvex_settings& s,
                      const run_request& req) {
  const auto start_time = std::chrono::steady_clock::now();
  mlp net;
  std::vector<float> params = mlp::he_init(req.seed), grad(mlp::size), x, mean;
  std::vector<std::uint8_t> y;
  std::vector<std::uint32_t> ids(s.batch);
  // This worker's share of the images (its block of this seed's shuffle, samples.hpp).
  const std::vector<std::size_t> mine = worker_rows(data.train.size(), comm.size(), comm.rank(), req.seed);
  std::mt19937_64 rng(worker_seed(req.seed, comm.rank()));
  std::uniform_int_distribution<std::size_t> pick(0, mine.size() - 1);
  const double n = comm.size();

  run_outcome out;
  out.record.method = req.method;
  out.record.seed = req.seed;
  detail::worker_meter<Scheme> meter(s.sync_every);
  run_log log(req.log_at);
  double loss_since_log = 0;
  for (std::uint64_t t = 1; t <= req.steps; ++t) {
    for (auto& id : ids) id = static_cast<std::uint32_t>(mine[pick(rng)]);
    examples::gather_batch(data.train, ids, x, y);
    loss_since_log += net.loss_and_gradient(params, x, y, grad);
    meter.before_step(scheme, grad);
    scheme.step(gc::exec::seq, std::span<float>(params), std::span<const float>(grad));
    meter.after_step(scheme, s.lr);
    if (req.bar) req.bar->advance();
    if (!log.due(t)) continue;
    auto point = log.log(comm, t, meter.totals(scheme), loss_since_log);
    loss_since_log = 0;
    std::span<const float> model = params;
    if constexpr (detail::is_liec_sgd<Scheme>) {  // the replicas differ: evaluate their average
      mean = params;
      gc::comm::allreduce_sum(comm, std::span<float>(mean));
      for (float& v : mean) v /= static_cast<float>(n);
      model = mean;
    }
    if (!point) continue;
    point->epoch = static_cast<double>(t) * n * static_cast<double>(s.batch) / static_cast<double>(data.train.size());
    point->accuracy = examples::test_accuracy(net, model, data.test);
    out.record.points.push_back(*point);
  }
  const worker_totals all = sum_over_workers(comm, meter.totals(scheme)).first;
  out.elements_sent = all.elements_sent;
  out.record.total_error = all.error / n;
  out.record.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_time).count();
  return out;
}

/// The MLP's tensors for PowerSGD: W1 (in x hidden, row-major), b1, W2 (hidden x out), b2.
inline std::vector<gc::tensor_shape> mlp_shapes() {
  return {{mlp::in, mlp::hidden}, {mlp::hidden, 1}, {mlp::hidden, mlp::out}, {mlp::out, 1}};
}

/// Builds the scheme of a peer method (peer_methods()) on comm and calls f(scheme); false if
/// `method` is not one. The seeded compressors draw per rank (seed = rank + 1): independent
/// rounding on each worker, as the papers assume.
template <gc::comm::communicator Comm, class F>
bool with_peer_scheme(const std::string& method, Comm& comm, const nonconvex_settings& s, const nonconvex_plan& plan,
                      F&& f) {
  const std::size_t d = mlp::size;
  const gc::sgd_options plain{.lr = s.lr, .error_feedback = false};
  const auto seed = static_cast<std::uint64_t>(comm.rank()) + 1;
  const auto run = [&]<class C>(C c, gc::sgd_options opt) {
    gc::ef_sgd<C, Comm, float> scheme(std::move(c), comm, d, opt);
    f(scheme);
  };
  if (method == "qsgd_4bit") {
    run(gc::qsgd{.s = 15, .seed = seed}, plain);  // levels 0..15 and a sign
  } else if (method == "terngrad") {
    run(gc::terngrad{.seed = seed}, plain);
  } else if (method == "natural_compression") {
    run(gc::natural_compression{.seed = seed}, plain);
  } else if (method == "ok_topk") {
    gc::sgd_options global{.lr = s.lr};
    global.exchange.kind = gc::exchange_kind::reduce_scatter;
    run(gc::top_k{.k = plan.k}, global);
  } else if (method == "natural_dithering") {
    // BytePS's dithering with the natural partition: 8 levels of ||x||_2 down to 2^-7 (5 bits).
    run(gc::dithering{.s = 8, .partition = gc::dithering::natural, .norm = gc::dithering::l2, .seed = seed}, plain);
  } else if (method == "maxmin_8bit") {
    run(gc::maxmin_quantizer{.bits = 8, .seed = seed}, plain);
  } else if (method == "float16_cast") {
    run(gc::float16_cast{}, plain);
  } else if (method == "bfloat16_cast") {
    run(gc::bfloat16_cast{}, plain);
  } else if (method == "signum") {
    // u = g + beta u; m = signum_lr sign(u); x -= mean_j m_j (the mean of the signs, not a
    // majority vote). ef_sgd's lr is 1: the step size is the sign's scale.
    run(gc::momentum<gc::sign, float>(gc::sign{.scale = s.signum_lr}, d, s.signum_momentum),
        {.lr = 1.0, .error_feedback = false});
  } else if (method == "ef_onebit") {
    // 1-bit SGD (Seide et al. 2014) as GRACE runs it: the two means of the whole vector, under
    // error feedback (the paper's quantisation-error feedback).
    run(gc::onebit{}, {.lr = s.lr});
  } else if (method == "ef_budget_threshold") {
    const std::size_t window = std::max<std::uint64_t>(1, plan.steps / 100);
    run(gc::budget_threshold{.density = s.density, .window = window}, {.lr = s.lr});
  } else if (method == "ef21_top_k") {
    run(gc::ef21<gc::top_k, float>(gc::top_k{.k = plan.k}, d), plain);
  } else if (method == "dgc") {
    // u = lr (1 - beta) g + beta u; v += u; send Top-k of v; zero u and v where sent.
    using inner = gc::error_feedback<gc::top_k, float>;
    run(gc::momentum<inner, float>(inner(gc::top_k{.k = plan.k}, d), d, s.dgc_momentum, gc::momentum_masking::sent),
        {.lr = s.lr * (1 - s.dgc_momentum), .error_feedback = false});
  } else if (method.starts_with("powersgd_r")) {
    const std::size_t rank = std::stoul(method.substr(10));
    const std::vector<gc::tensor_shape> shapes = mlp_shapes();
    gc::powersgd_sgd<Comm, float> scheme(comm, shapes, {.lr = s.lr, .rank = rank, .seed = 1});
    f(scheme);
  } else {
    return false;
  }
  return true;
}

/// Builds the scheme of `method` on comm and calls f(scheme).
template <gc::comm::communicator Comm, class F>
void with_scheme(const std::string& method, Comm& comm, const nonconvex_settings& s, const nonconvex_plan& plan,
                 double lambda, F&& f) {
  const std::size_t d = mlp::size;
  const gc::sgd_options sgd{.lr = s.lr};
  const gc::server_options server{.mode = s.server};
  const gc::double_squeeze_options ds{.lr = s.lr, .server = server};
  const gc::liec_options liec{.lr = s.lr, .sync_every = s.sync_every, .server = server};
  const gc::blockwise_sign blocks{.block_size = s.block_size};
  if (method == "sgd") {
    gc::ef_sgd<gc::identity, Comm, float> scheme(gc::identity{}, comm, d, sgd);
    f(scheme);
  } else if (method == "ef_top_k") {
    gc::ef_sgd<gc::top_k, Comm, float> scheme(gc::top_k{.k = plan.k}, comm, d, sgd);
    f(scheme);
  } else if (method == "ef_hard_threshold") {
    gc::ef_sgd<gc::hard_threshold, Comm, float> scheme(gc::hard_threshold{.lambda = lambda}, comm, d, sgd);
    f(scheme);
  } else if (method == "ef_scaled_sign") {
    gc::ef_sgd<gc::scaled_sign, Comm, float> scheme(gc::scaled_sign{}, comm, d, sgd);
    f(scheme);
  } else if (method == "double_squeeze_scaled_sign") {
    gc::double_squeeze<gc::scaled_sign, Comm, float> scheme(gc::scaled_sign{}, comm, d, ds);
    f(scheme);
  } else if (method == "double_squeeze_blockwise_sign") {
    gc::double_squeeze<gc::blockwise_sign, Comm, float> scheme(blocks, comm, d, ds);
    f(scheme);
  } else if (method == "liec_scaled_sign") {
    gc::liec_sgd<gc::scaled_sign, Comm, float> scheme(gc::scaled_sign{}, comm, d, liec);
    f(scheme);
  } else if (method == "liec_blockwise_sign") {
    gc::liec_sgd<gc::blockwise_sign, Comm, float> scheme(blocks, comm, d, liec);
    f(scheme);
  } else if (!with_peer_scheme(method, comm, s, plan, f)) {
    throw std::invalid_argument("unknown method " + method);
  }
}

/// Hard-threshold's lambda for Top-k's average density, from short runs (the non-convex runs
/// are too long to calibrate on whole runs); the whole run's ratio is reported afterwards.
template <gc::comm::communicator Comm>
calibration calibrate_mlp_lambda(Comm& comm, const nonconvex_data& data, const nonconvex_settings& s,
                                 const nonconvex_plan& plan, const std::function<void(const std::string&)>& note) {
  calibration cal;
  const std::uint64_t steps =
      std::max<std::uint64_t>(1, static_cast<std::uint64_t>(s.calibration_fraction * static_cast<double>(plan.steps)));
  const double target = static_cast<double>(plan.k) * comm.size() * static_cast<double>(steps);
  const auto ratio_at = [&](double lambda) {
    double sent = 0;
    with_scheme("ef_hard_threshold", comm, s, plan, lambda, [&](auto& scheme) {
      const run_request req{.method = "calibration", .seed = s.seed, .steps = steps, .log_at = {}, .bar = nullptr};
      sent = train_mlp(comm, scheme, data, s, req).elements_sent;
    });
    const double r = sent / target;
    ++cal.short_runs;
    cal.probes.push_back({lambda, r, false});
    if (note) note("lambda " + format_g(lambda) + ": " + format_g(r) + "x Top-k's elements (short run)");
    return r;
  };
  const auto best = bisect_log_lambda(ratio_at, 1e-3 * s.lr, s.tolerance / 2, 10.0, 30);
  cal.lambda = best.first;
  cal.ratio = best.second;
  return cal;
}

struct nonconvex_method_result {
  std::string name;
  std::vector<run_record> runs;
};

struct nonconvex_result {
  nonconvex_plan plan;
  calibration lambda;
  std::vector<nonconvex_method_result> methods;
};

template <gc::comm::communicator Comm>
nonconvex_result run_nonconvex_experiment(Comm& comm, const nonconvex_data& data, const nonconvex_settings& s,
                                          const std::vector<std::string>& methods) {
  nonconvex_result result;
  result.plan = plan_of(data, s);
  const bool talk = comm.rank() == 0;
  if (std::find(methods.begin(), methods.end(), "ef_hard_threshold") != methods.end()) {
    if (talk)
      std::printf("calibrating hard-threshold's lambda to Top-k's density %.4g (k = %zu)...\n", s.density,
                  result.plan.k);
    result.lambda = calibrate_mlp_lambda(comm, data, s, result.plan, [&](const std::string& line) {
      if (talk) std::printf("  %s\n", line.c_str());
    });
  }
  const auto schedule = log_schedule(result.plan.steps, result.plan.log_every);
  for (const auto& name : methods) {
    nonconvex_method_result m{name, {}};
    std::unique_ptr<progress> bar;
    if (talk) bar = std::make_unique<progress>(name, result.plan.steps * static_cast<std::uint64_t>(s.seeds));
    for (int i = 0; i < s.seeds; ++i) {
      with_scheme(name, comm, s, result.plan, result.lambda.lambda, [&](auto& scheme) {
        const run_request req{.method = name,
                              .seed = s.seed + static_cast<std::uint64_t>(i),
                              .steps = result.plan.steps,
                              .log_at = schedule,
                              .bar = bar.get()};
        run_outcome out = train_mlp(comm, scheme, data, s, req);
        if (bar && !out.record.points.empty())
          bar->set_note("test accuracy " + format_g(out.record.points.back().accuracy, 3));
        m.runs.push_back(std::move(out.record));
      });
    }
    if (bar) bar->finish();
    result.methods.push_back(std::move(m));
  }
  return result;
}

/// Rank 0: CSVs, plots, summary.json and the table.
inline fs::path write_nonconvex_report(const nonconvex_data& data, const nonconvex_settings& s,
                                       const nonconvex_result& r, const output_options& out) {
  fs::create_directories(out.dir);
  const auto columns = log_columns("train_loss", "test_accuracy");
  std::vector<method_curve> curves;
  std::vector<std::vector<fs::path>> csvs;
  for (const auto& m : r.methods) {
    csvs.push_back(write_run_csvs(out.dir, m.runs, columns));
    method_curve c = summarise(m.runs);
    for (auto& b : c.bytes) b.mean /= s.workers, b.min /= s.workers, b.max /= s.workers;  // per worker
    curves.push_back(std::move(c));
  }
  const std::string what =
      "MLP 784-128-10 on Fashion-MNIST, " + std::to_string(s.workers) + " workers, batch " + std::to_string(s.batch);
  const auto bytes = [](const method_curve& c) -> const std::vector<spread>& { return c.bytes; };
  const auto accuracy = [](const method_curve& c) -> const std::vector<spread>& { return c.accuracy; };
  const auto loss = [](const method_curve& c) -> const std::vector<spread>& { return c.objective; };
  const std::vector<fs::path> plots =
      draw_all(out, {{{"test accuracy vs epochs: " + what, "epochs", "test accuracy", false, false,
                       out.dir / "accuracy_vs_epochs.png"},
                      series_of(curves, bytes, accuracy, true)},
                     {{"test accuracy vs bytes: " + what, "bytes per worker, up + down (cumulative)", "test accuracy",
                       true, false, out.dir / "accuracy_vs_bytes.png"},
                      series_of(curves, bytes, accuracy)},
                     {{"training loss vs epochs: " + what, "epochs", "training loss (mean over the interval)", false,
                       true, out.dir / "loss_vs_epochs.png"},
                      series_of(curves, bytes, loss, true)}});
  json_writer j;
  j.begin_object();
  j.key("experiment").value("nonconvex");
  j.key("dataset").value("fashion-mnist");
  j.key("train_samples").value(static_cast<std::uint64_t>(data.train.size()));
  j.key("test_samples").value(static_cast<std::uint64_t>(data.test.size()));
  j.key("dim").value(static_cast<std::uint64_t>(mlp::size));
  j.key("sample_assignment").value(sample_assignment);
  j.key("workers").value(s.workers);
  j.key("batch").value(static_cast<std::uint64_t>(s.batch));
  j.key("lr").value(s.lr);
  j.key("epochs").value(s.epochs);
  j.key("steps").value(static_cast<std::uint64_t>(r.plan.steps));
  j.key("seeds").value(s.seeds);
  j.key("k").value(static_cast<std::uint64_t>(r.plan.k));
  j.key("sync_every").value(static_cast<std::uint64_t>(s.sync_every));
  j.key("server").value(s.server == gc::server_mode::single ? "single" : "sharded");
  // How well the short-run calibration matched Top-k's volume over the whole runs.
  double whole_run_ratio = std::numeric_limits<double>::quiet_NaN();
  {
    const auto elements_of = [&](const char* name) {
      for (const auto& m : r.methods)
        if (m.name == name) return spread_of(m.runs, [](const run_record& x) { return x.last().elements_sent; }).mean;
      return std::numeric_limits<double>::quiet_NaN();
    };
    whole_run_ratio = elements_of("ef_hard_threshold") / elements_of("ef_top_k");
  }
  if (r.lambda.lambda > 0) {
    j.key("calibration").begin_object();
    j.key("lambda").value(r.lambda.lambda);
    j.key("short_run_ratio").value(r.lambda.ratio);
    j.key("whole_run_ratio").value(whole_run_ratio);
    j.key("short_runs").value(r.lambda.short_runs);
    j.end_object();
  }
  j.key("methods").begin_array();
  for (std::size_t i = 0; i < r.methods.size(); ++i) {
    const auto& runs = r.methods[i].runs;
    j.begin_object();
    j.key("name").value(r.methods[i].name);
    write_spread(j, "elements_sent", spread_of(runs, [](const run_record& x) { return x.last().elements_sent; }));
    write_spread(j, "bytes",
                 spread_of(runs, [](const run_record& x) { return x.last().bytes_up + x.last().bytes_down; }));
    write_spread(j, "bytes_per_worker", spread_of(runs, [&](const run_record& x) {
                   return (x.last().bytes_up + x.last().bytes_down) / s.workers;
                 }));
    write_spread(j, "final_accuracy", spread_of(runs, [](const run_record& x) { return x.last().accuracy; }));
    write_spread(j, "final_train_loss", spread_of(runs, [](const run_record& x) { return x.last().objective; }));
    write_spread(j, "total_error", spread_of(runs, [](const run_record& x) { return x.total_error; }));
    write_file_names(j, "csv", csvs[i]);
    j.end_object();
  }
  j.end_array();
  const fs::path summary = finish_summary(j, out.dir, plots);

  std::printf("\nMLP on Fashion-MNIST: %d workers, batch %zu, lr %.3g, %llu steps (%.3g epochs), %d seed(s)\n",
              s.workers, s.batch, s.lr, static_cast<unsigned long long>(r.plan.steps), s.epochs, s.seeds);
  std::printf("%-30s %14s %16s %14s %12s\n", "method", "test accuracy", "bytes per worker", "elements sent",
              "train loss");
  for (const auto& m : r.methods) {
    const auto acc = spread_of(m.runs, [](const run_record& x) { return x.last().accuracy; });
    const auto b =
        spread_of(m.runs, [&](const run_record& x) { return (x.last().bytes_up + x.last().bytes_down) / s.workers; });
    const auto e = spread_of(m.runs, [](const run_record& x) { return x.last().elements_sent; });
    const auto l = spread_of(m.runs, [](const run_record& x) { return x.last().objective; });
    std::printf("%-30s %14.4f %16s %14.4g %12.4f\n", m.name.c_str(), acc.mean, format_bytes(b.mean).c_str(), e.mean,
                l.mean);
  }
  if (std::isfinite(whole_run_ratio))
    std::printf("hard-threshold (lambda %.4g) sent %.3fx Top-k's elements over the whole runs\n", r.lambda.lambda,
                whole_run_ratio);
  print_where(out.dir, plots);
  return summary;
}

}  // namespace repro
