// maxmin_quantizer on exec::par: bit-identical to exec::seq for the same seed and step (mins,
// units and levels), the same step advance, and the same errors with the payload unchanged.
#include "par_compare.hpp"

#include <cmath>
#include <cstdint>
#include <limits>
#include <span>

using namespace gradcomp_par_test;

namespace {

/// check_twice_as_seq into a stale bucket payload.
template <class T>
void check_maxmin(const std::vector<T>& x, const gc::maxmin_quantizer& c) {
  gc::bucket_quantized_vector<T> stale;
  stale.dim = 3;
  stale.bucket_size = 2;
  stale.bits = 5;
  stale.mins.assign(7, T(9));
  stale.units.assign(1, T(9));
  stale.levels.assign(x.size() + 2, 77);
  check_twice_as_seq(x, c, stale);
}

/// seq and par agree on c(x): the same error with the payload and step unchanged, or the
/// same payloads (for inputs near max(T), where some buckets may be rejected).
template <class T>
void check_same_outcome(const std::vector<T>& x, const gc::maxmin_quantizer& c) {
  gc::maxmin_quantizer seq_c = c;
  gc::bucket_quantized_vector<T> probe;
  bool seq_threw = false;
  try {
    gc::compress(gc::exec::seq, seq_c, x, probe);
  } catch (const gc::error&) {
    seq_threw = true;
  }
  if (!seq_threw) {
    check_maxmin(x, c);
    return;
  }
  const gc::bucket_quantized_vector<T> before;
  for (const auto& policy : policies()) {
    CAPTURE(policy_name(policy));
    check_same_rejection(policy, c, std::span<const T>(x), before);
  }
}

/// Adversarial values: ties, zeros of both signs, denormals, constant runs, max(T).
template <class T>
std::vector<T> adversarial_input(std::size_t d, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  const T pool[] = {T(0),
                    -T(0),
                    T(1),
                    T(-1),
                    T(0.5),
                    std::numeric_limits<T>::denorm_min(),
                    -std::numeric_limits<T>::denorm_min(),
                    std::numeric_limits<T>::min(),
                    T(3) * std::numeric_limits<T>::denorm_min(),
                    T(0.25)};
  std::vector<T> x(d);
  for (std::size_t i = 0; i < d; ++i) {
    if (rng() % 4 == 0 && i > 0) {
      x[i] = x[i - 1];  // runs: constant buckets
    } else {
      x[i] = pool[rng() % std::size(pool)];
    }
  }
  return x;
}

}  // namespace

