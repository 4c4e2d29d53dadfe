// The cases of /work/shared/BENCHMARKS.md, their inputs, and the registration helpers.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <string_view>
#include <utility>

#include <tbb/blocked_range.h>
#include <tbb/info.h>
#include <tbb/parallel_for.h>

#include "common.hpp"

namespace gcbench {

namespace {

bool env_is_one(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && std::string_view(v) == "1";
}

/// k as the same fraction of the smoke size as of the full one (at least 1).
std::size_t scaled_k(std::size_t k, std::size_t full_d, std::size_t d) {
  if (d == full_d) return k;
  const double f = static_cast<double>(k) / static_cast<double>(full_d);
  return std::max<std::size_t>(1, static_cast<std::size_t>(std::llround(f * static_cast<double>(d))));
}

std::size_t percent_k(double percent, std::size_t d) {
  return std::max<std::size_t>(1, static_cast<std::size_t>(std::llround(percent / 100.0 * static_cast<double>(d))));
}

constexpr std::size_t smoke_d = std::size_t{1} << 17;

/// Fills x with the distribution; chunk c draws from its own engine, so the data do not
/// depend on the thread count.
void generate(distribution dist, std::vector<float>& x, std::uint64_t seed) {
  constexpr std::size_t chunk = std::size_t{1} << 20;
  const std::size_t chunks = (x.size() + chunk - 1) / chunk;
  tbb::parallel_for(tbb::blocked_range<std::size_t>(0, chunks), [&](const tbb::blocked_range<std::size_t>& r) {
    for (std::size_t c = r.begin(); c < r.end(); ++c) {
      std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ULL + c);
      const std::size_t begin = c * chunk, end = std::min(x.size(), begin + chunk);
      std::normal_distribution<float> normal(0.0f, 1.0f);
      std::student_t_distribution<float> student(3.0f);
      std::uniform_real_distribution<float> band(1.0f, 1.00003f);
      std::bernoulli_distribution coin(0.5);
      for (std::size_t i = begin; i < end; ++i) {
        float v = 0.0f;
        switch (dist) {
          case distribution::normal: v = normal(rng); break;
          case distribution::student_t3: v = student(rng); break;
          case distribution::narrow_band: v = coin(rng) ? band(rng) : -band(rng); break;
          case distribution::quantised_256:
            v = std::clamp(std::round(normal(rng) * 32.0f), -128.0f, 127.0f) / 32.0f;
            break;
          case distribution::half_zero_normal: v = coin(rng) ? normal(rng) : 0.0f; break;
        }
        x[i] = v;
      }
    }
  });
}

struct loaded {
  std::string id;
  std::vector<float> x;
  std::map<std::size_t, std::unique_ptr<gc::sparse_vector<float>>> messages;
};

loaded& current() {
  static loaded state;
  return state;
}

}  // namespace

bool smoke_mode() { return env_is_one("GRADCOMP_BENCH_SMOKE"); }
bool large_mode() { return env_is_one("GRADCOMP_BENCH_LARGE"); }

