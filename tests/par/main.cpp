// The exec::par test runner: doctest's main, plus --simd-target=NAME, which caps the SIMD
// target for the whole run (gc::cpu::limit_simd_target) so that ctest can run every test
// once per target. NAME "native" means the binary was built with -march=native and only its
// baseline is compiled in; "best" leaves the choice to the CPU. --thread-counts=1,2,8 replaces
// the thread counts every test runs under, and --max-size=N leaves out the sizes above N
// (par_support.hpp).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <gradcomp/cpu.hpp>

#include "par_support.hpp"

namespace {

/// "1,2,8" as {1, 2, 8}; anything else (empty, zero, not a number) ends the run with a message.
std::vector<int> parse_thread_counts(const char* text) {
  std::vector<int> counts;
  const char* p = text;
  while (true) {
    char* end = nullptr;
    const long n = std::strtol(p, &end, 10);
    if (end == p || n < 1 || n > 1024 || (*end != ',' && *end != '\0')) {
      std::fprintf(stderr, "--thread-counts=%s: expected a comma-separated list of thread counts from 1 to 1024\n", text);
      std::exit(2);
    }
    counts.push_back(static_cast<int>(n));
    if (*end == '\0') return counts;
    p = end + 1;
  }
}

/// A size for --max-size=; anything but a decimal number ends the run with a message.
std::size_t parse_size(const char* text) {
  char* end = nullptr;
  const unsigned long long n = std::strtoull(text, &end, 10);
  if (end == text || *end != '\0' || *text == '-') {
    std::fprintf(stderr, "--max-size=%s: expected a number of elements\n", text);
    std::exit(2);
  }
  return static_cast<std::size_t>(n);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    constexpr const char* target_flag = "--simd-target=";
    constexpr const char* threads_flag = "--thread-counts=";
    constexpr const char* size_flag = "--max-size=";
    if (i > 0 && std::strncmp(argv[i], target_flag, std::strlen(target_flag)) == 0) {
      gradcomp_par_test::requested_target() = argv[i] + std::strlen(target_flag);
      continue;
    }
    if (i > 0 && std::strncmp(argv[i], size_flag, std::strlen(size_flag)) == 0) {
      gradcomp_par_test::max_size() = parse_size(argv[i] + std::strlen(size_flag));
      continue;
    }
    if (i > 0 && std::strncmp(argv[i], threads_flag, std::strlen(threads_flag)) == 0) {
      gradcomp_par_test::thread_counts() = parse_thread_counts(argv[i] + std::strlen(threads_flag));
      continue;
    }
    rest.push_back(argv[i]);
  }
  const std::string& target = gradcomp_par_test::requested_target();
  if (!target.empty() && target != "native") gradcomp::cpu::limit_simd_target(target);
  doctest::Context context(static_cast<int>(rest.size()), rest.data());
  return context.run();
}
