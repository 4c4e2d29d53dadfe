#pragma once
// What every benchmark file shares: the cases (data sets and their k), the back ends to run
// on, and one way to register, name and count a benchmark.
//
// Names are "<data set>/<kernel>/<back end>" or, for what depends on k,
// "<data set>/k=<label>/<kernel>/<back end>"; the back end is "seq", or "par:<threads>" for
// exec::par (and for the baselines) under tbb::global_control. scripts/bench_table.py parses
// these names, so keep the two in step.
#include <benchmark/benchmark.h>
#include <tbb/global_control.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <gradcomp/cpu.hpp>

namespace gcbench {

namespace gc = gradcomp;

enum class distribution {
  normal,           // N(0, 1)
  student_t3,       // Student-t, nu = 3: heavy tails, like gradients
  narrow_band,      // |x| uniform in [1.0, 1.00003], random sign: all leading bits equal
  quantised_256,    // N(0, 1) rounded to 256 levels (step 1/32, clamped to [-4, 4)): ties
  half_zero_normal  // half exact zeros, the rest N(0, 1)
};

struct k_case {
  std::string label;  // "0.1%", "1e5", ... (the same in smoke mode, where k is scaled down)
  std::size_t k;
};

struct dataset_spec {
  std::string id;     // "c1", "c4n", ...
  std::string title;  // for the table
  std::size_t d;
  distribution dist;
  std::vector<k_case> ks;
  bool extras = false;  // case 3: sign, QSGD, random-k, decompress_add
  bool huge = false;    // case 5: few iterations, no partial_sort
};

/// GRADCOMP_BENCH_SMOKE=1: every case at d = 2^17 (a pipeline check, not a measurement).
bool smoke_mode();
/// GRADCOMP_BENCH_LARGE=1: also case 5 (d = 1e9, needs about 16 GB at its peak).
bool large_mode();
/// The cases to run, in run order.
std::vector<dataset_spec> datasets();

/// The input of a data set. Only one data set is kept in memory: asking for another frees
/// the previous one (benchmarks run in registration order, one data set after the other).
const std::vector<float>& input(const dataset_spec& ds);
/// top_k{k} of the input, computed once (exec::par) and kept with the data set.
const gc::sparse_vector<float>& top_k_message(const dataset_spec& ds, std::size_t k);
/// The hard-threshold lambda with the density of top_k{k}: the k-th largest magnitude
/// (ties at it make hard-threshold send a few more than k).
double matching_lambda(const dataset_spec& ds, std::size_t k);

/// The scale passed to error_feedback::compress (a learning-rate-like power of two, so
/// scale * g is exact and the step's density equals that of g; see feedback.cpp).
inline constexpr float feedback_scale = 1.0f / 1024.0f;

/// Threads exec::par uses by default here (tbb::info::default_concurrency()).
int hardware_threads();

struct backend {
  std::string name;  // "seq" or "par:<threads>"
  bool par;
  int threads;
};
/// exec::seq, then exec::par on 1 thread and on all threads.
std::vector<backend> all_backends();
/// exec::par (or a parallel baseline) on 1 thread and on all threads.
std::vector<backend> par_backends();

/// Caps oneTBB at b.threads for its lifetime (nothing for seq).
class thread_limit {
 public:
  explicit thread_limit(const backend& b);

 private:
  std::optional<tbb::global_control> control_;
};

/// Runs f(policy) with gc::exec::seq or gc::exec::par.
template <class F>
decltype(auto) with_policy(const backend& b, F&& f) {
  if (b.par) return f(gc::exec::par);
  return f(gc::exec::seq);
}

/// Registers fn as "<prefix>/<kernel>/<back end>": real time, a unit fitting d, and on
/// case 5 a single iteration. Otherwise the iteration count is Google Benchmark's
/// (--benchmark_min_time, 0.5 s by default; a call longer than that runs once).
benchmark::internal::Benchmark* add(const dataset_spec& ds, const std::string& prefix, const std::string& kernel,
                                    const backend& b, std::function<void(benchmark::State&)> fn);
/// "<id>" or "<id>/k=<label>".
std::string prefix_of(const dataset_spec& ds);
std::string prefix_of(const dataset_spec& ds, const k_case& kc);

/// The counters every row carries: d, k (0 where k does not apply), threads, elements sent
/// per call, and bytes processed (bytes_per_call * iterations, so GB/s appears).
void set_counters(benchmark::State& state, const dataset_spec& ds, std::size_t k, const backend& b,
                  double bytes_per_call, double sent_per_call);

/// Whether a row makes one untimed call first: always but on case 5 (one call per kernel, to
/// bound its time and memory). Rows measure the steady state of a training loop that reuses
/// its payload; a cold first call also pays for allocating and first-touching the payload
/// (qsgd at d = 1e8: 1.1 s cold, 30 ms warm), and Google Benchmark keeps its one-iteration
/// probe as the result when that probe already lasts min_time.
inline bool should_warm_up(const dataset_spec& ds) { return !ds.huge; }

// Registration, one file per idea.
void register_baselines(const dataset_spec& ds);                      // baselines.cpp
void register_user_baselines(const dataset_spec& ds, const k_case& kc);  // baselines.cpp
void register_sparsifiers(const dataset_spec& ds, const k_case& kc);     // sparsifiers.cpp
void register_feedback(const dataset_spec& ds, const k_case& kc);        // feedback.cpp
void register_dense(const dataset_spec& ds);                          // dense.cpp
void register_sparse_extras(const dataset_spec& ds, const k_case& kc);   // dense.cpp
void register_portable(const dataset_spec& ds, const k_case& kc);        // portable.cpp (no -march)

}  // namespace gcbench

namespace gcbench::dispatch {

// Which calls exec::par itself has a kernel for (gradcomp/backend.hpp); the table marks par
// rows without one as "seq fallback".
template <class C>
inline constexpr bool has_par_kernel =
    gc::backend::has_kernel<gc::backend::compress_hook, gc::exec::par_t, C, std::span<const float>,
                            gc::payload_t<C, float>>;

template <class C>
inline constexpr bool has_fused_feedback =
    gc::backend::has_kernel<gc::backend::feedback_step_hook, gc::exec::par_t, const C, std::span<const float>,
                            std::span<const float>, float, std::span<float>, gc::payload_t<C, float>>;

template <class P>
inline constexpr bool has_par_decompress =
    gc::backend::has_kernel<gc::backend::decompress_add_hook, gc::exec::par_t, const P, std::span<float>, float>;

}  // namespace gcbench::dispatch

namespace gcbench {

/// One row: gc::compress(policy, c, x, msg) on the dataset's input, per backend. GB/s counts
/// the d input floats.
template <class C>
void run_compressor(benchmark::State& state, const dataset_spec& ds, std::size_t k, const backend& b, C c) {
  const std::span<const float> x(input(ds));
  gc::payload_t<C, float> msg;
  const thread_limit limit(b);
  with_policy(b, [&](const auto& policy) {
    if (should_warm_up(ds)) gc::compress(policy, c, x, msg);
    for (auto _ : state) {
      gc::compress(policy, c, x, msg);
      benchmark::DoNotOptimize(msg);
      benchmark::ClobberMemory();
    }
  });
  set_counters(state, ds, k, b, 4.0 * static_cast<double>(ds.d), static_cast<double>(gc::sent_elements(msg)));
  state.counters["par_kernel"] = b.par && dispatch::has_par_kernel<C>;
}

}  // namespace gcbench
