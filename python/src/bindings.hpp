#pragma once
// Shared pieces of the gradcomp Python module: the policy argument, the payload and
// compressor binders, and the type-erased ErrorFeedback. Each bind_* function lives in its
// own translation unit, so the module's kernels compile in parallel.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>

#include <gradcomp/cpu.hpp>
#include <gradcomp/algorithms/summable.hpp>
#include <gradcomp/gradcomp.hpp>

#include "tensor.hpp"

namespace gradcomp::python {

namespace py = pybind11;

/// The execution policy a call runs on: "par" (exec::par, the default) or "seq" (exec::seq,
/// the sequential reference; bit-identical results).
enum class policy_choice { seq, par };
policy_choice parse_policy(std::string_view name);

template <class F>
decltype(auto) with_policy(policy_choice p, F&& f) {
  if (p == policy_choice::seq) return std::forward<F>(f)(exec::seq);
  return std::forward<F>(f)(exec::par);
}

/// A float32 vector as a new NumPy array (a copy).
template <class T>
py::array_t<T> to_numpy(std::span<const T> v) {
  py::array_t<T> a(static_cast<py::ssize_t>(v.size()));
  std::copy(v.begin(), v.end(), a.mutable_data());
  return a;
}

/// An error feedback's metrics as the dict both ErrorFeedback classes give.
py::dict metrics_dict(const feedback_metrics& m);

/// The error-feedback adaptor behind gradcomp.ErrorFeedback, for any compressor.
class feedback_base {
 public:
  virtual ~feedback_base() = default;
  virtual py::object compress(py::handle g, double scale, policy_choice p) = 0;
  virtual py::array_t<float> error() const = 0;
  virtual void assign_error(py::handle e) = 0;
  virtual void undo() = 0;
  virtual bool can_undo() const = 0;
  virtual void reset() = 0;
  virtual void clear_error() = 0;
  virtual std::size_t dim() const = 0;
  virtual feedback_storage storage() const = 0;
  virtual const feedback_metrics& metrics() const = 0;
  virtual double average_density() const = 0;
  virtual py::object compressor() const = 0;
  virtual py::object message() const = 0;
  virtual std::string compressor_name() const = 0;
  virtual py::bytes save() const = 0;
  virtual void load(std::string_view bytes) = 0;
};

using feedback_factory = std::function<std::unique_ptr<feedback_base>(py::handle, std::size_t, feedback_storage)>;
/// Python compressor type -> how to wrap one in error feedback (filled by bind_compressor).
std::unordered_map<PyObject*, feedback_factory>& feedback_factories();

namespace cuda_bridge {
class device_feedback;
}
using cuda_feedback_factory = std::function<std::unique_ptr<cuda_bridge::device_feedback>(py::handle, std::size_t)>;
/// Python compressor type -> its device error feedback (filled by bind_compressor for the
/// compressors with a CUDA kernel).
std::unordered_map<PyObject*, cuda_feedback_factory>& cuda_feedback_factories();

void bind_payloads(py::module_& m);
void bind_sparsifiers(py::module_& m);  // identity, hard_threshold, top_k, random_k, unbiased_random_k
void bind_quantizers(py::module_& m);   // scaled_sign, blockwise_sign, onebit, sign, qsgd, terngrad, dithering, maxmin_quantizer, casts, natural_compression, grid_rounding
void bind_feedback(py::module_& m);
void bind_cuda(py::module_& m);  // CudaErrorFeedback, cuda_built, cuda_device_count

}  // namespace gradcomp::python
