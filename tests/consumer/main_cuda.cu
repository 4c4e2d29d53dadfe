// A downstream .cu program on the installed package's cuda component: Top-k and error
// feedback on device memory, checked against exec::seq where a GPU is present.
#include <gradcomp/cuda.cuh>
#include <gradcomp/gradcomp.hpp>

#include <cuda_runtime_api.h>

#include <cstdio>
#include <vector>

namespace gc = gradcomp;

int main() {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("consumer_cuda: built; no CUDA device here, not run\n");
    return 0;
  }
  std::vector<float> g(10000);
  for (std::size_t i = 0; i < g.size(); ++i) g[i] = static_cast<float>((i * 7919) % 1000) - 500.0f;
  float* d_g = nullptr;
  if (cudaMalloc(&d_g, g.size() * sizeof(float)) != cudaSuccess) return 1;
  cudaMemcpy(d_g, g.data(), g.size() * sizeof(float), cudaMemcpyHostToDevice);
  gc::cuda::sparse_vector<float> msg;
  gc::compress(gc::cuda::par, gc::top_k{.k = 100}, std::span<const float>(d_g, g.size()), msg);
  gc::sparse_vector<float> want;
  gc::compress(gc::exec::seq, gc::top_k{.k = 100}, g, want);
  const bool same = msg.encode() == gc::encode(want);
  gc::cuda::error_feedback<gc::top_k> ef(gc::top_k{.k = 100}, g.size());
  ef.compress(gc::cuda::par, std::span<const float>(d_g, g.size()), 0.5f);
  cudaFree(d_g);
  std::printf("consumer_cuda: top_k on the GPU %s exec::seq\n", same ? "equals" : "DIFFERS FROM");
  return same ? 0 : 1;
}
