#pragma once
// Umbrella header for the CPU parts of gradcomp: concepts, the sequential reference back
// end, every compressor and payload, error feedback (classic, EF21, momentum), DGC's clipping
// and density warm-up, and compression of tensor lists.
#include "compress.hpp"
#include "concepts.hpp"
#include "error.hpp"
#include "execution.hpp"
#include "float16.hpp"
#include "multi_tensor.hpp"
#include "version.hpp"

#include "payload/bucket_quantized.hpp"
#include "payload/dense.hpp"
#include "payload/float_code.hpp"
#include "payload/quantized.hpp"
#include "payload/seeded_sparse.hpp"
#include "payload/sparse.hpp"
#include "payload/sign.hpp"
#include "payload/two_level.hpp"

#include "compressors/blockwise_sign.hpp"
#include "compressors/budget_threshold.hpp"
#include "compressors/dithering.hpp"
#include "compressors/grid_rounding.hpp"
#include "compressors/half_cast.hpp"
#include "compressors/hard_threshold.hpp"
#include "compressors/identity.hpp"
#include "compressors/maxmin_quantizer.hpp"
#include "compressors/natural_compression.hpp"
#include "compressors/onebit.hpp"
#include "compressors/qsgd.hpp"
#include "compressors/random_k.hpp"
#include "compressors/scaled_sign.hpp"
#include "compressors/sign.hpp"
#include "compressors/terngrad.hpp"
#include "compressors/top_k.hpp"

#include "algorithms/clipping.hpp"
#include "algorithms/density_warmup.hpp"

#include "feedback/ef21.hpp"
#include "feedback/error_feedback.hpp"
#include "feedback/momentum.hpp"
