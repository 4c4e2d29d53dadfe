#pragma once
// The parallel CPU back end, exec::par (oneTBB threads, SIMD kernels for the CPU's best
// instruction set, chosen at run time). Link gradcomp::tbb.
#include "gradcomp.hpp"
#include "cpu/policy.hpp"
#include "cpu/tuning.hpp"
#include "cpu/workspace.hpp"
#include "cpu/simd.hpp"
#include "cpu/feedback.hpp"
#include "cpu/hard_threshold.hpp"
#include "cpu/sign.hpp"
#include "cpu/qsgd.hpp"
#include "cpu/grid_rounding.hpp"
#include "cpu/random_k.hpp"
#include "cpu/identity.hpp"
#include "cpu/decompress.hpp"
#include "cpu/top_k.hpp"
#include "cpu/multi_tensor.hpp"
