// The error-feedback step, ef.compress(policy, g, scale): p = e + scale * g; m = C(p);
// e = p - decode(m), three ways:
//   ef_<c>          error_feedback with its default storage (double_buffered): the new
//                   residual goes to a second vector, swapped in on success, so the step
//                   reads g and e and writes a third vector; its baseline is same_bytes;
//   ef_<c>.in_place error_feedback with feedback_storage::in_place: the residual is
//                   updated in place, after a read of g that checks it is finite (so that a
//                   bad gradient cannot leave a half-written residual);
//   ef_<c>.kernel   the fused kernel alone, in place (backend::run of feedback_step on the
//                   residual itself): reads g and e, writes e; its baseline is
//                   inplace_update, the least any error-feedback step must move.
//
// Keeping the density at the target without fresh gradients every call:
//  - hard_threshold: the calls alternate scale = +s and -s on the same g (s = 2^-10, so
//    s * g is exact, and lambda = s * the Top-k magnitude). A +s call starts from e = 0,
//    sends exactly the entries hard_threshold{lambda} sends for s * g and keeps the rest in
//    e; the -s call then has p = -(what was sent) and 0 elsewhere, sends those same entries
//    and leaves e = 0 again. So every call sends exactly the target volume, and the kernel
//    (whose cost depends on the data only through which entries are kept) does the work of
//    a steady state, while the residual never grows.
//  - top_k: always sends exactly k, so the same g with scale s each call is enough; the
//    residual then evolves as under a slowly changing gradient and stays bounded (Top-k is
//    a contraction), with no ties or zeros that a plain gradient would not have.
#include "common.hpp"

namespace gcbench {

namespace {

template <class C, class Scale>
void run_feedback(benchmark::State& state, const dataset_spec& ds, std::size_t k, const backend& b, C c,
                  Scale scale_of_call, gc::feedback_storage storage = gc::feedback_storage::double_buffered) {
  const std::span<const float> g(input(ds));
  gc::error_feedback<C> ef(c, ds.d, storage);
  const thread_limit limit(b);
  with_policy(b, [&](const auto& policy) {
    if (should_warm_up(ds)) {
      ef.compress(policy, g, scale_of_call(0));
      ef.compress(policy, g, scale_of_call(1));
    }
    const std::uint64_t sent_before = ef.metrics().elements_sent, steps_before = ef.metrics().steps;
    std::uint64_t call = 0;
    for (auto _ : state) {
      const auto& m = ef.compress(policy, g, scale_of_call(call++));
      benchmark::DoNotOptimize(&m);
      benchmark::ClobberMemory();
    }
    const auto steps = ef.metrics().steps - steps_before;
    const double sent = steps == 0 ? 0.0
                                   : static_cast<double>(ef.metrics().elements_sent - sent_before) /
                                         static_cast<double>(steps);
    set_counters(state, ds, k, b, 8.0 * static_cast<double>(ds.d), sent);
  });
  state.counters["par_kernel"] = b.par && dispatch::has_par_kernel<C>;
  state.counters["fused"] = b.par && dispatch::has_fused_feedback<C>;
}

/// The fused step alone, in place: e = p - decode(C(p)), p = e + scale * g, on e itself.
template <class C, class Scale>
void run_kernel_in_place(benchmark::State& state, const dataset_spec& ds, std::size_t k, const backend& b, C c,
                         Scale scale_of_call) {
  const std::span<const float> g(input(ds));
  std::vector<float> e(ds.d, 0.0f);
  gc::payload_t<C, float> m;
  const thread_limit limit(b);
  double sent = 0;
  with_policy(b, [&](const auto& policy) {
    const auto step = [&](std::uint64_t call) {
      gc::backend::run<gc::backend::feedback_step_hook>(policy, c, std::span<const float>(e), g, scale_of_call(call),
                                                        std::span<float>(e), m);
    };
    if (should_warm_up(ds)) {
      step(0);
      step(1);
    }
    std::uint64_t call = 0, calls = 0;
    for (auto _ : state) {
      step(call++);
      sent += static_cast<double>(gc::sent_elements(m));
      ++calls;
      benchmark::DoNotOptimize(&m);
      benchmark::ClobberMemory();
    }
    sent = calls == 0 ? 0.0 : sent / static_cast<double>(calls);
  });
  set_counters(state, ds, k, b, 8.0 * static_cast<double>(ds.d), sent);
  state.counters["par_kernel"] = b.par && dispatch::has_par_kernel<C>;
  state.counters["fused"] = b.par && dispatch::has_fused_feedback<C>;
}

}  // namespace

void register_feedback(const dataset_spec& ds, const k_case& kc) {
  for (const backend& b : all_backends()) {
    add(ds, prefix_of(ds, kc), "ef_hard_threshold", b, [ds, k = kc.k, b](benchmark::State& state) {
      const gc::hard_threshold c{.lambda = matching_lambda(ds, k) * feedback_scale};
      run_feedback(state, ds, k, b, c, [](std::uint64_t call) { return call % 2 == 0 ? feedback_scale : -feedback_scale; });
    });
    add(ds, prefix_of(ds, kc), "ef_top_k", b, [ds, k = kc.k, b](benchmark::State& state) {
      run_feedback(state, ds, k, b, gc::top_k{.k = k}, [](std::uint64_t) { return feedback_scale; });
    });
  }
  // The in-place forms on all threads only (the ratios that matter).
  const backend b = par_backends().back();
  const auto alternate = [](std::uint64_t call) { return call % 2 == 0 ? feedback_scale : -feedback_scale; };
  const auto constant = [](std::uint64_t) { return feedback_scale; };
  add(ds, prefix_of(ds, kc), "ef_hard_threshold.in_place", b, [ds, k = kc.k, b, alternate](benchmark::State& state) {
    run_feedback(state, ds, k, b, gc::hard_threshold{.lambda = matching_lambda(ds, k) * feedback_scale}, alternate,
                 gc::feedback_storage::in_place);
  });
  add(ds, prefix_of(ds, kc), "ef_hard_threshold.kernel", b, [ds, k = kc.k, b, alternate](benchmark::State& state) {
    run_kernel_in_place(state, ds, k, b, gc::hard_threshold{.lambda = matching_lambda(ds, k) * feedback_scale},
                        alternate);
  });
  add(ds, prefix_of(ds, kc), "ef_top_k.kernel", b, [ds, k = kc.k, b, constant](benchmark::State& state) {
    run_kernel_in_place(state, ds, k, b, gc::top_k{.k = k}, constant);
  });
}

}  // namespace gcbench
