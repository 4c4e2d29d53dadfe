// The reproduction's experiment pieces: the log schedule, the summary over seeds, one convex
// run through gc::ef_sgd (its counts and its determinism), and lambda's calibration.
#include <doctest/doctest.h>

#include <gradcomp/distributed.hpp>

#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "convex.hpp"
#include "curves.hpp"
#include "nonconvex_experiment.hpp"

namespace gc = gradcomp;

namespace {

/// A small separable-ish task: 200 samples, 12 features, labels from a fixed linear rule.
repro::binary_dataset small_task() {
  std::ostringstream text;
  std::uint64_t state = 12345;
  const auto next = [&] {  // a fixed LCG: the data must not depend on the library's generators
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<double>(state >> 11) / 9007199254740992.0;
  };
  for (int i = 0; i < 200; ++i) {
    double score = 0;
    std::ostringstream features;
    for (int j = 1; j <= 12; ++j) {
      const double v = next() * 2 - 1;
      score += (j % 3 == 0 ? 1.0 : -0.5) * v;
      features << ' ' << j << ':' << v;
    }
    text << (score > 0 ? "+1" : "-1") << features.str() << '\n';
  }
  std::istringstream in(text.str());
  return repro::parse_libsvm(in, "small");
}

/// n images of 28 x 28 with classes 0..9 (pixels from a fixed LCG), for short MLP runs.
fashion_mnist::labelled_images tiny_images(std::size_t n, std::uint64_t state) {
  fashion_mnist::labelled_images set;
  set.x.rows = set.x.cols = 28;
  set.x.count = n;
  for (std::size_t i = 0; i < n * 784; ++i) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    set.x.pixels.push_back(static_cast<std::uint8_t>(state >> 56));
  }
  for (std::size_t i = 0; i < n; ++i) set.labels.push_back(static_cast<std::uint8_t>(i % 10));
  return set;
}

/// Elements sent by all workers over a short MLP run of `scheme` (built on each rank by make).
template <class Make>
repro::run_outcome mlp_run(const repro::nonconvex_data& data, const repro::nonconvex_settings& s, std::uint64_t steps,
                           Make make) {
  repro::run_outcome out0;
  gc::comm::local_group::run(s.workers, [&](gc::comm::local_communicator& comm) {
    auto scheme = make(comm);
    const repro::run_request req{.method = "m", .seed = 3, .steps = steps, .log_at = {steps}, .bar = nullptr};
    repro::run_outcome out = repro::train_mlp(comm, scheme, data, s, req);
    if (comm.rank() == 0) out0 = std::move(out);
  });
  return out0;
}

}  // namespace

TEST_CASE("repro experiment: the non-convex runs count LIEC-SGD's elements (not NaN)") {
  using examples::mlp;
  const repro::nonconvex_data data = repro::make_nonconvex_data(tiny_images(48, 1), tiny_images(20, 2), 0, 0, 1);
  repro::nonconvex_settings s;
  s.workers = 2;
  s.batch = 2;
  s.sync_every = 4;
  const std::uint64_t steps = 10;  // steps 4 and 8 synchronise: 8 compressed, 2 uncompressed
  const double d = mlp::size, k = 100;
  const auto expect = [&](double per_compressed_step) {  // all workers
    return s.workers * (8 * per_compressed_step + 2 * 2 * d);
  };
  const gc::liec_options single{.lr = s.lr, .sync_every = s.sync_every, .server = {}};
  const gc::liec_options sharded{.lr = s.lr, .sync_every = s.sync_every, .server = {.mode = gc::server_mode::sharded}};
  using local = gc::comm::local_communicator;

  const auto top = mlp_run(data, s, steps, [&](local& comm) {
    return gc::liec_sgd<gc::top_k, local, float>(gc::top_k{.k = 100}, comm, mlp::size, single);
  });
  CHECK(top.elements_sent == expect(k));
  REQUIRE(top.record.points.size() == 1);
  CHECK(top.record.points[0].elements_sent == expect(k));
  CHECK(top.record.total_error > 0);
  // Sharded: one Top-k message per shard.
  const auto top_sharded = mlp_run(data, s, steps, [&](local& comm) {
    return gc::liec_sgd<gc::top_k, local, float>(gc::top_k{.k = 100}, comm, mlp::size, sharded);
  });
  CHECK(top_sharded.elements_sent == expect(k * s.workers));
  // Signs: every element of every compressed step.
  const auto sign = mlp_run(data, s, steps, [&](local& comm) {
    return gc::liec_sgd<gc::scaled_sign, local, float>(gc::scaled_sign{}, comm, mlp::size, single);
  });
  CHECK(sign.elements_sent == expect(d));
  // Hard-threshold's count depends on the gradients: none above a huge lambda, some but not
  // all above a small one.
  const auto hard_run = [&](double lambda) {
    return mlp_run(data, s, steps, [&](local& comm) {
      return gc::liec_sgd<gc::hard_threshold, local, float>(gc::hard_threshold{.lambda = lambda}, comm, mlp::size,
                                                            single);
    });
  };
  CHECK(hard_run(1e9).elements_sent == expect(0));
  const auto hard = hard_run(1e-3);
  CHECK(std::isfinite(hard.elements_sent));
  CHECK(hard.elements_sent > expect(0));
  CHECK(hard.elements_sent < expect(d));
  // Every step synchronising: 2d per worker and step, and no compression error.
  repro::nonconvex_settings every = s;
  every.sync_every = 1;
  const auto syncs = mlp_run(data, every, steps, [&](local& comm) {
    return gc::liec_sgd<gc::top_k, local, float>(gc::top_k{.k = 100}, comm, mlp::size,
                                                 {.lr = s.lr, .sync_every = 1, .server = {}});
  });
  CHECK(syncs.elements_sent == s.workers * steps * 2 * d);
  CHECK(syncs.record.total_error == 0);
}

