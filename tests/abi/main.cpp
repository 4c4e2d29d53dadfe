// Two translation units built with different -march flags in one program: each runs its own
// kernels (different back-end namespaces, different compiled targets) and both give the
// exec::seq bits.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <gradcomp/gradcomp.hpp>

#include "../unit/test_support.hpp"
#include "twin.hpp"

TEST_CASE("abi: files built with and without -march=native keep their own exec::par back end") {
  namespace gc = gradcomp;
  const std::vector<float> x = gradcomp_test::make_input<float>(gradcomp_test::input_kind::normal, 1'000'003, 5);
  gc::sparse_vector<float> ref;
  gc::compress(gc::exec::seq, gc::top_k{.k = 2000}, x, ref);
  const twin_report native = run_native(x, 2000);
  const twin_report portable = run_portable(x, 2000);
  MESSAGE("native: namespace " << native.abi << ", runs " << native.chosen << "; portable: namespace "
                               << portable.abi << ", runs " << portable.chosen);
  CHECK(native.abi != portable.abi);
  CHECK(portable.abi == "abi_base");
  CHECK(native.compiled.size() == 1);    // -march=native compiles its baseline only
  CHECK(portable.compiled.size() >= 2);  // the portable file compiles several targets
  for (const twin_report* r : {&native, &portable}) {
    CHECK(r->indices == ref.indices);
    CHECK(r->values == ref.values);
    CHECK(r->norm == gc::detail::squared_norm(std::span<const float>(x)));
  }
}
