// gc::cuda::powersgd against gc::powersgd on exec::seq. The device sums P = M Q and the
// orthogonalisation's dot products in another fixed order than the reference (both in
// double), so whole steps are held to a relative tolerance (docs/powersgd.md, "On the GPU"):
//   ||decoded_gpu - decoded_seq||_F and ||e_gpu - e_seq||_F  <=  tol ||M||_F,
//   ||Q_gpu - Q_seq||_F <= tol ||Q_seq||_F,   tol = 1e-4 (float), 1e-10 (double),
// on matrices whose singular values are separated. What is bit for bit: the layout, Q's
// initial draw, the redrawn zero columns, the uncompressed tensors (decoded and residual), two
// identical device runs, and a failed step (nothing changes). Also: 1-D, empty and skipped
// tensors, ranks 1 to 33 (more than one group of 32 columns), two workers whose all-reduce
// averages the two states' device buffers, restore(). Compiled only so far: no GPU has run it.
#include "cuda_support.cuh"

#include <array>
#include <atomic>
#include <barrier>
#include <cmath>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <thread>
#include <type_traits>

#include <gradcomp/lowrank/powersgd.hpp>

#include "../lowrank_reference.hpp"
#include "../unit/error_message.hpp"

using namespace gradcomp_cuda_test;