TEST_CASE("repro experiment: log_schedule logs 1, 2, 4 early, then every interval, and the last step") {
  CHECK(repro::log_schedule(100, 10) ==
        std::vector<std::uint64_t>{1, 2, 4, 8, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100});
  CHECK(repro::log_schedule(25, 10) == std::vector<std::uint64_t>{1, 2, 4, 8, 10, 20, 25});
  CHECK(repro::log_schedule(3, 10) == std::vector<std::uint64_t>{1, 2, 3});
  CHECK(repro::log_schedule(5, 1) == std::vector<std::uint64_t>{1, 2, 3, 4, 5});
  CHECK(repro::log_schedule(5, 0) == std::vector<std::uint64_t>{1, 2, 3, 4, 5});
}

TEST_CASE("repro experiment: summarise gives mean, min and max over seeds point by point") {
  repro::run_record a{.method = "m", .seed = 1, .points = {}, .total_error = 1, .seconds = 0};
  repro::run_record b = a;
  b.seed = 2;
  a.points.push_back({.step = 1,
                      .epoch = 0.5,
                      .elements_sent = 10,
                      .bytes_up = 1,
                      .bytes_down = 2,
                      .objective = 1.0,
                      .mean_error = 0,
                      .elements_per_step = 10,
                      .accuracy = 0.5});
  b.points.push_back({.step = 1,
                      .epoch = 0.5,
                      .elements_sent = 30,
                      .bytes_up = 3,
                      .bytes_down = 4,
                      .objective = 3.0,
                      .mean_error = 2,
                      .elements_per_step = 30,
                      .accuracy = 0.7});
  const auto c = repro::summarise({a, b});
  REQUIRE(c.step.size() == 1);
  CHECK(c.elements_sent[0].mean == 20);
  CHECK(c.elements_sent[0].min == 10);
  CHECK(c.elements_sent[0].max == 30);
  CHECK(c.bytes[0].mean == 5);  // up + down
  CHECK(c.objective[0].mean == 2);
  CHECK(c.accuracy[0].max == doctest::Approx(0.7));
  b.points.push_back(b.points.back());
  CHECK_THROWS_AS(repro::summarise({a, b}), std::logic_error);
  CHECK_THROWS_AS(repro::summarise({}), std::logic_error);
}

