#pragma once
// Which SIMD instruction set the exec::par kernels use, chosen at run time.
//
// The kernels (cpu/simd/*-inl.hpp) are compiled once per instruction set ("target") with
// Highway's foreach_target: each copy lives in its own namespace (simd::N_AVX3,
// simd::N_AVX2, ...), compiled with that target's flags by pragmas, so no -march flag is
// needed and kernels for different targets never share a symbol. At run time dispatch()
// picks the best target that (a) this translation unit compiled, (b) the CPU supports
// (hwy::SupportedTargets(), from libhwy, which gradcomp::tbb links) and (c) is not above a
// cap set by limit_simd_target() or the environment variable GRADCOMP_SIMD_TARGET.
//
// Targets compiled: on x86, AVX-512 (AVX3), AVX2, SSE4 and the translation unit's own
// baseline. The baseline of a plain x86-64 build is Highway's one-lane emulation, slower than
// what the compiler makes of a plain loop, so there (and for scalable vectors, and without
// Highway or with GRADCOMP_NO_HIGHWAY defined) the kernels are portable scalar loops, named
// "scalar". A file built with -march=native compiles only its baseline (the best target it
// can assume), as Highway does.
//
// foreach_target.h can be used once per translation unit: a file that includes
// <gradcomp/cpu.hpp> must not also use it for its own Highway kernels (it gets an #error
// saying so). Such code can live in another file of the same program.
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "../error.hpp"
#include "abi.hpp"

#if !defined(GRADCOMP_NO_HIGHWAY) && __has_include(<hwy/highway.h>)
#define GRADCOMP_HAVE_HIGHWAY 1
#else
#define GRADCOMP_HAVE_HIGHWAY 0
#endif

#if GRADCOMP_HAVE_HIGHWAY

#ifdef HIGHWAY_HWY_FOREACH_TARGET_H_
#error "<gradcomp/cpu.hpp> compiles its kernels with hwy/foreach_target.h, which a translation unit can include only once: include gradcomp's CPU headers before, or instead of, your own use of foreach_target.h, or move that code to another file"
#endif
// Highway 1.0.3 leaves AVX3_DL out of the dynamic targets unless asked, and then stops with
// "best baseline should be included in dynamic targets" when the baseline has it
// (-march=native on Ice Lake, Zen 4 and later).
#if !defined(HWY_WANT_AVX3_DL) && defined(__AVX512VBMI2__)
#define HWY_WANT_AVX3_DL 1
#endif
#include <hwy/detect_targets.h>

// The targets gradcomp compiles kernels for: see the header comment. AVX3_DL adds nothing
// the kernels use (their compress-stores are 32- and 64-bit, which AVX3 has), so it is
// compiled only when it is the baseline.
#if HWY_ARCH_X86
#define GRADCOMP_SIMD_WANTED (HWY_AVX3 | HWY_AVX2 | HWY_SSE4 | HWY_STATIC_TARGET)
#else
#define GRADCOMP_SIMD_WANTED (HWY_TARGETS)
#endif
#define GRADCOMP_SIMD_COMPILED (HWY_TARGETS & (GRADCOMP_SIMD_WANTED))

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "gradcomp/cpu/simd/kernels-inl.hpp"
#include <hwy/foreach_target.h>  // re-includes the kernels once per target but the baseline
#include <hwy/highway.h>
#include "simd/kernels-inl.hpp"  // the baseline
#include <hwy/targets.h>

#else  // no Highway: one set of scalar kernels

#include "simd/kernels-inl.hpp"

#endif

namespace gradcomp::cpu::process {

/// The dispatch state, shared by every translation unit of the process whatever it compiled
/// (outside the ABI namespace: one cap for all).
struct simd_state {
  std::atomic<std::int64_t> supported{0};  // hwy::SupportedTargets(), once known
  std::atomic<std::int64_t> cap{0};        // targets better than this are not used (0: no cap)
  std::atomic<bool> ready{false};          // supported and the environment's cap are read
};
inline simd_state simd_global;

}  // namespace gradcomp::cpu::process