namespace {

template <class T>
constexpr double step_tolerance = std::is_same_v<T, float> ? 1e-4 : 1e-10;

template <class T>
double frobenius(const std::vector<T>& a) {
  double s = 0;
  for (const T v : a) s += static_cast<double>(v) * static_cast<double>(v);
  return std::sqrt(s);
}

template <class T>
double distance(const std::vector<T>& a, const std::vector<T>& b) {
  REQUIRE(a.size() == b.size());
  return std::sqrt(gt::squared_frobenius_distance<T>(a, b));
}

template <class T>
std::vector<T> host_vector(std::span<const T> s) {
  return std::vector<T>(s.begin(), s.end());
}

template <class T>
struct no_exchange {  // one worker: the mean is the value itself
  void operator()(std::span<T>) const {}
};

/// A gradient for a list of shapes: low rank plus noise on each matrix (singular values 8, 4,
/// 2, 1, 0.5 and a noise floor), uniform on [-1, 1) on 1-D tensors.
template <class T>
std::vector<T> model_gradient(const std::vector<gc::tensor_shape>& shapes, std::uint64_t seed) {
  const std::vector<double> sigma{8, 4, 2, 1, 0.5};
  std::vector<T> g;
  for (std::size_t t = 0; t < shapes.size(); ++t) {
    const gc::tensor_shape s = shapes[t];
    std::vector<T> part(s.rows * s.cols);
    if (s.rows >= 2 && s.cols >= 2)
      part = gt::low_rank_plus_noise<T>(s.rows, s.cols, sigma, 0.05, seed * 100 + t);
    else
      for (std::size_t i = 0; i < part.size(); ++i) part[i] = static_cast<T>(gt::test_uniform(seed * 100 + t, i));
    g.insert(g.end(), part.begin(), part.end());
  }
  return g;
}

/// M = e + scale * g on the host (the reference's rule), for the tolerance's scale.
template <class T>
std::vector<T> host_m(const gc::powersgd<T>& host, const std::vector<T>& g, T scale) {
  std::vector<T> m(g.size());
  gc::detail::feedback_input(host.residual(), std::span<const T>(g), scale, std::span<T>(m));
  return m;
}

/// The device state after a step against the host's: decoded, e, Q and every P within the
/// tolerance; the uncompressed tensors' decoded values and (zero) residuals bit for bit; the
/// same step count and column counts.
template <class T>
void check_close(const gc::powersgd<T>& host, const gc::cuda::powersgd<T>& device, const std::vector<T>& host_decoded,
                 const std::vector<T>& device_decoded, double m_norm) {
  const double tol = step_tolerance<T>;
  const std::vector<T> e_host = host_vector(host.residual()), e_device = to_host(device.residual());
  const std::vector<T> q_host = host_vector(host.all_q()), q_device = to_host(device.all_q());
  const double d_decoded = distance(device_decoded, host_decoded), d_e = distance(e_device, e_host),
               d_q = distance(q_device, q_host);
  CHECK(d_decoded <= tol * m_norm);
  CHECK(d_e <= tol * m_norm);
  CHECK(d_q <= tol * frobenius(q_host));
  MESSAGE("relative differences gpu vs seq (decoded, e, Q): ", d_decoded / m_norm, " ", d_e / m_norm, " ",
          d_q / frobenius(q_host));
  const auto& l = host.layout();
  for (std::size_t t = 0; t < l.tensors.size(); ++t) {
    CAPTURE(t);
    const auto& s = l.tensors[t];
    const auto part = [&](const std::vector<T>& v) {
      return std::vector<T>(v.begin() + static_cast<std::ptrdiff_t>(s.offset),
                            v.begin() + static_cast<std::ptrdiff_t>(s.offset + l.size_of(s)));
    };
    if (s.compressed) {
      const std::vector<T> p_host = host_vector(host.p(t)), p_device = to_host(device.p(t));
      CHECK(distance(p_device, p_host) <= tol * std::max(1.0, frobenius(p_host)));
    } else {
      CHECK(gt::same_bits(part(device_decoded), part(host_decoded)));
      CHECK(gt::same_bits(part(e_device), part(e_host)));
      CHECK(device.q(t).empty());
      CHECK(device.p(t).empty());
    }
  }
  CHECK(device.steps() == host.steps());
  CHECK(device.last_step().degenerate_columns == host.last_step().degenerate_columns);
  CHECK(device.last_step().redrawn_columns == host.last_step().redrawn_columns);
}

/// Steps a host and a device state side by side with the same gradients (one worker).
template <class T>
void check_steps(const std::vector<gc::tensor_shape>& shapes, std::size_t rank, T scale, int steps,
                 std::uint64_t seed) {
  CAPTURE(rank);
  CAPTURE(shapes.size());
  gc::powersgd<T> host(shapes, {.rank = rank, .seed = seed});
  gc::cuda::powersgd<T> device(shapes, {.rank = rank, .seed = seed});
  REQUIRE(device.dim() == host.dim());
  REQUIRE(gt::same_bits(to_host(device.all_q()), host_vector(host.all_q())));
  const std::size_t d = host.dim();
  std::vector<T> host_decoded(d);
  device_copy<T> device_decoded(d);
  for (int step = 0; step < steps; ++step) {
    CAPTURE(step);
    const std::vector<T> g = model_gradient<T>(shapes, seed + 10 * static_cast<std::uint64_t>(step));
    const double m_norm = frobenius(host_m(host, g, scale));
    host.step(gc::exec::seq, std::span<const T>(g), scale, std::span<T>(host_decoded), no_exchange<T>{});
    const device_copy<T> dg(g);
    device.step(gc::cuda::par, dg.span(), scale, device_decoded.span(), no_exchange<T>{});
    check_close(host, device, host_decoded, device_decoded.to_host(), m_norm);
  }
}

}  // namespace

