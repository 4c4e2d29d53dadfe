// random_k and unbiased_random_k on exec::par: the same indices and values as exec::seq for
// the same seed and step, the same step advance, and the same errors.
#include "par_compare.hpp"

#include <cstdint>
#include <limits>
#include <span>

using namespace gradcomp_par_test;

namespace {

template <class T, class Index, class C>
void check_random_k(const std::vector<T>& x, const C& c) {
  constexpr bool scaled = std::is_same_v<C, gc::unbiased_random_k>;
  C seq_c = c;
  gc::seeded_sparse_vector<T, Index> ref1, ref2;
  gc::compress(gc::exec::seq, seq_c, x, ref1);
  gc::compress(gc::exec::seq, seq_c, x, ref2);
  for_each_thread_count([&] {
    for (const auto& policy : policies()) {
      CAPTURE(policy_name(policy));
      C par_c = c;
      gc::seeded_sparse_vector<T, Index> got;
      got.dim = 1;
      got.indices.assign(x.size() / 2 + 3, 1);  // stale: must be replaced
      got.values.assign(x.size() / 3 + 1, T(5));
      gc::compress(policy, par_c, x, got);
      check_same_payload(ref1, got, /*computed=*/scaled);  // unscaled values are copies of x
      gc::compress(policy, par_c, x, got);                 // the next step keeps other indices
      check_same_payload(ref2, got, scaled);
      CHECK(par_c.step == seq_c.step);
    }
  });
}

/// Every k for one input kind (the indices do not depend on x), a typical k for the others.
std::vector<std::size_t> ks(std::size_t d, bool all) {
  if (!all) return {d / 100 + 1};
  return {1, 2, 17, d / 100 + 1, d / 3 + 1, d > 1 ? d - 1 : 1, d > 0 ? d : 1, d + 5};
}

}  // namespace

TEST_CASE_TEMPLATE("par random_k: bit-identical to seq on every input kind, size and k", T, GRADCOMP_PAR_FLOATS) {
  for (const gt::input_kind kind : gt::all_input_kinds) {
    for (const std::size_t d : par_sizes()) {
      const std::string kind_name = gt::to_string(kind);
      CAPTURE(kind_name);
      CAPTURE(d);
      // The largest size (16 chunks) for one kind: the draws do not depend on the values.
      if (d >= (std::size_t{1} << 20) && kind != gt::input_kind::normal) continue;
      std::vector<T> x = gt::make_input<T>(kind, d, d + 9);
      if (d % 3 == 0) place_specials(x, d, 1 + d / 100);
      for (const std::size_t k : ks(d, kind == gt::input_kind::normal)) {
        CAPTURE(k);
        check_random_k<T, std::uint32_t>(x, gc::random_k{.k = k, .seed = 7 + d, .step = 2});
        check_random_k<T, std::uint32_t>(x, gc::unbiased_random_k{.k = k, .seed = 8 + d, .step = 0});
      }
      if (d < 70000) {  // 64-bit indices
        check_random_k<T, std::uint64_t>(x, gc::random_k{.k = d / 4 + 1, .seed = 1});
        check_random_k<T, std::uint64_t>(x, gc::unbiased_random_k{.k = d / 4 + 1, .seed = 1});
      }
    }
  }
}

TEST_CASE_TEMPLATE("par random_k: errors match seq, out and step unchanged", T, GRADCOMP_PAR_FLOATS) {
  for (const std::size_t d : {std::size_t{10}, std::size_t{70000}}) {
    CAPTURE(d);
    const std::vector<T> x = gt::make_input<T>(gt::input_kind::normal, d, 3);
    for (const auto& policy : policies()) {
      CAPTURE(policy_name(policy));
      {
        gc::seeded_sparse_vector<T> before;
        gc::random_k warm{.k = 3};
        gc::compress(gc::exec::seq, warm, x, before);
        check_same_rejection(policy, gc::random_k{.k = 0, .seed = 2, .step = 6}, std::span<const T>(x), before);
        check_same_rejection(policy, gc::unbiased_random_k{.k = 0, .step = 6}, std::span<const T>(x), before);
      }
      if (d > 65536) {  // an index type too small for d
        gc::seeded_sparse_vector<T, std::uint16_t> seq_out, par_out;
        gc::random_k seq_c{.k = 5, .step = 6}, par_c = seq_c;
        check_same_error([&] { gc::compress(gc::exec::seq, seq_c, x, seq_out); },
                         [&] { gc::compress(policy, par_c, x, par_out); });
        CHECK(par_out.values.empty());
        CHECK(par_c.step == 6);
      }
    }
  }
}

TEST_CASE_TEMPLATE("par error_feedback<random_k>: bit-identical to seq over several steps", T, GRADCOMP_PAR_FLOATS) {
  for_each_thread_count([] {
    for (const std::size_t d : feedback_sizes()) {
      for (const auto& policy : policies()) {
        CAPTURE(d);
        CAPTURE(policy_name(policy));
        check_feedback_steps<T>(gc::random_k{.k = d / 10 + 1, .seed = 3}, d, policy);
        check_feedback_steps<T>(gc::unbiased_random_k{.k = d / 3 + 1, .seed = 4, .step = 7}, d, policy);
        check_feedback_steps<T>(gc::random_k{.k = d + 1, .seed = 5}, d, policy);
      }
    }
  });
}
