// Error feedback on 16-bit gradients on exec::par: the widening runs in parallel, then the
// float32 kernels; every step must give exec::seq's bits (message, residual, ||e||^2).
#include "par_compare.hpp"

#include <gradcomp/float16.hpp>

#include <cstdint>
#include <span>

using namespace gradcomp_par_test;

namespace {

template <gc::half_precision H, class C>
void check_half_par(const C& c, std::size_t d) {
  std::vector<float> base = gt::make_input<float>(gt::input_kind::heavy_tailed, d, d + 1);
  for_each_thread_count([&] {
    for (const auto& policy : policies()) {
      CAPTURE(policy_name(policy));
      for (const auto storage : {gc::feedback_storage::double_buffered, gc::feedback_storage::in_place}) {
        gc::error_feedback<C, float> seq_ef(c, d, storage), par_ef(c, d, storage);
        for (int step = 0; step < 2; ++step) {
          std::vector<H> g(d);
          for (std::size_t i = 0; i < d; ++i) g[i] = gc::to_half<H>(base[(i + 31 * step) % d] * 0.01f);
          const auto& a = seq_ef.compress(gc::exec::seq, std::span<const H>(g), 0.5f);
          const auto& b = par_ef.compress(policy, std::span<const H>(g), 0.5f);
          REQUIRE(gc::encode(a) == gc::encode(b));
          REQUIRE(gt::same_bits(std::vector<float>(seq_ef.error().begin(), seq_ef.error().end()),
                                std::vector<float>(par_ef.error().begin(), par_ef.error().end())));
          REQUIRE(seq_ef.metrics().total_error == par_ef.metrics().total_error);
        }
      }
    }
  });
}

}  // namespace

TEST_CASE_TEMPLATE("par error_feedback: 16-bit gradients give exec::seq's bits", H, gc::bfloat16, gc::float16) {
  static_assert(gc::backend::has_kernel<gc::backend::widen_hook, gc::exec::par_t, std::span<const H>, std::span<float>>);
  for (const std::size_t d : {std::size_t{0}, std::size_t{5}, std::size_t{4096}, std::size_t{(1 << 17) + 3},
                              std::size_t{3 << 17}}) {
    CAPTURE(d);
    check_half_par<H>(gc::top_k{.k = d / 50 + 1}, d);
    check_half_par<H>(gc::hard_threshold{.lambda = 0.02}, d);
    check_half_par<H>(gc::scaled_sign{}, d);
  }
}
