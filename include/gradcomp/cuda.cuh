#pragma once
// The CUDA back end: gc::cuda::par (policy.cuh) and its kernels, for inputs, outputs and
// residuals in device memory. Include from .cu files compiled by nvcc (C++20, -fmad=false:
// the CMake target gradcomp::cuda sets both). docs/cuda.md.
#include "cuda/compact.cuh"
#include "cuda/decompress.cuh"
#include "cuda/elementwise.cuh"
#include "cuda/error.cuh"
#include "cuda/error_feedback.cuh"
#include "cuda/hard_threshold.cuh"
#include "cuda/memory.cuh"
#include "cuda/payload.cuh"
#include "cuda/policy.cuh"
#include "cuda/reduce.cuh"
#include "cuda/sparse_vector.cuh"
#include "cuda/top_k.cuh"
#include "cuda/tuning.cuh"