TEST_CASE_TEMPLATE("cuda powersgd: the layout, Q's initial draw and the zero residuals are the host's", T, float,
                   double) {
  const std::vector<gc::tensor_shape> shapes{{96, 80}, {1, 80}, {64, 120}, {0, 7}, {4, 4}, {3, 50}, {80, 1}, {33, 65}};
  gc::powersgd<T> host(shapes, {.rank = 3, .seed = 12});
  gc::cuda::powersgd<T> device(shapes, {.rank = 3, .seed = 12});
  const auto& a = device.layout();
  const auto& b = host.layout();
  CHECK(a.dim == b.dim);
  CHECK(a.uncompressed_values == b.uncompressed_values);
  CHECK(a.p_values == b.p_values);
  CHECK(a.q_values == b.q_values);
  REQUIRE(a.tensors.size() == b.tensors.size());
  for (std::size_t t = 0; t < a.tensors.size(); ++t) {
    CAPTURE(t);
    CHECK(a.tensors[t].compressed == b.tensors[t].compressed);
    CHECK(a.tensors[t].offset == b.tensors[t].offset);
    CHECK(a.tensors[t].p_offset == b.tensors[t].p_offset);
    CHECK(a.tensors[t].q_offset == b.tensors[t].q_offset);
    CHECK(device.q(t).size() == host.q(t).size());
    CHECK(device.p(t).size() == host.p(t).size());
    CHECK(gt::same_bits(to_host(device.q(t)), host_vector(host.q(t))));
  }
  CHECK_FALSE(a.tensors[1].compressed);  // 1-D
  CHECK_FALSE(a.tensors[4].compressed);  // r (rows + cols) >= rows cols
  CHECK_FALSE(a.tensors[5].compressed);  // r = rows: never compresses
  CHECK(device.values_per_step() == host.values_per_step());
  CHECK(gt::same_bits(to_host(device.all_q()), host_vector(host.all_q())));
  CHECK(gt::same_bits(to_host(device.residual()), std::vector<T>(host.dim(), T(0))));
  CHECK(device.steps() == 0);
  CHECK(gt::contains(gt::error_message([] { gc::cuda::powersgd<T> ps({{4, 4}}, {.rank = 0}); }),
                     "rank must be at least 1 (got 0)"));
  CHECK(gt::contains(gt::error_message([&] { (void)device.q(8); }), "tensor 8 is not in [0, 8)"));
}

TEST_CASE_TEMPLATE("cuda powersgd: steps with the warm start match exec::seq within the tolerance", T, float, double) {
  // Compressed, 1-D, skipped (r (rows + cols) >= rows cols, r >= min(rows, cols)) and empty
  // tensors; ranks 1, 2, 5 and 33 (two groups of columns: 32 + 1).
  check_steps<T>({{96, 80}, {1, 80}, {64, 120}}, 2, T(1), 4, 3);
  check_steps<T>({{40, 3}, {3, 40}, {80, 1}, {5, 5}, {4, 4}, {0, 7}, {33, 65}, {1, 1}}, 2, T(0.5), 4, 5);
  check_steps<T>({{257, 129}, {1000, 7}, {1, 3}}, 1, T(1), 5, 7);
  check_steps<T>({{100, 60}, {60, 100}, {9, 2}}, 5, T(0.25), 4, 9);
  check_steps<T>({{200, 150}, {10, 10}, {150, 1}, {64, 300}}, 33, T(0.1), 3, 11);
  check_steps<T>({{1, 7}, {7, 1}, {2, 2}}, 1, T(1), 2, 13);  // nothing compressed
}

TEST_CASE_TEMPLATE("cuda powersgd: degenerate columns and zero tensors are zeroed and redrawn as on the host", T,
                   float, double) {
  // A rank-1 matrix at rank 2 (the second column of P lies in the first's span), an all-zero
  // matrix (every column degenerate, every column of Q redrawn) and a bias.
  constexpr std::size_t n = 6, m = 5;
  const std::vector<gc::tensor_shape> shapes{{n, m}, {7, 6}, {1, 5}};
  std::vector<T> g;
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j < m; ++j)
      g.push_back(static_cast<T>((0.5 + static_cast<double>(i)) * ((j % 2 ? -1.0 : 1.0) * (1.0 + 0.25 * static_cast<double>(j)))));
  g.resize(g.size() + 42, T(0));
  for (std::size_t j = 0; j < 5; ++j) g.push_back(static_cast<T>(gt::test_uniform(4, j)));
  gc::powersgd<T> host(shapes, {.rank = 2, .seed = 3});
  gc::cuda::powersgd<T> device(shapes, {.rank = 2, .seed = 3});
  std::vector<T> host_decoded(host.dim());
  device_copy<T> device_decoded(host.dim());
  const device_copy<T> dg(g);
  for (int step = 0; step < 3; ++step) {
    CAPTURE(step);
    const double m_norm = frobenius(host_m(host, g, T(1)));
    host.step(gc::exec::seq, std::span<const T>(g), T(1), std::span<T>(host_decoded), no_exchange<T>{});
    device.step(gc::cuda::par, dg.span(), T(1), device_decoded.span(), no_exchange<T>{});
    const std::vector<T> decoded = device_decoded.to_host();
    check_close(host, device, host_decoded, decoded, m_norm);
    if (step == 0) {
      CHECK(device.last_step().degenerate_columns == 3);  // 1 of the rank-1 matrix, 2 of the zero one
      CHECK(device.last_step().redrawn_columns == 3);
      // The zero matrix: P = 0, decoded = 0, e = 0, Q = step 1's draw: the host's bits.
      CHECK(gt::same_bits(to_host(device.q(1)), host_vector(host.q(1))));
      CHECK(gt::same_bits(std::vector<T>(decoded.begin() + 30, decoded.begin() + 72), std::vector<T>(42, T(0))));
      CHECK(gt::same_bits(to_host(device.residual(1)), std::vector<T>(42, T(0))));
      // The rank-1 matrix is decoded up to rounding; Q's second column is step 1's draw.
      const std::vector<T> q0 = to_host(device.q(0));
      const auto stream = gc::lowrank::q_stream(3, 0, 1);
      for (std::size_t j = 0; j < m; ++j) CHECK(q0[j * 2 + 1] == gc::lowrank::q_draw<T>(stream, j * 2 + 1));
      for (std::size_t k = 0; k < n * m; ++k)
        CHECK(std::abs(static_cast<double>(decoded[k]) - static_cast<double>(g[k])) <=
              100 * std::numeric_limits<T>::epsilon() * 20.0);
    }
  }
}

