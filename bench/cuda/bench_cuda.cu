// GPU benchmarks: hard-threshold, exact Top-k (one tensor, and a model of 100 tensors),
// random-k, scaled sign, QSGD, the error-feedback steps and decompress_add on the CUDA back
// end, against a device copy of the same bytes and a full radix sort of (|x|, index), timed
// with CUDA events in the same run.
// Inputs N(0, 1); k = d / 1000 and d = 10^8, k = 10^5 (the cases of docs/performance.md); the
// threshold is set to the k-th largest |x_i|, so that hard-threshold sends the same k entries
// as Top-k.
//
//   gradcomp_cuda_bench [--benchmark_filter=...] [--benchmark_format=json]
//   GRADCOMP_CUDA_BENCH_SMOKE=1: tiny sizes only (a build check, not a measurement).
#include <benchmark/benchmark.h>

#include <cub/device/device_radix_sort.cuh>
#include <cuda_runtime_api.h>

#include <gradcomp/cuda.cuh>
#include <gradcomp/gradcomp.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <span>
#include <string>
#include <vector>

namespace gc = gradcomp;

namespace {

void ok(cudaError_t s) {
  if (s != cudaSuccess) {
    std::fprintf(stderr, "CUDA error: %s\n", cudaGetErrorString(s));
    std::exit(1);
  }
}

struct bench_case {
  std::size_t d, k;
  std::string name;
};

std::vector<bench_case> cases() {
  if (const char* smoke = std::getenv("GRADCOMP_CUDA_BENCH_SMOKE"); smoke && std::string(smoke) == "1")
    return {{std::size_t{1} << 16, 64, "d=2^16/k=64"}};
  return {{std::size_t{1} << 20, (std::size_t{1} << 20) / 1000, "d=2^20/k=d:1000"},
          {std::size_t{1} << 26, (std::size_t{1} << 26) / 1000, "d=2^26/k=d:1000"},
          {100000000, 100000, "d=1e8/k=1e5"}};
}

/// N(0, 1) floats on the device, made on the host once per size (deterministic).
struct inputs {
  std::size_t d = 0;
  std::vector<float> host;
  gc::cuda::device_buffer<float> x, y, e;
  gc::cuda::device_buffer<gc::bfloat16> x16;
  std::size_t k = 0;
  double lambda = 0;  // the k-th largest |x_i|
  static inputs& get(std::size_t d, std::size_t k) {
    static inputs in;
    if (in.d == d && in.k == k) return in;
    if (in.d != d) {
      in.d = d;
      in.host.resize(d);
      std::mt19937_64 rng(d);
      std::normal_distribution<float> n01;
      for (float& v : in.host) v = n01(rng);
      in.x.resize(d);
      in.y.resize(d);
      in.e.resize(d);
      in.x16.resize(d);
      ok(cudaMemcpy(in.x.data(), in.host.data(), d * sizeof(float), cudaMemcpyHostToDevice));
      std::vector<gc::bfloat16> h16(d);
      for (std::size_t i = 0; i < d; ++i) h16[i] = gc::to_bfloat16(in.host[i]);
      ok(cudaMemcpy(in.x16.data(), h16.data(), d * sizeof(gc::bfloat16), cudaMemcpyHostToDevice));
      ok(cudaMemset(in.e.data(), 0, d * sizeof(float)));
    }
    std::vector<float> mags(in.host.size());
    for (std::size_t i = 0; i < mags.size(); ++i) mags[i] = std::fabs(in.host[i]);
    std::nth_element(mags.begin(), mags.begin() + static_cast<std::ptrdiff_t>(k - 1), mags.end(), std::greater<>{});
    in.lambda = mags[k - 1];
    in.k = k;
    return in;
  }
};

/// Times f() with CUDA events: one warm-up call, then one timed call per iteration.
template <class F>
void time_gpu(benchmark::State& state, std::size_t bytes, F&& f) {
  cudaEvent_t start, stop;
  ok(cudaEventCreate(&start));
  ok(cudaEventCreate(&stop));
  f();
  ok(cudaDeviceSynchronize());
  for (auto _ : state) {
    ok(cudaEventRecord(start));
    f();
    ok(cudaEventRecord(stop));
    ok(cudaEventSynchronize(stop));
    float ms = 0;
    ok(cudaEventElapsedTime(&ms, start, stop));
    state.SetIterationTime(static_cast<double>(ms) / 1e3);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * bytes));
  ok(cudaEventDestroy(start));
  ok(cudaEventDestroy(stop));
}

