// The CUDA side of cuda_bridge.hpp: gc::cuda::error_feedback<C, float> behind device_feedback.
#include <gradcomp/cuda.cuh>

#include <cstring>
#include <span>

#include "cuda_bridge.hpp"

namespace gradcomp::python::cuda_bridge {

namespace {

cudaStream_t as_stream(std::uintptr_t s) { return reinterpret_cast<cudaStream_t>(s); }

template <class C>
class device_feedback_impl final : public device_feedback {
 public:
  device_feedback_impl(const C& c, std::size_t dim) : ef_(c, dim) {}

  std::vector<std::byte> compress(std::uintptr_t g, gradient_type t, float scale, std::uintptr_t stream) override {
    const auto policy = gradcomp::cuda::par.on(as_stream(stream));
    switch (t) {
      case gradient_type::float32:
        ef_.compress(policy, std::span<const float>(reinterpret_cast<const float*>(g), dim()), scale);
        break;
      case gradient_type::bfloat16:
        ef_.compress(policy, std::span<const bfloat16>(reinterpret_cast<const bfloat16*>(g), dim()), scale);
        break;
      case gradient_type::float16:
        ef_.compress(policy, std::span<const float16>(reinterpret_cast<const float16*>(g), dim()), scale);
        break;
    }
    return ef_.message().encode(policy.stream);
  }
  void undo() override { ef_.undo(); }
  bool can_undo() const override { return ef_.can_undo(); }
  std::size_t dim() const override { return ef_.dim(); }
  feedback_metrics metrics() const override { return ef_.metrics(); }
  std::uint64_t step() const override {
    if constexpr (seeded_compressor<C>)
      return ef_.base().step;
    else
      return 0;
  }
  void copy_error(std::uintptr_t dst, std::uintptr_t stream) const override {
    if (dim() == 0) return;
    gradcomp::cuda::detail::check(cudaMemcpyAsync(reinterpret_cast<float*>(dst), ef_.error().data(),
                                                  dim() * sizeof(float), cudaMemcpyDeviceToDevice, as_stream(stream)),
                                  "python bridge", "cudaMemcpyAsync");
    gradcomp::cuda::detail::check(cudaStreamSynchronize(as_stream(stream)), "python bridge", "cudaStreamSynchronize");
  }
  void assign_error(std::uintptr_t src, std::uintptr_t stream) override {
    ef_.assign_error(gradcomp::cuda::par.on(as_stream(stream)),
                     std::span<const float>(reinterpret_cast<const float*>(src), dim()));
  }

 private:
  gradcomp::cuda::error_feedback<C, float> ef_;
};

}  // namespace

bool built() { return true; }

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n;
}

template <class C>
  requires supported_v<C>
std::unique_ptr<device_feedback> make_device_feedback(const C& c, std::size_t dim) {
  return std::make_unique<device_feedback_impl<C>>(c, dim);
}

GRADCOMP_CUDA_BRIDGE_COMPRESSORS(GRADCOMP_CUDA_BRIDGE_INSTANTIATE)

}  // namespace gradcomp::python::cuda_bridge
