// The run really uses the instruction set it was asked for (so each ctest variant of a par
// test covers the SIMD path it claims to), and the dispatch API behaves.
#include "par_support.hpp"

#include <algorithm>
#include <cctype>
#include <string>
#include <string_view>

#include <hwy/targets.h>

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

TEST_CASE("par: runs on the requested SIMD target") {
  namespace gc = gradcomp;
  const std::string requested = gradcomp_par_test::requested_target();
  const std::string chosen = lower(gc::cpu::simd_target());
  MESSAGE("exec::par SIMD target: " << chosen << " (requested: " << (requested.empty() ? "none" : requested) << ")");
  const auto compiled = gc::cpu::compiled_simd_targets();
  REQUIRE(!compiled.empty());
  if (requested == "native") {
    // Built with -march=native: only the baseline is compiled, and it is what runs.
    CHECK(compiled.size() == 1);
    CHECK(chosen == lower(compiled.front()));
  } else if (requested == "best" || requested.empty()) {
    // The best compiled target the CPU supports (compiled is best first; scalar always runs).
    std::string expected = "scalar";
    for (const std::string& name : compiled) {
      if (lower(name) == "scalar" || (hwy::SupportedTargets() & gc::cpu::detail::target_of_name(lower(name))) != 0) {
        expected = lower(name);
        break;
      }
    }
    CHECK(chosen == expected);
  } else {
    const bool compiled_in = std::any_of(compiled.begin(), compiled.end(),
                                         [&](const std::string& n) { return lower(n) == requested; });
    REQUIRE(compiled_in);
    const std::int64_t bit = gc::cpu::detail::target_of_name(requested);
    if ((hwy::SupportedTargets() & bit) != 0 || requested == "scalar") {
      CHECK(chosen == requested);
    } else {
      MESSAGE("this CPU lacks " << requested << "; the run uses " << chosen);
      CHECK(gc::cpu::detail::target_of_name(chosen) > bit);  // a lower target
    }
  }
}

TEST_CASE("par: limit_simd_target rejects unknown names and keeps the cap") {
  namespace gc = gradcomp;
  const std::string before = gc::cpu::simd_target();
  CHECK_THROWS_WITH_AS(gc::cpu::limit_simd_target("avx9000"),
                       doctest::Contains("'avx9000' is not a target (best, avx3_dl, avx3, avx2, sse4, scalar)"),
                       gc::error);
  CHECK(std::string(gc::cpu::simd_target()) == before);
}
