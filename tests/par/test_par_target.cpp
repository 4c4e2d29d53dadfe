// The build really uses the instruction set its flags ask for (so each par test binary
// covers the SIMD path it claims to).
#include "par_support.hpp"

#include <string>
#include <string_view>

TEST_CASE("par: compiled for the expected SIMD target") {
#ifdef GRADCOMP_EXPECT_SIMD
  CHECK(std::string_view(gradcomp::cpu::simd_target()) == std::string_view(GRADCOMP_EXPECT_SIMD));
#endif
#ifdef GRADCOMP_EXPECT_SIMD_PREFIX
  CHECK(std::string_view(gradcomp::cpu::simd_target()).starts_with(GRADCOMP_EXPECT_SIMD_PREFIX));
#endif
  MESSAGE("exec::par SIMD target: " << std::string(gradcomp::cpu::simd_target()));
}
