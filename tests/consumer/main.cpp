#include <gradcomp/gradcomp.hpp>
#ifdef CONSUMER_HAS_PAR
#include <gradcomp/cpu.hpp>
#endif
#include <cstdio>
#include <span>
#include <vector>
namespace gc = gradcomp;
int main() {
  std::vector<float> g{0.5f, -2.0f, 0.25f, 3.0f, -0.125f};
  gc::sparse_vector<float> msg;
  gc::compress(gc::exec::seq, gc::top_k{.k = 2}, std::span<const float>(g), msg);
  gc::error_feedback ef{gc::hard_threshold{.lambda = 1.0f}, g.size()};
  const auto& m = ef.compress(gc::exec::seq, std::span<const float>(g), 1.0f);
  bool ok = msg.indices.size() == 2 && m.indices.size() == 2;
  const char* backend = "seq";
#ifdef CONSUMER_HAS_PAR
  gc::sparse_vector<float> par_msg;
  gc::compress(gc::exec::par, gc::top_k{.k = 2}, std::span<const float>(g), par_msg);
  ok = ok && par_msg == msg;
  backend = gc::cpu::simd_target();
#endif
  std::printf("gradcomp %d.%d.%d: top_k kept %zu, hard_threshold kept %zu, exec::par: %s\n", GRADCOMP_VERSION_MAJOR,
              GRADCOMP_VERSION_MINOR, GRADCOMP_VERSION_PATCH, msg.indices.size(), m.indices.size(), backend);
  return ok ? 0 : 1;
}
