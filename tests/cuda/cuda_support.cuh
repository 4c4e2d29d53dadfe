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
#include <type_traits>
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

/// gc::cuda::error_feedback against gc::error_feedback on exec::seq over three steps: the same
/// messages (wire bytes), residual bits, metrics and (seeded compressors) step. G: the
/// gradient's element type (float, or a 16-bit type, against the host step on it).
template <class C, class G = float>
void check_feedback_steps(const C& c, std::size_t d, float scale) {
  gc::error_feedback<C, float> host(c, d);
  gc::cuda::error_feedback<C, float> device(c, d);
  for (int step = 0; step < 3; ++step) {
    CAPTURE(step);
    const std::vector<float> base = gt::make_input<float>(gt::input_kind::heavy_tailed, d, 100 * step + d);
    std::vector<G> g(d);
    for (std::size_t i = 0; i < d; ++i) {
      if constexpr (std::is_same_v<G, float>)
        g[i] = base[i];
      else
        g[i] = gc::to_half<G>(base[i]);
    }
    const auto& want = host.compress(gc::exec::seq, std::span<const G>(g), scale);
    const device_copy<G> dg(g);
    const auto& got = device.compress(gc::cuda::par, dg.span(), scale);
    REQUIRE(got.encode() == gc::encode(want));
    REQUIRE(gt::same_bits(to_host(device.error()), std::vector<float>(host.error().begin(), host.error().end())));
    CHECK(device.metrics().total_error == host.metrics().total_error);
    CHECK(device.metrics().wire_bytes == host.metrics().wire_bytes);
    CHECK(device.metrics().elements_sent == host.metrics().elements_sent);
    if constexpr (gc::seeded_compressor<C>) CHECK(device.base().step == host.base().step);
  }
}

/// decompress_add of a device payload (made from the host message m by from_host) adds what
/// the host's does, bit for bit, for several alphas; and it encodes to m's bytes.
template <class T, class Host, class Device>
void check_decompress_add(const Host& m, std::size_t d) {
  Device dm;
  dm.from_host(m);
  CHECK(dm.encode() == gc::encode(m));
  const std::vector<T> dense = gt::make_input<T>(gt::input_kind::normal, d, 5);
  for (const T alpha : {T(1), T(-1), T(0.3)}) {
    std::vector<T> want = dense;
    m.decompress_add(want, alpha);
    device_copy<T> dd(dense);
    gc::decompress_add(gc::cuda::par, dm, dd.span(), alpha);
    CHECK(gt::same_bits(dd.to_host(), want));
  }
}

}  // namespace gradcomp_cuda_test
