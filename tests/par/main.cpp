// The exec::par test runner: doctest's main, plus --simd-target=NAME, which caps the SIMD
// target for the whole run (gc::cpu::limit_simd_target) so that ctest can run every test
// once per target. NAME "native" means the binary was built with -march=native and only its
// baseline is compiled in; "best" leaves the choice to the CPU.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstring>
#include <string>
#include <vector>

#include <gradcomp/cpu.hpp>

#include "par_support.hpp"

int main(int argc, char** argv) {
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    constexpr const char* flag = "--simd-target=";
    if (i > 0 && std::strncmp(argv[i], flag, std::strlen(flag)) == 0) {
      gradcomp_par_test::requested_target() = argv[i] + std::strlen(flag);
      continue;
    }
    rest.push_back(argv[i]);
  }
  const std::string& target = gradcomp_par_test::requested_target();
  if (!target.empty() && target != "native") gradcomp::cpu::limit_simd_target(target);
  doctest::Context context(static_cast<int>(rest.size()), rest.data());
  return context.run();
}