namespace {

template <class T>
__global__ void mean_of_two_kernel(T* a, T* b, std::size_t n) {
  for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const T v = (a[i] + b[i]) / T(2);
    a[i] = v;
    b[i] = v;
  }
}

/// Runs step(w, allreduce_mean) for workers w = 0 and 1 in two threads. allreduce_mean(v)
/// waits for the other worker's buffer; worker 0 then calls mean(v0, v1), which leaves the
/// mean in both, while worker 1 waits. Rethrows a worker's exception.
template <class T, class Step, class Mean>
void two_workers(Step&& step, Mean&& mean) {
  std::barrier sync(2);
  std::array<std::span<T>, 2> views;
  std::array<std::exception_ptr, 2> errors;
  std::atomic<bool> failed{false};
  const auto run = [&](int w) {
    try {
      step(w, [&](std::span<T> v) {
        views[static_cast<std::size_t>(w)] = v;
        sync.arrive_and_wait();
        if (failed) throw std::runtime_error("the other worker failed");
        if (w == 0) mean(views[0], views[1]);
        sync.arrive_and_wait();
      });
    } catch (...) {
      errors[static_cast<std::size_t>(w)] = std::current_exception();
      failed = true;
      sync.arrive_and_drop();
    }
  };
  std::thread other(run, 1);
  run(0);
  other.join();
  for (const auto& e : errors)
    if (e) std::rethrow_exception(e);
}

}  // namespace

