// The error-feedback step may write the new residual over the old one (e_new aliasing e, what
// an error feedback without undo does): every exec::par path reads e[i] before it writes
// e_new[i], so the in-place step gives the bits of the out-of-place reference.
#include "par_compare.hpp"

#include <cstddef>
#include <span>
#include <vector>

using namespace gradcomp_par_test;

namespace {

template <class C>
void check_in_place(C c, const std::vector<float>& e0, const std::vector<float>& g, float scale) {
  const std::span<const float> gs(g);
  // The reference, out of place.
  std::vector<float> ref_e(e0.size());
  gc::payload_t<C, float> ref;
  const double ref_norm = gc::backend::run<gc::backend::feedback_step_hook>(
      gc::exec::seq, c, std::span<const float>(e0), gs, scale, std::span<float>(ref_e), ref);
  for_each_thread_count([&] {
    for (const auto& policy : policies()) {
      CAPTURE(policy_name(policy));
      std::vector<float> e = e0;
      gc::payload_t<C, float> got;
      const double norm = gc::backend::run<gc::backend::feedback_step_hook>(
          policy, c, std::span<const float>(e), gs, scale, std::span<float>(e), got);
      CHECK(got == ref);
      CHECK(gt::same_result(norm, ref_norm));
      CHECK(gt::same_bits(std::span<const float>(e), std::span<const float>(ref_e)));
    }
  });
}

}  // namespace

TEST_CASE("par feedback: the fused steps and the composed step are exact in place") {
  for (const std::size_t d : {std::size_t{1000}, std::size_t{65537}, std::size_t{3 * 65536 + 4099}}) {
    CAPTURE(d);
    const std::vector<float> g = gt::make_input<float>(gt::input_kind::heavy_tailed, d, 7);
    std::vector<float> e0 = gt::make_input<float>(gt::input_kind::normal, d, 8);
    for (float& v : e0) v *= 0.01f;
    check_in_place(gc::hard_threshold{.lambda = 0.05}, e0, g, 0.125f);
    check_in_place(gc::top_k{.k = d / 100 + 1}, e0, g, 0.125f);      // sampled path
    check_in_place(gc::top_k{.k = d - 3}, e0, g, 1.0f);                // exact fallback
    check_in_place(gc::scaled_sign{}, e0, g, 0.5f);                    // composed from the pieces
  }
}
