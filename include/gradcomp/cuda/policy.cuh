#pragma once
// gc::cuda::par: the CUDA back end's execution policy. Every input, output, residual and
// payload is in device memory; kernels run on the policy's stream (par.on(stream)) and take
// their temporary storage from its workspace (par.with_workspace(ws); by default the calling
// thread's). It names no fallback(): a call without a CUDA kernel fails to compile instead
// of running the sequential reference on device pointers.
#include <cuda_runtime_api.h>

#include "../execution.hpp"
#include "memory.cuh"

namespace gradcomp::cuda {

struct par_t {
  cudaStream_t stream = nullptr;
  cuda::workspace* scratch = nullptr;  // null: default_workspace()

  /// The same policy on another stream.
  constexpr par_t on(cudaStream_t s) const noexcept {
    par_t p = *this;
    p.stream = s;
    return p;
  }
  /// The same policy with its own temporary storage.
  constexpr par_t with_workspace(cuda::workspace& ws) const noexcept {
    par_t p = *this;
    p.scratch = &ws;
    return p;
  }
  cuda::workspace& workspace() const noexcept { return scratch != nullptr ? *scratch : default_workspace(); }
};

inline constexpr par_t par{};

}  // namespace gradcomp::cuda

template <>
inline constexpr bool gradcomp::is_execution_policy_v<gradcomp::cuda::par_t> = true;
