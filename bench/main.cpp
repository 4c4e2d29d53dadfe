// gradcomp_bench: the compressors against memory-bound and user-written baselines.
// scripts/bench.sh builds and runs it and turns its JSON into docs/performance.md's table
// (scripts/bench_table.py). Environment: GRADCOMP_BENCH_SMOKE=1 (tiny inputs),
// GRADCOMP_BENCH_LARGE=1 (add case 5, d = 1e9). Google Benchmark flags pass through.
#include <unistd.h>

#include <fstream>
#include <string>

#include <gradcomp/version.hpp>

#include "common.hpp"

namespace {

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(' ', colon + 1));
    }
  }
  return "unknown";
}

/// Cache sizes as glibc reports them (Google Benchmark reads sysfs, which VMs often lack).
std::string cache_sizes() {
  const auto kib = [](int name) {
    const long v = sysconf(name);
    return v > 0 ? std::to_string(v / 1024) + " KiB" : std::string("?");
  };
  return "L1d " + kib(_SC_LEVEL1_DCACHE_SIZE) + ", L2 " + kib(_SC_LEVEL2_CACHE_SIZE) + ", L3 " +
         kib(_SC_LEVEL3_CACHE_SIZE) + " (sysconf)";
}

void add_context() {
  using gcbench::dataset_spec;
  benchmark::AddCustomContext("gradcomp_version", std::to_string(gradcomp::version_major) + "." +
                                                      std::to_string(gradcomp::version_minor) + "." +
                                                      std::to_string(gradcomp::version_patch));
  benchmark::AddCustomContext("simd_target", gradcomp::cpu::simd_target());
  benchmark::AddCustomContext("cpu_model", cpu_model());
  benchmark::AddCustomContext("cache_sizes", cache_sizes());
  benchmark::AddCustomContext("tbb_threads", std::to_string(gcbench::hardware_threads()));
#if defined(__clang__)
  benchmark::AddCustomContext("compiler", "clang " __clang_version__);
#elif defined(__GNUC__)
  benchmark::AddCustomContext("compiler", "gcc " __VERSION__);
#endif
  benchmark::AddCustomContext("smoke", gcbench::smoke_mode() ? "1" : "0");
  for (const dataset_spec& ds : gcbench::datasets()) {
    std::string ks;
    for (const auto& kc : ds.ks) ks += (ks.empty() ? "" : ",") + kc.label + "=" + std::to_string(kc.k);
    benchmark::AddCustomContext("dataset." + ds.id, ds.title + "; k " + ks);
  }
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  add_context();
  // Registration order is run order: one data set after the other (see gcbench::input).
  for (const gcbench::dataset_spec& ds : gcbench::datasets()) {
    gcbench::register_baselines(ds);
    if (ds.extras) gcbench::register_dense(ds);
    for (const auto& kc : ds.ks) {
      gcbench::register_user_baselines(ds, kc);
      gcbench::register_sparsifiers(ds, kc);
      gcbench::register_feedback(ds, kc);
      if (ds.extras) gcbench::register_sparse_extras(ds, kc);
      if (ds.extras) gcbench::register_portable(ds, kc);
    }
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