namespace gradcomp::cpu::inline GRADCOMP_CPU_ABI {

namespace detail {

using process::simd_global;
using process::simd_state;
/// The Highway target a target name (as limit_simd_target takes it) stands for; 0 for "best"
/// or "", -1 for an unknown name.
inline std::int64_t target_of_name(std::string_view name) {
  std::string lower(name);
  for (char& ch : lower) ch = static_cast<char>(ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch);
  if (lower.empty() || lower == "best") return 0;
#if GRADCOMP_HAVE_HIGHWAY
  if (lower == "avx3_dl") return HWY_AVX3_DL;
  if (lower == "avx3" || lower == "avx512") return HWY_AVX3;
  if (lower == "avx2") return HWY_AVX2;
  if (lower == "sse4") return HWY_SSE4;
  if (lower == "scalar") return HWY_EMU128 < HWY_SCALAR ? HWY_EMU128 : HWY_SCALAR;
#else
  if (lower == "scalar") return 1;
#endif
  return -1;
}

inline void read_simd_environment() {
  simd_state& s = simd_global;
  if (s.ready.load(std::memory_order_acquire)) return;
#if GRADCOMP_HAVE_HIGHWAY
  s.supported.store(hwy::SupportedTargets(), std::memory_order_relaxed);
#endif
  if (const char* env = std::getenv("GRADCOMP_SIMD_TARGET"); env != nullptr && s.cap.load() == 0) {
    const std::int64_t t = target_of_name(env);
    if (t < 0)
      gradcomp::detail::fail("cpu::simd", "GRADCOMP_SIMD_TARGET='", env,
                             "' is not a target (best, avx3_dl, avx3, avx2, sse4, scalar)");
    s.cap.store(t, std::memory_order_relaxed);
  }
  s.ready.store(true, std::memory_order_release);
}

/// The target dispatch uses among `compiled` (a mask of Highway targets): the best one that
/// the CPU supports and the cap allows; the baseline (lowest compiled, always runnable) if
/// none is.
inline std::int64_t chosen_target(std::int64_t compiled, std::int64_t baseline) {
#if GRADCOMP_HAVE_HIGHWAY
  read_simd_environment();
  const std::int64_t cap = simd_global.cap.load(std::memory_order_relaxed);
  // Highway orders targets by bit: a lower bit is a better target.
  const std::int64_t allowed = cap == 0 ? ~std::int64_t{0} : ~(cap - 1);
  const std::int64_t usable = compiled & simd_global.supported.load(std::memory_order_relaxed) & allowed;
  return usable == 0 ? baseline : (usable & -usable);
#else
  (void)compiled;
  return baseline;
#endif
}

inline const char* target_name(std::int64_t target) {
#if GRADCOMP_HAVE_HIGHWAY
  if (target == HWY_EMU128 || target == HWY_SCALAR) return "scalar";
  return hwy::TargetName(target);
#else
  (void)target;
  return "scalar";
#endif
}

}  // namespace detail

namespace simd {

#if GRADCOMP_HAVE_HIGHWAY
/// The targets this translation unit compiled kernels for, and its baseline.
inline constexpr std::int64_t compiled_targets = GRADCOMP_SIMD_COMPILED;
inline constexpr std::int64_t baseline_target = HWY_STATIC_TARGET;
#else
inline constexpr std::int64_t compiled_targets = 1;
inline constexpr std::int64_t baseline_target = 1;
#endif

/// Calls f(tag) with the kernel tag of the chosen target; kernels are found from the tag by
/// argument-dependent lookup (compact(tag, ...) runs N_AVX2::compact for N_AVX2::tag).
template <class F>
decltype(auto) dispatch(F&& f) {
#if GRADCOMP_HAVE_HIGHWAY
  [[maybe_unused]] const std::int64_t t = detail::chosen_target(compiled_targets, baseline_target);
#if HWY_ARCH_X86
#if (GRADCOMP_SIMD_COMPILED & HWY_AVX3_DL) && HWY_STATIC_TARGET != HWY_AVX3_DL
  if (t == HWY_AVX3_DL) return f(N_AVX3_DL::tag{});
#endif
#if (GRADCOMP_SIMD_COMPILED & HWY_AVX3) && HWY_STATIC_TARGET != HWY_AVX3
  if (t == HWY_AVX3) return f(N_AVX3::tag{});
#endif
#if (GRADCOMP_SIMD_COMPILED & HWY_AVX2) && HWY_STATIC_TARGET != HWY_AVX2
  if (t == HWY_AVX2) return f(N_AVX2::tag{});
#endif
#if (GRADCOMP_SIMD_COMPILED & HWY_SSE4) && HWY_STATIC_TARGET != HWY_SSE4
  if (t == HWY_SSE4) return f(N_SSE4::tag{});
#endif
#endif
  return f(HWY_STATIC_DISPATCH(tag){});
#else
  return f(scalar_only::tag{});
#endif
}

}  // namespace simd

/// The name of the instruction set exec::par kernels run on now, as dispatch() chooses it
/// for the translation unit that calls this: "AVX3" (AVX-512), "AVX3_DL", "AVX2", "SSE4",
/// "scalar", or another Highway target name on other architectures.
inline const char* simd_target() {
  return simd::dispatch([](auto tag) { return detail::target_name(decltype(tag)::target); });
}

/// The instruction sets compiled into the calling translation unit, best first.
inline std::vector<std::string> compiled_simd_targets() {
  std::vector<std::string> names;
  for (std::int64_t bits = simd::compiled_targets; bits != 0; bits &= bits - 1)
    names.emplace_back(detail::target_name(bits & -bits));
  return names;
}

/// Caps the instruction set of every later exec::par call in the process: kernels use the
/// best target compiled in and supported by the CPU that is no better than `name` ("avx3_dl",
/// "avx3", "avx2", "sse4", "scalar"; "best" or "" removes the cap). A translation unit with
/// no target at or below the cap uses its baseline (simd_target() says which). Tests use it
/// to run every target against exec::seq; the environment variable GRADCOMP_SIMD_TARGET
/// sets the same cap at start-up. Not meant to be changed while calls run on other threads
/// (they would finish on the target they started with, which gives the same results).
inline void limit_simd_target(std::string_view name) {
  const std::int64_t t = detail::target_of_name(name);
  if (t < 0)
    gradcomp::detail::fail("cpu::limit_simd_target", "'", name,
                           "' is not a target (best, avx3_dl, avx3, avx2, sse4, scalar)");
  detail::read_simd_environment();
  detail::simd_global.cap.store(t, std::memory_order_relaxed);
}

}  // namespace gradcomp::cpu::inline GRADCOMP_CPU_ABI
