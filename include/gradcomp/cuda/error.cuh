#pragma once
// What the CUDA back end throws: gc::error for what a caller got wrong (as everywhere in
// gradcomp), gc::cuda::runtime_error for what the CUDA runtime reports (out of memory, a
// failed launch, no device), with the call that failed and CUDA's own name for the error.
#include <cuda_runtime_api.h>

#include <stdexcept>
#include <string>

namespace gradcomp::cuda {

class runtime_error : public std::runtime_error {
 public:
  runtime_error(const std::string& message, cudaError_t code) : std::runtime_error(message), code_(code) {}
  cudaError_t code() const noexcept { return code_; }

 private:
  cudaError_t code_;
};

namespace detail {

/// Throws runtime_error("gradcomp::cuda::<where>: <what> failed: <name> (<description>)").
inline void check(cudaError_t status, const char* where, const char* what) {
  if (status == cudaSuccess) return;
  (void)cudaGetLastError();  // clear a sticky-free error so the next call starts clean
  throw runtime_error(std::string("gradcomp::cuda::") + where + ": " + what + " failed: " + cudaGetErrorName(status) +
                          " (" + cudaGetErrorString(status) + ")",
                      status);
}

/// After a kernel launch: a bad configuration is reported at once (without synchronising).
inline void check_launch(const char* where, const char* kernel) { check(cudaGetLastError(), where, kernel); }

}  // namespace detail

}  // namespace gradcomp::cuda
