// The portable half of the twin test (see twin.hpp).
#include <span>

#include <gradcomp/cpu.hpp>

#include "twin.hpp"

#define GRADCOMP_STRINGIFY_(x) #x
#define GRADCOMP_STRINGIFY(x) GRADCOMP_STRINGIFY_(x)

twin_report run_portable(const std::vector<float>& x, std::size_t k) {
  namespace gc = gradcomp;
  twin_report r;
  r.abi = GRADCOMP_STRINGIFY(GRADCOMP_CPU_ABI);
  r.compiled = gc::cpu::compiled_simd_targets();
  r.chosen = gc::cpu::simd_target();
  gc::sparse_vector<float> m;
  gc::compress(gc::exec::par, gc::top_k{.k = k}, x, m);
  r.indices = m.indices;
  r.values = m.values;
  r.norm = gc::cpu::detail::squared_norm(gc::exec::par, std::span<const float>(x));
  return r;
}
