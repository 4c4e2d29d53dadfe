#pragma once
// What every exec::par test needs: the policies and thread counts to run under, sizes at
// the chunk and vector boundaries, and inputs with NaN and Inf placed.
#include <doctest/doctest.h>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <random>
#include <span>
#include <string>
#include <vector>

#include <tbb/global_control.h>

#include <gradcomp/cpu.hpp>

#include "../unit/test_support.hpp"

namespace gradcomp_par_test {

namespace gc = gradcomp;
namespace gt = gradcomp_test;

// The sanitized build (ASan + UBSan, about 4x slower) looks for memory errors and races at
// chunk and vector tails; the plain builds check every result. It skips what adds run time
// but nothing for a sanitizer to see: one thread (no concurrency) and the 2^20-element size
// (3 * 65536 + 4099 already spans four chunks with ragged tails).
#ifdef GRADCOMP_PAR_TESTS_SANITIZED
inline constexpr bool sanitized_build = true;
#else
inline constexpr bool sanitized_build = false;
#endif

// The value types of the typed test cases. The sanitized build takes float only: its kernels
// run the same tail and chunk code as double's (one template), with twice the lanes, and
// double's bits are checked by the plain builds; instantiating both made this build the
// costliest part of CI (tests/CMakeLists.txt). GRADCOMP_PAR_TESTS_FULL brings double back.
#if defined(GRADCOMP_PAR_TESTS_SANITIZED) && !defined(GRADCOMP_PAR_TESTS_FULL)
#define GRADCOMP_PAR_FLOATS float
#else
#define GRADCOMP_PAR_FLOATS float, double
#endif

/// The target the run was asked to use (--simd-target=, see main.cpp); empty if none.
inline std::string& requested_target() {
  static std::string name;
  return name;
}

/// The thread counts to run under: 1, 2 and more threads than this machine's cores, unless
/// --thread-counts= (main.cpp) names others. Chunks have fixed sizes (cpu/tuning.hpp), so a
/// SIMD target's kernels see the same pieces under every thread count; tests/CMakeLists.txt
/// therefore runs every count on one target and one count on the others.
inline std::vector<int>& thread_counts() {
  static std::vector<int> counts{1, 2, 8};
  return counts;
}

/// exec::par forced onto the workers even for tiny inputs, as shipped, and forced inline (last:
/// policies() drops it after the first thread count).
inline const gc::exec::par_t par_policies[] = {gc::exec::par.with_min_parallel_size(0), gc::exec::par,
                                               gc::exec::par.with_min_parallel_size(SIZE_MAX)};

inline std::string policy_name(const gc::exec::par_t& p) {
  return "par(min_parallel_size=" + std::to_string(p.min_parallel_size) + ")";
}

/// The largest size par_sizes() gives: --max-size= (main.cpp) lowers it (tests/CMakeLists.txt).
inline std::size_t& max_size() {
  static std::size_t largest = SIZE_MAX;
  return largest;
}

/// Sizes around SIMD widths (up to 16 lanes), reduction blocks (4096) and chunks (65536),
/// none above max_size(). 2^20 (16 whole chunks) adds no piece for a kernel to see that
/// 3 * 65536 + 4099 (whole chunks and a ragged tail) does not: it checks the merging of many
/// chunks, which is the same template for every target.
inline const std::vector<std::size_t>& par_sizes() {
  static const std::vector<std::size_t> sizes = [] {
    std::vector<std::size_t> s(std::begin(gt::edge_sizes), std::end(gt::edge_sizes));
    for (std::size_t n : {15, 16, 17, 31, 32, 33, 8191, 8192, 8193, 16383, 16384, 16385, 65535, 65536, 65537,
                          3 * 65536 + 4099})
      s.push_back(n);
    if (!sanitized_build) s.push_back(std::size_t{1} << 20);
    std::erase_if(s, [](std::size_t n) { return n > max_size(); });
    return s;
  }();
  return sizes;
}

/// Sprinkles NaN (both signs, with payloads), +-Inf and -0 at random positions of x.
template <class T>
void place_specials(std::vector<T>& x, std::uint64_t seed, std::size_t count) {
  if (x.empty()) return;
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<std::size_t> pos(0, x.size() - 1);
  const T specials[] = {std::numeric_limits<T>::quiet_NaN(), -std::numeric_limits<T>::quiet_NaN(),
                        std::numeric_limits<T>::infinity(), -std::numeric_limits<T>::infinity(), -T(0)};
  for (std::size_t j = 0; j < count; ++j) x[pos(rng)] = specials[j % 5];
}

/// How many thread counts for_each_thread_count has run body() under so far (0 outside it).
inline int& thread_count_pass() {
  static int pass = 0;
  return pass;
}

/// Runs body() under each thread count.
template <class F>
void for_each_thread_count(F&& body) {
  struct reset {
    ~reset() { thread_count_pass() = 0; }
  } at_exit;
  for (const int threads : thread_counts()) {
    if (sanitized_build && threads == 1) continue;
    tbb::global_control limit(tbb::global_control::max_allowed_parallelism, static_cast<std::size_t>(threads));
    CAPTURE(threads);
    body();
    ++thread_count_pass();
  }
}

/// The policies to run now: all of par_policies on for_each_thread_count's first pass (and
/// outside it); on later passes only the two that reach the workers. The inline policy never
/// wakes a worker, so another thread count cannot change what it computes, and running it
/// again would only repeat its first run.
inline std::span<const gc::exec::par_t> policies() {
  const std::span<const gc::exec::par_t> all(par_policies);
  return thread_count_pass() == 0 ? all : all.first(2);
}

}  // namespace gradcomp_par_test
