#pragma once
// GRADCOMP_NO_FP_CONTRACT: keeps the compiler from fusing a * b + c into one FMA in the
// function it marks. Reference loops define results with two roundings; if one back end
// fused and another did not, "bit-identical on every back end" would break, and GCC fuses
// by default (-ffp-contract=fast) whenever the target has FMA.
#if defined(__clang__)
#define GRADCOMP_NO_FP_CONTRACT
#define GRADCOMP_NO_FP_CONTRACT_BODY _Pragma("clang fp contract(off)")
#elif defined(__GNUC__)
#define GRADCOMP_NO_FP_CONTRACT __attribute__((optimize("fp-contract=off")))
#define GRADCOMP_NO_FP_CONTRACT_BODY
#else
#define GRADCOMP_NO_FP_CONTRACT
#define GRADCOMP_NO_FP_CONTRACT_BODY
#endif