TEST_CASE_TEMPLATE("cuda powersgd: two workers averaging their device buffers match two host workers", T, float,
                   double) {
  const std::vector<gc::tensor_shape> shapes{{48, 40}, {1, 40}, {30, 36}, {5, 5}, {4, 4}};
  const gc::powersgd_options opt{.rank = 2, .seed = 6};
  std::vector<gc::powersgd<T>> host;
  std::vector<gc::cuda::powersgd<T>> device;
  for (int w = 0; w < 2; ++w) {
    host.emplace_back(shapes, opt);
    device.emplace_back(shapes, opt);
  }
  const std::size_t d = host[0].dim();
  std::array<std::vector<T>, 2> host_decoded{std::vector<T>(d), std::vector<T>(d)};
  std::array<device_copy<T>, 2> device_decoded{device_copy<T>(d), device_copy<T>(d)};
  const T scale = T(0.5);
  for (int step = 0; step < 3; ++step) {
    CAPTURE(step);
    std::array<std::vector<T>, 2> g;
    double m_norm = 0;
    for (std::size_t w = 0; w < 2; ++w) {
      g[w] = model_gradient<T>(shapes, 100 * w + static_cast<std::uint64_t>(step));
      m_norm += frobenius(host_m(host[w], g[w], scale));
    }
    const std::array<device_copy<T>, 2> dg{device_copy<T>(g[0]), device_copy<T>(g[1])};
    two_workers<T>(
        [&](int w, auto allreduce_mean) {
          const auto i = static_cast<std::size_t>(w);
          host[i].step(gc::exec::seq, std::span<const T>(g[i]), scale, std::span<T>(host_decoded[i]), allreduce_mean);
        },
        [](std::span<T> a, std::span<T> b) {
          for (std::size_t k = 0; k < a.size(); ++k) a[k] = b[k] = (a[k] + b[k]) / T(2);
        });
    two_workers<T>(
        [&](int w, auto allreduce_mean) {
          const auto i = static_cast<std::size_t>(w);
          device[i].step(gc::cuda::par, dg[i].span(), scale, device_decoded[i].span(), allreduce_mean);
        },
        [](std::span<T> a, std::span<T> b) {
          if (a.empty()) return;
          mean_of_two_kernel<T><<<gc::cuda::detail::elementwise_grid(a.size()), 256>>>(a.data(), b.data(), a.size());
          if (cudaGetLastError() != cudaSuccess || cudaDeviceSynchronize() != cudaSuccess)
            throw std::runtime_error("mean_of_two_kernel failed");
        });
    const std::vector<T> decoded0 = device_decoded[0].to_host(), decoded1 = device_decoded[1].to_host();
    CHECK(gt::same_bits(decoded0, decoded1));  // every worker applies the same update
    CHECK(gt::same_bits(host_decoded[0], host_decoded[1]));
    for (std::size_t w = 0; w < 2; ++w) {
      CAPTURE(w);
      check_close(host[w], device[w], host_decoded[w], w == 0 ? decoded0 : decoded1, m_norm);
    }
    CHECK(gt::same_bits(to_host(device[0].all_q()), to_host(device[1].all_q())));  // Q is all-reduced
    CHECK_FALSE(gt::same_bits(to_host(device[0].residual()), to_host(device[1].residual())));  // e is each worker's
  }
}

TEST_CASE_TEMPLATE("cuda powersgd: two identical device runs give the same bits", T, float, double) {
  const std::vector<gc::tensor_shape> shapes{{512, 300}, {300, 1}, {256, 576}, {1000, 40}, {3, 3}};
  gc::cuda::powersgd<T> a(shapes, {.rank = 4, .seed = 21}), b(shapes, {.rank = 4, .seed = 21});
  device_copy<T> out_a(a.dim()), out_b(a.dim());
  for (int step = 0; step < 4; ++step) {
    CAPTURE(step);
    std::vector<T> g(a.dim());
    for (std::size_t i = 0; i < g.size(); ++i) g[i] = static_cast<T>(gt::test_uniform(30 + static_cast<std::uint64_t>(step), i));
    const device_copy<T> dg(g);
    a.step(gc::cuda::par, dg.span(), T(0.1), out_a.span(), no_exchange<T>{});
    b.step(gc::cuda::par, dg.span(), T(0.1), out_b.span(), no_exchange<T>{});
    CHECK(gt::same_bits(out_a.to_host(), out_b.to_host()));
    CHECK(gt::same_bits(to_host(a.residual()), to_host(b.residual())));
    CHECK(gt::same_bits(to_host(a.all_q()), to_host(b.all_q())));
    for (std::size_t t = 0; t < shapes.size(); ++t) CHECK(gt::same_bits(to_host(a.p(t)), to_host(b.p(t))));
    CHECK(a.last_step().degenerate_columns == b.last_step().degenerate_columns);
    CHECK(a.last_step().redrawn_columns == b.last_step().redrawn_columns);
  }
}

namespace {

/// Writes v[i] = value into device memory.
template <class T>
void poke(std::span<T> v, std::size_t i, T value) {
  ok(cudaMemcpy(v.data() + i, &value, sizeof value, cudaMemcpyHostToDevice));
}

}  // namespace