TEST_CASE("repro experiment: a convex run counts what EF-SGD sends and is deterministic") {
  const repro::convex_problem p = repro::make_convex_problem(small_task());
  CHECK(p.l2 == doctest::Approx(p.smoothness / 10000));
  CHECK(p.gamma == doctest::Approx(1 / (p.smoothness + p.l2)));
  repro::convex_settings s;
  s.workers = 4;
  s.epochs = 2;
  s.points_per_epoch = 2;
  const auto plan = repro::plan_of(p, s);
  CHECK(plan.steps == 100);  // 2 epochs of 200 samples, 4 per step
  CHECK(plan.log_every == 25);
  CHECK(plan.k == 1);  // 0.2% of 12, at least 1

  const auto run = [&](auto compressor) {
    std::vector<repro::run_outcome> outs(4);
    gc::comm::local_group::run(4, [&](gc::comm::local_communicator& comm) {
      const repro::run_request req{.method = "m",
                                   .seed = 7,
                                   .steps = plan.steps,
                                   .log_at = repro::log_schedule(plan.steps, plan.log_every),
                                   .bar = nullptr};
      outs[static_cast<std::size_t>(comm.rank())] = repro::run_convex(comm, p, s, compressor, req);
    });
    return outs;
  };
  const auto sgd = run(gc::identity{});
  // Uncompressed: every worker sends d values per step; no residual; the objective falls.
  CHECK(sgd[0].elements_sent == 4.0 * 12 * 100);
  CHECK(sgd[3].elements_sent == sgd[0].elements_sent);  // every rank gets the total
  const auto& points = sgd[0].record.points;
  REQUIRE(points.size() == repro::log_schedule(100, 25).size());
  CHECK(points.back().step == 100);
  CHECK(points.back().epoch == doctest::Approx(2.0));
  CHECK(points.back().elements_sent == sgd[0].elements_sent);
  CHECK(points.back().mean_error == 0);
  CHECK(sgd[0].record.total_error == 0);
  CHECK(points.back().objective < points.front().objective);
  CHECK(points.back().objective >= 0);
  CHECK(sgd[1].record.points.empty());  // only rank 0 evaluates

  const auto top = run(gc::top_k{.k = 1});
  CHECK(top[0].elements_sent == 4.0 * 1 * 100);
  CHECK(top[0].record.points.back().elements_per_step == doctest::Approx(4.0));
  CHECK(top[0].record.total_error > 0);
  // The same seed gives the same bits.
  const auto again = run(gc::top_k{.k = 1});
  for (std::size_t i = 0; i < top[0].record.points.size(); ++i)
    CHECK(again[0].record.points[i].objective == top[0].record.points[i].objective);
}

TEST_CASE("repro experiment: calibrate_lambda matches Top-k's volume within the tolerance") {
  const repro::convex_problem p = repro::make_convex_problem(small_task());
  repro::convex_settings s;
  s.workers = 4;
  s.epochs = 3;
  s.seeds = 2;
  s.k = 2;
  const auto plan = repro::plan_of(p, s);
  gc::comm::local_group::run(4, [&](gc::comm::local_communicator& comm) {
    const repro::calibration cal = repro::calibrate_lambda(comm, p, s, plan);
    CHECK(cal.lambda > 0);
    CHECK(std::abs(cal.ratio - 1) <= s.tolerance);
    CHECK(cal.short_runs >= 1);
    REQUIRE(!cal.probes.empty());
    // The ratio reported is a full-run probe's (the mean over both seeds).
    bool found = false;
    for (const auto& probe : cal.probes)
      found = found || (probe.full && probe.lambda == cal.lambda && probe.ratio == cal.ratio);
    CHECK(found);
    // Re-measure it independently: both seeds' hard-threshold volume over a whole run.
    double sent = 0;
    for (std::uint64_t seed : {s.seed, s.seed + 1}) {
      const repro::run_request req{.method = "check", .seed = seed, .steps = plan.steps, .log_at = {}, .bar = nullptr};
      sent += repro::run_convex(comm, p, s, gc::hard_threshold{.lambda = cal.lambda}, req).elements_sent;
    }
    CHECK(sent / (2.0 * 2 * 4 * static_cast<double>(plan.steps)) == doctest::Approx(cal.ratio));
  });
}

TEST_CASE("repro experiment: plan_of rejects impossible settings") {
  const repro::convex_problem p = repro::make_convex_problem(small_task());
  repro::convex_settings s;
  s.workers = 500;
  CHECK_THROWS_WITH_AS(repro::plan_of(p, s), doctest::Contains("more workers (500) than samples (200)"),
                       std::invalid_argument);
  s.workers = 4;
  s.k = 13;
  CHECK_THROWS_WITH_AS(repro::plan_of(p, s), doctest::Contains("exceeds the dimension 12"), std::invalid_argument);
}
