// The CUDA tests' main (a .cpp: it has no device code, and g++ compiles it faster than nvcc):
// without a device the tests cannot run, and the program says so and exits with 77, which
// ctest reports as skipped (SKIP_RETURN_CODE). Listing the tests (what doctest_discover_tests
// does at build time) works without a device.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cuda_runtime_api.h>

#include <cstdio>
#include <cstring>

int main(int argc, char** argv) {
  bool listing = false;
  for (int i = 1; i < argc; ++i) listing |= std::strncmp(argv[i], "--list", 6) == 0 || std::strncmp(argv[i], "-l", 2) == 0;
  if (!listing) {
    int devices = 0;
    const cudaError_t status = cudaGetDeviceCount(&devices);
    if (status != cudaSuccess || devices == 0) {
      std::printf("gradcomp CUDA tests: SKIPPED, no CUDA device here (cudaGetDeviceCount: %s, %d devices). They run on "
                  "a machine with a GPU: bash scripts/gpu-check.sh OUT\n",
                  cudaGetErrorString(status), devices);
      return 77;
    }
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess)
      std::printf("gradcomp CUDA tests on %s (sm_%d%d, %.1f GiB)\n", prop.name, prop.major, prop.minor,
                  static_cast<double>(prop.totalGlobalMem) / (1u << 30));
  }
  doctest::Context context(argc, argv);
  return context.run();
}