TEST_CASE_TEMPLATE("cuda powersgd: failures give the host's messages and change nothing", T, float, double) {
  const std::vector<gc::tensor_shape> shapes{{6, 5}, {1, 4}};
  gc::powersgd<T> host(shapes, {.rank = 1, .seed = 2});
  gc::cuda::powersgd<T> ps(shapes, {.rank = 1, .seed = 2});
  const std::size_t d = ps.dim();
  REQUIRE(d == 34);
  std::vector<T> g(d);
  for (std::size_t i = 0; i < d; ++i) g[i] = static_cast<T>(gt::test_uniform(1, i));
  const device_copy<T> dg(g);
  std::vector<T> host_decoded(d);
  device_copy<T> decoded(std::vector<T>(d, T(7)));
  host.step(gc::exec::seq, std::span<const T>(g), T(1), std::span<T>(host_decoded), no_exchange<T>{});
  ps.step(gc::cuda::par, dg.span(), T(1), decoded.span(), no_exchange<T>{});
  const std::vector<T> e = to_host(ps.residual()), q = to_host(ps.all_q()), decoded_before = decoded.to_host();
  const auto info = ps.last_step();
  const auto unchanged = [&] {
    CHECK(gt::same_bits(to_host(ps.residual()), e));
    CHECK(gt::same_bits(to_host(ps.all_q()), q));
    CHECK(ps.steps() == 1);
    CHECK(ps.last_step().degenerate_columns == info.degenerate_columns);
    CHECK(ps.last_step().redrawn_columns == info.redrawn_columns);
    CHECK(gt::same_bits(decoded.to_host(), decoded_before));
  };
  const device_copy<T> short_g(std::vector<T>(d - 1, T(1)));
  CHECK(gt::error_message([&] { ps.step(gc::cuda::par, short_g.span(), T(1), decoded.span(), no_exchange<T>{}); }) ==
        "gradcomp::cuda::powersgd::step: the gradient has 33 elements, the scheme's dimension is 34");
  unchanged();
  device_copy<T> long_out(d + 1);
  CHECK(gt::contains(gt::error_message([&] { ps.step(gc::cuda::par, dg.span(), T(1), long_out.span(), no_exchange<T>{}); }),
                     "the output has 35 elements"));
  unchanged();
  const T big = std::numeric_limits<T>::max() / T(2);
  const device_copy<T> huge(std::vector<T>(d, big));
  CHECK(gt::contains(gt::error_message([&] { ps.step(gc::cuda::par, huge.span(), T(4), decoded.span(), no_exchange<T>{}); }),
                     "M = e + scale * g is not finite"));
  unchanged();
  // All-reduces that make a value non-finite (as a broken transport would) fail before any commit.
  const T inf = std::numeric_limits<T>::infinity(), nan = std::numeric_limits<T>::quiet_NaN();
  CHECK(gt::contains(gt::error_message([&] {
                       ps.step(gc::cuda::par, dg.span(), T(1), decoded.span(),
                               [&](std::span<T> v) { poke(v, v.size() - 1, inf); });  // the last value of P
                     }),
                     "the all-reduced P (or an uncompressed tensor's mean) is not finite"));
  unchanged();
  CHECK(gt::contains(gt::error_message([&] {
                       ps.step(gc::cuda::par, dg.span(), T(1), decoded.span(),
                               [&](std::span<T> v) { poke(v, 0, nan); });  // the bias's mean
                     }),
                     "the all-reduced P (or an uncompressed tensor's mean) is not finite"));
  unchanged();
  CHECK(gt::contains(gt::error_message([&] {
                       int call = 0;
                       ps.step(gc::cuda::par, dg.span(), T(1), decoded.span(), [&](std::span<T> v) {
                         if (++call == 2) poke(v, 0, nan);  // Q
                       });
                     }),
                     "the all-reduced Q is not finite"));
  unchanged();
  CHECK_THROWS_WITH_AS(ps.step(gc::cuda::par, dg.span(), T(1), decoded.span(),
                               [&](std::span<T>) { throw std::runtime_error("the transport broke"); }),
                       "the transport broke", std::runtime_error);
  unchanged();
  CHECK(gt::contains(gt::error_message([&] { ps.finish(gc::cuda::par, decoded.span(), no_exchange<T>{}, "test"); }),
                     "finish() needs a successful prepare() first"));
  unchanged();
  ps.prepare(gc::cuda::par, dg.span(), T(1), d, "test");
  CHECK(gt::contains(gt::error_message([&] { ps.finish(gc::cuda::par, long_out.span(), no_exchange<T>{}, "test"); }),
                     "the output has 35 elements"));
  unchanged();
  CHECK(gt::contains(gt::error_message([&] { ps.restore(std::span<const T>(e).first(3), std::span<const T>(q), 1); }),
                     "the residual has 3 elements"));
  unchanged();
  CHECK(gt::contains(gt::error_message([&] { (void)ps.q(2); }), "tensor 2 is not in [0, 2)"));
  // After all that, the next step is the host's next step (the host saw no failure).
  const std::vector<T> g2 = model_gradient<T>(shapes, 77);
  const double m_norm = frobenius(host_m(host, g2, T(1)));
  host.step(gc::exec::seq, std::span<const T>(g2), T(1), std::span<T>(host_decoded), no_exchange<T>{});
  const device_copy<T> dg2(g2);
  ps.step(gc::cuda::par, dg2.span(), T(1), decoded.span(), no_exchange<T>{});
  check_close(host, ps, host_decoded, decoded.to_host(), m_norm);
}

