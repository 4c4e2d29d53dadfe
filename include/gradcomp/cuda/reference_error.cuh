#pragma once
// The host side of the checks that must fail as the reference fails. A compressor that rejects
// some inputs (non-finite values, a code or level that would overflow) checks them on the
// device before writing anything; when the device finds such an input, the input is copied to
// the host and the sequential reference runs on the copy, so the error is the reference's
// own (the same message, naming the same first bad entry) and is raised before the payload or
// the compressor's step changes. Only the rejected input pays for the copy.
#include <cuda_runtime_api.h>

#include <span>
#include <vector>

#include "../concepts.hpp"
#include "../error.hpp"
#include "../execution.hpp"
#include "error.cuh"
#include "policy.cuh"

namespace gradcomp::cuda::detail {

/// A value the device wrote, read back on the host (waits for the policy's stream).
template <class S>
S read_device_value(const par_t& policy, const S* device_value, const char* where) {
  S s{};
  check(cudaMemcpyAsync(&s, device_value, sizeof s, cudaMemcpyDeviceToHost, policy.stream), where, "cudaMemcpyAsync");
  check(cudaStreamSynchronize(policy.stream), where, "cudaStreamSynchronize");
  return s;
}

/// The reference rejects x: run it on a host copy (c taken by value, so a seeded compressor's
/// step stays), so that it throws its own error. It must; if it does not, the device check
/// disagreed with it, which is a bug, reported as such.
template <class C, class T>
[[noreturn]] void reference_rejects(C c, std::span<const T> x, const char* where) {
  std::vector<T> host(x.size());
  if (!host.empty())
    check(cudaMemcpy(host.data(), x.data(), x.size() * sizeof(T), cudaMemcpyDeviceToHost), where, "cudaMemcpy");
  payload_t<C, T> scratch;
  c.compress(exec::seq, std::span<const T>(host), scratch);
  gradcomp::detail::fail(where, "internal error: the device check rejected an input that the reference accepts");
}

}  // namespace gradcomp::cuda::detail