/// x[0, d) as `parts` consecutive tensors of uneven sizes (weights 1 to 100, as layers vary).
std::vector<std::span<const float>> split_into(const float* x, std::size_t d, std::size_t parts) {
  std::vector<std::size_t> weight(parts);
  std::size_t total = 0;
  for (std::size_t i = 0; i < parts; ++i) total += weight[i] = 1 + (i * 7919) % 100;
  std::vector<std::span<const float>> out;
  std::size_t begin = 0;
  for (std::size_t i = 0; i < parts; ++i) {
    const std::size_t n = i + 1 == parts ? d - begin : d / total * weight[i];
    out.emplace_back(x + begin, n);
    begin += n;
  }
  return out;
}

void add(const std::string& name, std::function<void(benchmark::State&)> f) {
  benchmark::RegisterBenchmark(name.c_str(), std::move(f))->UseManualTime()->Unit(benchmark::kMicrosecond);
}

void register_all() {
  for (const bench_case& c : cases()) {
    const std::string p = "cuda/" + c.name + "/";
    const std::size_t d = c.d, k = c.k;
    add(p + "copy", [d, k](benchmark::State& s) {  // reads and writes d floats
      inputs& in = inputs::get(d, k);
      time_gpu(s, 2 * d * sizeof(float),
               [&] { ok(cudaMemcpyAsync(in.y.data(), in.x.data(), d * sizeof(float), cudaMemcpyDeviceToDevice)); });
    });
    add(p + "radix_sort_pairs", [d, k](benchmark::State& s) {  // the full sort a naive Top-k does
      inputs& in = inputs::get(d, k);
      gc::cuda::device_buffer<std::uint32_t> keys_in(d), keys_out(d), idx_in(d), idx_out(d);
      std::vector<std::uint32_t> iota(d);
      for (std::size_t i = 0; i < d; ++i) iota[i] = static_cast<std::uint32_t>(i);
      ok(cudaMemcpy(idx_in.data(), iota.data(), d * 4, cudaMemcpyHostToDevice));
      std::vector<std::uint32_t> keys(d);
      for (std::size_t i = 0; i < d; ++i) keys[i] = gc::detail::magnitude_key(in.host[i]);
      ok(cudaMemcpy(keys_in.data(), keys.data(), d * 4, cudaMemcpyHostToDevice));
      std::size_t bytes = 0;
      ok(cub::DeviceRadixSort::SortPairsDescending(nullptr, bytes, keys_in.data(), keys_out.data(), idx_in.data(),
                                                   idx_out.data(), static_cast<std::int64_t>(d)));
      gc::cuda::device_buffer<char> temp(bytes);
      time_gpu(s, d * sizeof(float), [&] {
        ok(cub::DeviceRadixSort::SortPairsDescending(temp.data(), bytes, keys_in.data(), keys_out.data(),
                                                     idx_in.data(), idx_out.data(), static_cast<std::int64_t>(d)));
      });
    });
    add(p + "hard_threshold", [d, k](benchmark::State& s) {
      inputs& in = inputs::get(d, k);
      gc::cuda::sparse_vector<float> out;
      const gc::hard_threshold c{.lambda = in.lambda};
      time_gpu(s, d * sizeof(float),
               [&] { gc::compress(gc::cuda::par, c, std::span<const float>(in.x.data(), d), out); });
      s.counters["sent"] = static_cast<double>(out.nnz());
    });
    add(p + "top_k", [d, k](benchmark::State& s) {
      inputs& in = inputs::get(d, k);
      gc::cuda::sparse_vector<float> out;
      time_gpu(s, d * sizeof(float),
               [&] { gc::compress(gc::cuda::par, gc::top_k{.k = k}, std::span<const float>(in.x.data(), d), out); });
    });
    add(p + "random_k", [d, k](benchmark::State& s) {  // eight digit passes over the hashes of the indices
      inputs& in = inputs::get(d, k);
      gc::cuda::seeded_sparse_vector<float> out;
      gc::random_k c{.k = k, .seed = 1};
      time_gpu(s, d * sizeof(float), [&] { gc::compress(gc::cuda::par, c, std::span<const float>(in.x.data(), d), out); });
    });
    add(p + "scaled_sign", [d, k](benchmark::State& s) {  // one scale, one bit per element
      inputs& in = inputs::get(d, k);
      gc::cuda::sign_vector<float> out;
      time_gpu(s, d * sizeof(float),
               [&] { gc::compress(gc::cuda::par, gc::scaled_sign{}, std::span<const float>(in.x.data(), d), out); });
    });
    add(p + "qsgd", [d, k](benchmark::State& s) {  // s = 127 levels; checks the input, so one host wait
      inputs& in = inputs::get(d, k);
      gc::cuda::quantized_vector<float> out;
      gc::qsgd c{.s = 127, .seed = 1};
      time_gpu(s, d * sizeof(float), [&] { gc::compress(gc::cuda::par, c, std::span<const float>(in.x.data(), d), out); });
    });
    // Whole-model Top-k: the same d elements as 100 tensors of uneven sizes (views into x),
    // against top_k on x itself. Target: <= 1.2x.
    add(p + "top_k.model100", [d, k](benchmark::State& s) {
      inputs& in = inputs::get(d, k);
      const std::vector<std::span<const float>> tensors = split_into(in.x.data(), d, 100);
      gc::cuda::sparse_vector<float> out;
      time_gpu(s, d * sizeof(float), [&] { gc::compress_model(gc::cuda::par, gc::top_k{.k = k}, tensors, out); });
    });
    add(p + "hard_threshold.model100", [d, k](benchmark::State& s) {
      inputs& in = inputs::get(d, k);
      const std::vector<std::span<const float>> tensors = split_into(in.x.data(), d, 100);
      gc::cuda::sparse_vector<float> out;
      const gc::hard_threshold c{.lambda = in.lambda};
      time_gpu(s, d * sizeof(float), [&] { gc::compress_model(gc::cuda::par, c, tensors, out); });
    });
    for (const bool half : {false, true}) {
      const std::string g = half ? "bf16" : "f32";
      add(p + "ef_top_k." + g, [d, k, half](benchmark::State& s) {  // reads g and e, writes e (+ the payload)
        inputs& in = inputs::get(d, k);
        gc::cuda::error_feedback<gc::top_k> ef(gc::top_k{.k = k}, d);
        time_gpu(s, d * (2 * sizeof(float) + (half ? 2 : 4)), [&] {
          if (half)
            ef.compress(gc::cuda::par, std::span<const gc::bfloat16>(in.x16.data(), d), 0.1f);
          else
            ef.compress(gc::cuda::par, std::span<const float>(in.x.data(), d), 0.1f);
        });
      });
      add(p + "ef_hard_threshold." + g, [d, k, half](benchmark::State& s) {
        inputs& in = inputs::get(d, k);
        gc::cuda::error_feedback<gc::hard_threshold> ef(gc::hard_threshold{.lambda = in.lambda}, d);
        time_gpu(s, d * (2 * sizeof(float) + (half ? 2 : 4)), [&] {
          if (half)
            ef.compress(gc::cuda::par, std::span<const gc::bfloat16>(in.x16.data(), d), 1.0f);
          else
            ef.compress(gc::cuda::par, std::span<const float>(in.x.data(), d), 1.0f);
        });
      });
    }
    add(p + "decompress_add", [d, k](benchmark::State& s) {
      inputs& in = inputs::get(d, k);
      gc::cuda::sparse_vector<float> m;
      gc::compress(gc::cuda::par, gc::top_k{.k = k}, std::span<const float>(in.x.data(), d), m);
      time_gpu(s, k * 2 * sizeof(float),
               [&] { gc::decompress_add(gc::cuda::par, m, std::span<float>(in.y.data(), d), -1.0f); });
    });
  }
}

}  // namespace

int main(int argc, char** argv) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("gradcomp_cuda_bench: no CUDA device, nothing to measure\n");
    return 77;
  }
  cudaDeviceProp prop{};
  ok(cudaGetDeviceProperties(&prop, 0));
  benchmark::AddCustomContext("gpu", prop.name);
  register_all();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
