#pragma once
// The inline namespace the CPU back end lives in (gradcomp::cpu and exec::par_t), named after
// the instruction set the translation unit is compiled for. A program may build one file with
// -march=native and another without; their copies of the same template (an exec::par kernel,
// or error_feedback<top_k>::compress<par_t>) then differ, and if they shared a symbol the
// linker would keep one, so code with AVX-512 instructions could run on a CPU without them.
// With the instruction set in the namespace, everything of the CPU back end, and every
// function that takes exec::par_t, has a different symbol in the two files. (Names only:
// nothing to configure. One consequence: the two files have different par_t and workspace
// types, so they cannot pass them to each other.)
#ifndef GRADCOMP_CPU_ABI
#if defined(__AVX512F__) && defined(__AVX512VL__) && defined(__AVX512BW__) && defined(__AVX512DQ__)
#if defined(__AVX512VBMI2__)
#define GRADCOMP_CPU_ABI abi_avx512_dl
#else
#define GRADCOMP_CPU_ABI abi_avx512
#endif
#elif defined(__AVX2__) && defined(__FMA__)
#define GRADCOMP_CPU_ABI abi_avx2
#elif defined(__SSE4_2__)
#define GRADCOMP_CPU_ABI abi_sse4
#elif defined(__ARM_FEATURE_SVE)
#define GRADCOMP_CPU_ABI abi_sve
#else
#define GRADCOMP_CPU_ABI abi_base
#endif
#endif
