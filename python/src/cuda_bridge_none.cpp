// cuda_bridge.hpp for a module built without the CUDA back end: nothing is available, and
// asking for device error feedback says why.
#include <stdexcept>

#include "cuda_bridge.hpp"

namespace gradcomp::python::cuda_bridge {

bool built() { return false; }
int device_count() { return 0; }

template <class C>
  requires supported_v<C>
std::unique_ptr<device_feedback> make_device_feedback(const C&, std::size_t) {
  throw std::runtime_error(
      "gradcomp: this build has no CUDA back end (configure with -DGRADCOMP_BUILD_CUDA=ON where nvcc is installed)");
}

GRADCOMP_CUDA_BRIDGE_COMPRESSORS(GRADCOMP_CUDA_BRIDGE_INSTANTIATE)

}  // namespace gradcomp::python::cuda_bridge
