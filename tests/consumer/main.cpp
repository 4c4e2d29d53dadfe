#include <gradcomp/gradcomp.hpp>
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
  std::printf("gradcomp %d.%d.%d: top_k kept %zu, hard_threshold kept %zu\n", GRADCOMP_VERSION_MAJOR, GRADCOMP_VERSION_MINOR, GRADCOMP_VERSION_PATCH, msg.indices.size(), m.indices.size());
  return (msg.indices.size() == 2 && m.indices.size() == 2) ? 0 : 1;
}