std::vector<dataset_spec> datasets() {
  const bool smoke = smoke_mode();
  const auto size = [&](std::size_t d) { return smoke ? smoke_d : d; };
  std::vector<dataset_spec> out;
  const auto add_case = [&](std::string id, std::string what, std::size_t full_d, distribution dist,
                            std::vector<std::pair<std::string, std::size_t>> ks) {
    dataset_spec ds{.id = std::move(id), .title = {}, .d = size(full_d), .dist = dist, .ks = {}};
    ds.title = what + ", d = " + std::to_string(ds.d);
    for (auto& [label, k] : ks) ds.ks.push_back({label, scaled_k(k, full_d, ds.d)});
    out.push_back(std::move(ds));
  };
  const std::size_t d1 = std::size_t{1} << 20, d2 = 25'557'032, d3 = 100'000'000, d4 = std::size_t{1} << 24,
                    d5 = 1'000'000'000;
  add_case("c1", "case 1: per-layer latency, N(0,1)", d1, distribution::normal, {{"0.1%", percent_k(0.1, d1)}});
  add_case("c2", "case 2: ResNet-50 size, Student-t nu=3", d2, distribution::student_t3, {{"1%", percent_k(1, d2)}});
  add_case("c3", "case 3: throughput, N(0,1)", d3, distribution::normal, {{"1e5", 100'000}, {"1e6", 1'000'000}});
  out.back().extras = true;
  add_case("c4n", "case 4a: adversarial, |x| in [1, 1.00003]", d4, distribution::narrow_band, {{"1%", percent_k(1, d4)}});
  add_case("c4q", "case 4b: adversarial, 256 levels", d4, distribution::quantised_256, {{"1%", percent_k(1, d4)}});
  if (smoke || large_mode()) {
    add_case("c5", "case 5: 64-bit scale, half exact zeros", d5, distribution::half_zero_normal,
             {{"1%", percent_k(1, d5)}});
    out.back().huge = !smoke;
  }
  return out;
}

const std::vector<float>& input(const dataset_spec& ds) {
  loaded& s = current();
  if (s.id != ds.id) {
    s = loaded{};  // free the previous data set first
    s.x.resize(ds.d);
    generate(ds.dist, s.x, std::hash<std::string>{}(ds.id));
    s.id = ds.id;
  }
  return s.x;
}

const gc::sparse_vector<float>& top_k_message(const dataset_spec& ds, std::size_t k) {
  const std::vector<float>& x = input(ds);
  auto& slot = current().messages[k];
  if (!slot) {
    slot = std::make_unique<gc::sparse_vector<float>>();
    gc::compress(gc::exec::par, gc::top_k{.k = k}, x, *slot);
  }
  return *slot;
}

double matching_lambda(const dataset_spec& ds, std::size_t k) {
  const auto& m = top_k_message(ds, k);
  double lambda = INFINITY;
  for (const float v : m.values) lambda = std::min(lambda, std::fabs(static_cast<double>(v)));
  return lambda;
}

int hardware_threads() { return tbb::info::default_concurrency(); }

std::vector<backend> par_backends() {
  std::vector<backend> out{{"par:1", true, 1}};
  const int n = hardware_threads();
  if (n > 1) out.push_back({"par:" + std::to_string(n), true, n});
  return out;
}

std::vector<backend> all_backends() {
  std::vector<backend> out{{"seq", false, 1}};
  for (auto& b : par_backends()) out.push_back(b);
  return out;
}

thread_limit::thread_limit(const backend& b) {
  if (b.par) control_.emplace(tbb::global_control::max_allowed_parallelism, static_cast<std::size_t>(b.threads));
}

std::string prefix_of(const dataset_spec& ds) { return ds.id; }
std::string prefix_of(const dataset_spec& ds, const k_case& kc) { return ds.id + "/k=" + kc.label; }

benchmark::internal::Benchmark* add(const dataset_spec& ds, const std::string& prefix, const std::string& kernel,
                                    const backend& b, std::function<void(benchmark::State&)> fn) {
  const std::string name = prefix + "/" + kernel + "/" + b.name;
  auto* bm = benchmark::RegisterBenchmark(name.c_str(), std::move(fn));
  bm->UseRealTime();
  bm->Unit(ds.d < (std::size_t{1} << 22) ? benchmark::kMicrosecond : benchmark::kMillisecond);
  if (ds.huge) bm->Iterations(1);  // one call of every kernel on d = 1e9 (no warm-up call either)
  return bm;
}

void set_counters(benchmark::State& state, const dataset_spec& ds, std::size_t k, const backend& b,
                  double bytes_per_call, double sent_per_call) {
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes_per_call * static_cast<double>(state.iterations())));
  state.counters["d"] = static_cast<double>(ds.d);
  state.counters["k"] = static_cast<double>(k);
  state.counters["threads"] = b.threads;
  state.counters["sent"] = sent_per_call;
}

}  // namespace gcbench
