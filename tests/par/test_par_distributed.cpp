// The distributed schemes with their local work on exec::par: every scenario gives the
// exec::seq result bit for bit (the schemes reach vectors only through the policy).
#include "par_support.hpp"

#include <string>

#include "../distributed_scenarios.hpp"

namespace gc = gradcomp;

TEST_CASE("par distributed schemes: every scenario matches exec::seq bit for bit") {
  namespace gt = gradcomp_test;
  for (const std::string& name : gt::scenario_names()) {
    CAPTURE(name);
    const auto ref = gt::run_scenario_locally(name, 3);
    const auto got = gt::run_scenario_locally(name, 3, gc::exec::par.with_min_parallel_size(0));
    for (std::size_t r = 0; r < ref.size(); ++r) {
      CHECK(gt::same_bits(got[r].x, ref[r].x));
      CHECK(gt::same_bits(got[r].worker_error, ref[r].worker_error));
      CHECK(gt::same_bits(got[r].server_error, ref[r].server_error));
      CHECK(got[r].per_step == ref[r].per_step);
    }
  }
}
