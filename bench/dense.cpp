// Case 3's other compressors: scaled_sign, onebit (one block), blockwise_sign(256), qsgd (s = 127, 8-bit
// levels), terngrad, dithering (linear s = 4 with the max norm, natural s = 8 with the l2
// norm), the unscaled sign, the float16/bfloat16 casts, natural compression, and random_k at the Top-k k, and decompress_add of the Top-k message into a dense
// vector. GB/s counts the d floats of the dense input (or of the dense vector that
// decompress_add updates), so random_k and decompress_add, which touch only k entries, can
// beat the read baseline.
#include "common.hpp"

namespace gcbench {

void register_dense(const dataset_spec& ds) {
  for (const backend& b : all_backends()) {
    add(ds, prefix_of(ds), "scaled_sign", b,
        [ds, b](benchmark::State& state) { run_compressor(state, ds, 0, b, gc::scaled_sign{}); });
    add(ds, prefix_of(ds), "onebit", b,  // one block: scaled_sign's pass with three masked sums
        [ds, b](benchmark::State& state) { run_compressor(state, ds, 0, b, gc::onebit{}); });
    add(ds, prefix_of(ds), "blockwise_sign", b,
        [ds, b](benchmark::State& state) { run_compressor(state, ds, 0, b, gc::blockwise_sign{.block_size = 256}); });
    add(ds, prefix_of(ds), "qsgd", b,
        [ds, b](benchmark::State& state) { run_compressor(state, ds, 0, b, gc::qsgd{.s = 127, .seed = 1}); });
    add(ds, prefix_of(ds), "maxmin(8 bit, B=1024)", b, [ds, b](benchmark::State& state) {
      run_compressor(state, ds, 0, b, gc::maxmin_quantizer{.bits = 8, .bucket_size = 1024, .seed = 1});
    });
    add(ds, prefix_of(ds), "maxmin(4 bit, B=1024)", b, [ds, b](benchmark::State& state) {
      run_compressor(state, ds, 0, b, gc::maxmin_quantizer{.bits = 4, .bucket_size = 1024, .seed = 1});
    });
    add(ds, prefix_of(ds), "float16_cast", b,
        [ds, b](benchmark::State& state) { run_compressor(state, ds, 0, b, gc::float16_cast{}); });
    add(ds, prefix_of(ds), "bfloat16_cast", b,
        [ds, b](benchmark::State& state) { run_compressor(state, ds, 0, b, gc::bfloat16_cast{}); });
    add(ds, prefix_of(ds), "natural_compression", b,
        [ds, b](benchmark::State& state) { run_compressor(state, ds, 0, b, gc::natural_compression{.seed = 1}); });
    add(ds, prefix_of(ds), "terngrad", b,
        [ds, b](benchmark::State& state) { run_compressor(state, ds, 0, b, gc::terngrad{.seed = 1}); });
    add(ds, prefix_of(ds), "dithering(linear, s=4, max)", b,
        [ds, b](benchmark::State& state) { run_compressor(state, ds, 0, b, gc::dithering{.s = 4, .seed = 1}); });
    add(ds, prefix_of(ds), "dithering(natural, s=8, l2)", b, [ds, b](benchmark::State& state) {
      run_compressor(state, ds, 0, b,
                     gc::dithering{.s = 8, .partition = gc::dithering::natural, .norm = gc::dithering::l2, .seed = 1});
    });
    add(ds, prefix_of(ds), "sign", b,
        [ds, b](benchmark::State& state) { run_compressor(state, ds, 0, b, gc::sign{}); });
  }
}

void register_sparse_extras(const dataset_spec& ds, const k_case& kc) {
  for (const backend& b : all_backends()) {
    add(ds, prefix_of(ds, kc), "random_k", b, [ds, k = kc.k, b](benchmark::State& state) {
      run_compressor(state, ds, k, b, gc::random_k{.k = k, .seed = 1});
    });
    add(ds, prefix_of(ds, kc), "decompress_add", b, [ds, k = kc.k, b](benchmark::State& state) {
      const auto& msg = top_k_message(ds, k);
      std::vector<float> dense(ds.d);
      const thread_limit limit(b);
      with_policy(b, [&](const auto& policy) {
        for (auto _ : state) {
          gc::decompress_add(policy, msg, dense);
          benchmark::ClobberMemory();
        }
      });
      set_counters(state, ds, k, b, 4.0 * static_cast<double>(ds.d), static_cast<double>(msg.nnz()));
      state.counters["par_kernel"] =
          b.par && dispatch::has_par_decompress<gc::sparse_vector<float>>;
    });
  }
}

}  // namespace gcbench
