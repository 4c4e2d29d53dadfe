#pragma once
// The parallel CPU back end, exec::par (oneTBB + Highway). Link gradcomp::tbb.
#include "gradcomp.hpp"
#include "cpu/policy.hpp"
#include "cpu/simd.hpp"
#include "cpu/feedback.hpp"
#include "cpu/hard_threshold.hpp"