TEST_CASE("cuda powersgd: restore, and the fixed-matrix convergence to the best rank-r error") {
  // The host test's fixed matrix, the residual cleared before each step by restore() (host
  // memory for e, the state's own Q): subspace iteration, on the GPU.
  constexpr std::size_t n = 40, m = 30, r = 3;
  const std::vector<double> sigma{10, 6, 3, 1.5};
  const auto g = gt::low_rank_plus_noise<double>(n, m, sigma, 0.05, 77);
  const double best = gt::best_rank_error<double>(g, n, m, r);
  REQUIRE(best > 0);
  gc::powersgd<double> host({{n, m}}, {.rank = r, .seed = 5});
  gc::cuda::powersgd<double> device({{n, m}}, {.rank = r, .seed = 5});
  const std::vector<double> zero(n * m, 0.0);
  const device_copy<double> dg(g);
  std::vector<double> host_decoded(n * m);
  device_copy<double> device_decoded(n * m);
  std::vector<double> ratios;
  for (int step = 0; step < 40; ++step) {
    CAPTURE(step);
    host.restore(zero, host.all_q(), host.steps());
    device.restore(zero, device.all_q(), device.steps());
    host.step(gc::exec::seq, std::span<const double>(g), 1.0, std::span<double>(host_decoded), no_exchange<double>{});
    device.step(gc::cuda::par, dg.span(), 1.0, device_decoded.span(), no_exchange<double>{});
    const std::vector<double> decoded = device_decoded.to_host();
    check_close(host, device, host_decoded, decoded, frobenius(g));
    ratios.push_back(gt::squared_frobenius_distance<double>(g, decoded) / best);
    CHECK(ratios.back() >= 1.0 - 1e-9);
  }
  CHECK(ratios.back() <= 1.0 + 1e-6);
  // restore() from device memory: the state of another run, then the same next step.
  gc::cuda::powersgd<double> copy({{n, m}}, {.rank = r, .seed = 99});
  copy.restore(gc::cuda::par, device.residual(), device.all_q(), device.steps());
  CHECK(gt::same_bits(to_host(copy.residual()), to_host(device.residual())));
  CHECK(gt::same_bits(to_host(copy.all_q()), to_host(device.all_q())));
  CHECK(copy.steps() == device.steps());
  device_copy<double> copy_decoded(n * m);
  copy.step(gc::cuda::par, dg.span(), 1.0, copy_decoded.span(), no_exchange<double>{});
  device.step(gc::cuda::par, dg.span(), 1.0, device_decoded.span(), no_exchange<double>{});
  CHECK(gt::same_bits(copy_decoded.to_host(), device_decoded.to_host()));
  CHECK_THROWS_AS(copy.restore(device.residual(), device.all_q().first(2), 0), gc::error);
}
