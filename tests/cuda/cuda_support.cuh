#pragma once
// Helpers of the CUDA tests: device copies of host vectors, and the comparisons with exec::seq.
#include <doctest/doctest.h>

#include <cuda_runtime_api.h>

#include <gradcomp/cuda.cuh>
#include <gradcomp/gradcomp.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>
#include <vector>

#include "../unit/test_support.hpp"

namespace gc = gradcomp;
namespace gt = gradcomp_test;

namespace gradcomp_cuda_test {

inline void ok(cudaError_t status) { REQUIRE_MESSAGE(status == cudaSuccess, cudaGetErrorString(status)); }

/// A device copy of a host vector (freed with the object).
template <class T>
struct device_copy {
  gc::cuda::device_buffer<T> buffer;
  explicit device_copy(const std::vector<T>& host) : buffer(host.size()) {
    if (!host.empty()) ok(cudaMemcpy(buffer.data(), host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice));
  }
  explicit device_copy(std::size_t n) : buffer(n) {}
  std::span<const T> span() const { return {buffer.data(), buffer.size()}; }
  std::span<T> span() { return {buffer.data(), buffer.size()}; }
  std::vector<T> to_host() const {
    std::vector<T> out(buffer.size());
    if (!out.empty()) ok(cudaMemcpy(out.data(), buffer.data(), out.size() * sizeof(T), cudaMemcpyDeviceToHost));
    return out;
  }
};

template <class T>
std::vector<T> to_host(std::span<const T> device) {
  std::vector<T> out(device.size());
  if (!out.empty()) ok(cudaMemcpy(out.data(), device.data(), out.size() * sizeof(T), cudaMemcpyDeviceToHost));
  return out;
}

/// Sizes around the reduction block, the tie tile and the select's grid, and a large one.
/// GRADCOMP_CUDA_HUGE=1 adds 2^30 (1 GiB of floats per copy); GRADCOMP_CUDA_MAX_SIZE=n drops
/// sizes above n (compute-sanitizer runs up to 2^20: it slows kernels a hundredfold).
inline std::vector<std::size_t> sizes() {
  std::vector<std::size_t> s = {0, 1, 2, 7, 8, 255, 4095, 4096, 4097, 65537, 1000003, std::size_t{1} << 22};
  if (const char* huge = std::getenv("GRADCOMP_CUDA_HUGE"); huge != nullptr && std::string(huge) == "1")
    s.push_back(std::size_t{1} << 30);
  if (const char* max = std::getenv("GRADCOMP_CUDA_MAX_SIZE"); max != nullptr) {
    const std::size_t limit = std::strtoull(max, nullptr, 10);
    std::erase_if(s, [limit](std::size_t n) { return n > limit; });
  }
  return s;
}

/// NaN (with a payload), +-Inf and -0 in a few places.
template <class T>
void place_specials(std::vector<T>& x, std::uint64_t seed) {
  if (x.size() < 8) return;
  std::uint64_t s = seed;
  const auto at = [&] { return static_cast<std::size_t>((s = gc::detail::mix64(s + 1)) % x.size()); };
  x[at()] = std::numeric_limits<T>::quiet_NaN();
  x[at()] = -std::numeric_limits<T>::infinity();
  x[at()] = std::numeric_limits<T>::infinity();
  x[at()] = T(-0.0);
}

}  // namespace gradcomp_cuda_test