TEST_CASE_TEMPLATE("par maxmin: bit-identical to seq on every input kind, size, bucket size and width", T, float,
                   double) {
  for (const gt::input_kind kind : gt::all_input_kinds) {
    for (const std::size_t d : par_sizes()) {
      const std::string kind_name = gt::to_string(kind);
      CAPTURE(kind_name);
      CAPTURE(d);
      // The largest size (16 chunks) for one kind; 3 * 65536 + 4099 already spans chunks.
      if (d >= (std::size_t{1} << 20) && kind != gt::input_kind::normal) continue;
      const std::vector<T> x = gt::make_input<T>(kind, d, d + 9);
      struct config {
        std::size_t B;
        std::uint32_t bits;
      };
      // Bucket sizes of one element, a few, a vector's worth, a chunk, and more than a chunk.
      for (const config cf : {config{1, 8}, config{7, 1}, config{1024, 8}, config{1024, 4}, config{65536, 8},
                              config{100'000, 2}}) {
        CAPTURE(cf.B);
        CAPTURE(cf.bits);
        if (cf.B > 1024 && d < 70'000) continue;  // above a chunk only where there are chunks to merge
        check_maxmin(x, gc::maxmin_quantizer{.bits = cf.bits, .bucket_size = cf.B, .seed = 11 + d, .step = 3});
      }
    }
  }
}

TEST_CASE_TEMPLATE("par maxmin: adversarial inputs (ties, zeros, -0, denormals, constant buckets, max)", T, float,
                   double) {
  const T top = std::numeric_limits<T>::max();
  for (const std::size_t d : {std::size_t{1}, std::size_t{17}, std::size_t{1000}, std::size_t{70001},
                              std::size_t{3 * 65536 + 4099}}) {
    CAPTURE(d);
    const std::vector<T> adv = adversarial_input<T>(d, d);
    std::vector<T> zeros(d);
    for (std::size_t i = 0; i < d; ++i) zeros[i] = i % 3 == 0 ? -T(0) : T(0);
    std::vector<T> big = adv;  // huge values: a range of max(T) / 2 decodes finite
    for (std::size_t i = 0; i < d; i += 5) big[i] = i % 2 ? top / T(2) : T(0);
    std::vector<T> constant(d, T(-0.375));
    for (const std::size_t B : {std::size_t{1}, std::size_t{7}, std::size_t{1024}, std::size_t{65537}}) {
      CAPTURE(B);
      const gc::maxmin_quantizer c{.bits = 8, .bucket_size = B, .seed = 5, .step = 1};
      check_maxmin(adv, c);
      check_maxmin(zeros, c);
      check_maxmin(constant, c);
      check_maxmin(big, c);
      check_maxmin(adv, gc::maxmin_quantizer{.bits = 2, .bucket_size = B, .seed = 6});
      // max(T) beside ordinary values: a range of max(T) and a little more, rejected or not
      // as the reference decides.
      std::vector<T> near = adv;
      for (std::size_t i = 0; i < d; i += 5) near[i] = i % 2 ? top : -T(1);
      for (const std::uint32_t bits : {1u, 8u}) check_same_outcome(near, gc::maxmin_quantizer{.bits = bits, .bucket_size = B});
    }
  }
}

TEST_CASE_TEMPLATE("par maxmin: errors match seq, payload and step unchanged", T, GRADCOMP_PAR_FLOATS) {
  const T inf = std::numeric_limits<T>::infinity();
  const T nan = std::numeric_limits<T>::quiet_NaN();
  const T top = std::numeric_limits<T>::max();
  for_each_thread_count([&] {
    for (const std::size_t d : {std::size_t{5}, std::size_t{70001}, std::size_t{3 * 65536 + 4099}}) {
      CAPTURE(d);
      const std::vector<T> good = gt::make_input<T>(gt::input_kind::normal, d, 1);
      for (const auto& policy : policies()) {
        CAPTURE(policy_name(policy));
        gc::bucket_quantized_vector<T> before;
        gc::maxmin_quantizer warm{.bits = 3, .bucket_size = 4};
        gc::compress(gc::exec::seq, warm, good, before);
        const auto expect_same_error = [&](const gc::maxmin_quantizer& c, const std::vector<T>& x) {
          check_same_rejection(policy, c, std::span<const T>(x), before);
        };
        expect_same_error(gc::maxmin_quantizer{.bits = 0, .step = 4}, good);
        expect_same_error(gc::maxmin_quantizer{.bits = 9, .step = 4}, good);
        expect_same_error(gc::maxmin_quantizer{.bucket_size = 0, .step = 4}, good);
        for (const std::size_t B : {std::size_t{3}, std::size_t{1024}, std::size_t{100'000}}) {
          CAPTURE(B);
          for (const T bad : {nan, -nan, inf, -inf}) {
            for (const std::size_t where : {std::size_t{0}, d / 2, d - 1}) {
              CAPTURE(where);
              std::vector<T> x = good;
              x[where] = bad;
              if (where != d - 1) x[d - 1] = -bad;  // the first one is named
              expect_same_error(gc::maxmin_quantizer{.bits = 4, .bucket_size = B, .step = 9}, x);
            }
          }
          // A bucket whose range overflows (max and -max in it), after good ones; a NaN later
          // still wins (the reference checks finiteness first).
          std::vector<T> x = good;
          const std::size_t p = d / 2 / B * B;  // the start of the bucket that holds d / 2
          x[p] = top;
          x[p + 1] = -top;
          expect_same_error(gc::maxmin_quantizer{.bits = 8, .bucket_size = B, .step = 2}, x);
          x[d - 2] = nan;
          expect_same_error(gc::maxmin_quantizer{.bits = 8, .bucket_size = B, .step = 2}, x);
        }
      }
    }
  });
}

TEST_CASE_TEMPLATE("par error_feedback<maxmin_quantizer>: bit-identical to seq over several steps", T, GRADCOMP_PAR_FLOATS) {
  for_each_thread_count([] {
    for (const std::size_t d : feedback_sizes()) {
      for (const auto& policy : policies()) {
        CAPTURE(d);
        CAPTURE(policy_name(policy));
        check_feedback_steps<T>(gc::maxmin_quantizer{.bits = 4, .bucket_size = 512, .seed = 99, .step = 2}, d, policy);
      }
    }
  });
}
