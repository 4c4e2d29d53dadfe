#pragma once
// GRADCOMP_HD marks the element and per-block rules that the CUDA back end runs on the
// device as they are: `__host__ __device__` under nvcc, nothing elsewhere. A rule written once
// and called by the sequential reference, the SIMD scalar tails and a GPU thread cannot drift
// between them (docs/backends.md, "The same bits as the reference").
#if defined(__CUDACC__)
#define GRADCOMP_HD __host__ __device__
#else
#define GRADCOMP_HD
#endif
