#pragma once
// L2-regularised logistic regression in double precision, the convex test problem:
//
//   f(x)   = (1/m) sum_j log(1 + exp(-y_j a_j.x)) + (l2/2) ||x||^2
//   f_j(x) =       log(1 + exp(-y_j a_j.x)) + (l2/2) ||x||^2      (so mean_j grad f_j = grad f)
//
// plus the smoothness constant L of the data term and a Newton-CG minimiser that gives f* to
// high precision for suboptimality curves. Everything is a function of the margins
// z_j = y_j a_j.x, so each pass computes a_j.x once per sample.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "dataset.hpp"

namespace repro {

namespace detail {

/// log(1 + exp(t)) without overflow for large t and without losing small values for very negative t.
inline double softplus(double t) noexcept { return t > 0 ? t + std::log1p(std::exp(-t)) : std::log1p(std::exp(t)); }

/// 1 / (1 + exp(-t)), arranged so that exp never overflows.
inline double sigmoid(double t) noexcept {
  if (t >= 0) return 1.0 / (1.0 + std::exp(-t));
  const double e = std::exp(t);
  return e / (1.0 + e);
}

inline double dot(std::span<const double> a, std::span<const double> b) noexcept {
  double s = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

inline double norm(std::span<const double> a) noexcept { return std::sqrt(dot(a, a)); }

inline std::string format_double(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

}  // namespace detail

class logistic_regression {
 public:
  /// Keeps a reference to data, which must outlive this object. l2 must be finite and >= 0; data
  /// must be non-empty, consistent CSR, with labels +-1 (else std::invalid_argument).
  logistic_regression(const binary_dataset& data, double l2) : data_(&data), l2_(l2) {
    if (!std::isfinite(l2) || l2 < 0)
      throw std::invalid_argument("logistic_regression: l2 = " + detail::format_double(l2) +
                                  ", expected a finite number >= 0");
    const csr_matrix& a = data.a;
    if (data.size() == 0) throw std::invalid_argument("logistic_regression: data set '" + data.name + "' is empty");
    if (a.rows != data.size() || a.row_ptr.size() != a.rows + 1 || a.row_ptr.front() != 0 ||
        a.row_ptr.back() != a.val.size() || a.col.size() != a.val.size() ||
        !std::is_sorted(a.row_ptr.begin(), a.row_ptr.end()))
      throw std::invalid_argument("logistic_regression: data set '" + data.name +
                                  "' has an inconsistent CSR matrix or label count");
    // Checked once here so the hot loops need no bounds checks.
    for (const std::uint32_t c : a.col)
      if (c >= a.cols)
        throw std::invalid_argument("logistic_regression: data set '" + data.name + "' has column " +
                                    std::to_string(c) + " >= dim " + std::to_string(a.cols));
    for (const double label : data.y)
      if (label != 1.0 && label != -1.0)
        throw std::invalid_argument("logistic_regression: data set '" + data.name + "' has label " +
                                    detail::format_double(label) + "; expected +1 or -1");
  }

  std::size_t dim() const noexcept { return data_->dim(); }
  std::size_t samples() const noexcept { return data_->size(); }
  double l2() const noexcept { return l2_; }
  const binary_dataset& data() const noexcept { return *data_; }

  /// f(x).
  double loss(std::span<const double> x) const {
    check_size(x, dim(), "x");
    return loss_at(x, margins(x));
  }

  /// g = grad f(x).
  void gradient(std::span<const double> x, std::span<double> g) const {
    check_size(x, dim(), "x");
    check_size(g, dim(), "g");
    gradient_at(x, margins(x), g);
  }

  /// g = grad f_j(x), dense: includes l2 * x.
  void sample_gradient(std::size_t j, std::span<const double> x, std::span<double> g) const {
    if (j >= samples())
      throw std::out_of_range("logistic_regression::sample_gradient: sample " + std::to_string(j) + " of " +
                              std::to_string(samples()));
    check_size(x, dim(), "x");
    check_size(g, dim(), "g");
    const double z = data_->y[j] * data_->a.dot_row(j, x);
    for (std::size_t i = 0; i < g.size(); ++i) g[i] = l2_ * x[i];
    data_->a.add_row(j, -data_->y[j] * detail::sigmoid(-z), g);
  }

  /// out = (Hessian of f at x) v.
  void hessian_times(std::span<const double> x, std::span<const double> v, std::span<double> out) const {
    check_size(x, dim(), "x");
    check_size(v, dim(), "v");
    check_size(out, dim(), "out");
    curvature_times(curvature(margins(x)), v, out);
  }

  /// Fraction of samples with sign(a_j.x) == y_j; a_j.x == 0 counts as wrong.
  double accuracy(std::span<const double> x) const {
    check_size(x, dim(), "x");
    std::size_t right = 0;
    for (std::size_t j = 0; j < samples(); ++j) right += data_->y[j] * data_->a.dot_row(j, x) > 0;
    return static_cast<double>(right) / static_cast<double>(samples());
  }

  // Building blocks shared with minimise(), which reuses margins and curvature weights across
  // the many Hessian products of one Newton step. Sizes are not checked here.

  /// z_j = y_j a_j.x for every sample.
  std::vector<double> margins(std::span<const double> x) const {
    std::vector<double> z(samples());
    for (std::size_t j = 0; j < z.size(); ++j) z[j] = data_->y[j] * data_->a.dot_row(j, x);
    return z;
  }

  /// f(x) given z = margins(x).
  double loss_at(std::span<const double> x, std::span<const double> z) const noexcept {
    double s = 0.0;
    for (const double zj : z) s += detail::softplus(-zj);
    return s / static_cast<double>(z.size()) + 0.5 * l2_ * detail::dot(x, x);
  }

  /// g = grad f(x) given z = margins(x).
  void gradient_at(std::span<const double> x, std::span<const double> z, std::span<double> g) const noexcept {
    for (std::size_t i = 0; i < g.size(); ++i) g[i] = l2_ * x[i];
    const double inv_m = 1.0 / static_cast<double>(z.size());
    for (std::size_t j = 0; j < z.size(); ++j) data_->a.add_row(j, -data_->y[j] * detail::sigmoid(-z[j]) * inv_m, g);
  }

  /// The Hessian's per-sample weights sigma(z_j) sigma(-z_j) given z = margins(x).
  std::vector<double> curvature(std::span<const double> z) const {
    std::vector<double> w(z.size());
    for (std::size_t j = 0; j < z.size(); ++j) w[j] = detail::sigmoid(z[j]) * detail::sigmoid(-z[j]);
    return w;
  }

  /// out = ((1/m) sum_j w_j a_j a_j^T + l2 I) v, with w = curvature(margins(x)).
  void curvature_times(std::span<const double> w, std::span<const double> v, std::span<double> out) const noexcept {
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = l2_ * v[i];
    const double inv_m = 1.0 / static_cast<double>(w.size());
    for (std::size_t j = 0; j < w.size(); ++j) data_->a.add_row(j, w[j] * inv_m * data_->a.dot_row(j, v), out);
  }

 private:
  template <class T>
  static void check_size(std::span<T> v, std::size_t n, const char* what) {
    if (v.size() != n)
      throw std::invalid_argument(std::string("logistic_regression: ") + what + " has " + std::to_string(v.size()) +
                                  " entries, expected dim = " + std::to_string(n));
  }

  const binary_dataset* data_;
  double l2_;
};

/// L = sigma_max(A)^2 / (4m), the smoothness constant of the data term (the paper's definition);
/// power iteration on A^T A from a fixed deterministic start until the Rayleigh quotient changes by
/// < 1e-12 relatively (at most 10000 iterations). An empty data set -> std::invalid_argument.
inline double smoothness(const binary_dataset& data) {
  const csr_matrix& a = data.a;
  if (a.rows == 0 || a.cols == 0) throw std::invalid_argument("smoothness: data set '" + data.name + "' is empty");
  // A fixed pseudo-random start (splitmix64, entries in [0.5, 1.5)): a constant vector could be
  // orthogonal to the top eigenvector (e.g. A = [1 -1]); this one is so only by freak chance.
  std::vector<double> v(a.cols), u(a.rows), w(a.cols);
  std::uint64_t state = 0x9e3779b97f4a7c15ull;
  for (double& vi : v) {
    std::uint64_t s = (state += 0x9e3779b97f4a7c15ull);
    s = (s ^ (s >> 30)) * 0xbf58476d1ce4e5b9ull;
    s = (s ^ (s >> 27)) * 0x94d049bb133111ebull;
    s ^= s >> 31;
    vi = 0.5 + static_cast<double>(s >> 11) * 0x1.0p-53;
  }
  const double v_norm = detail::norm(v);
  for (double& vi : v) vi /= v_norm;

  double lambda = 0.0;
  for (int it = 0; it < 10000; ++it) {
    for (std::size_t j = 0; j < a.rows; ++j) u[j] = a.dot_row(j, v);
    std::fill(w.begin(), w.end(), 0.0);
    for (std::size_t j = 0; j < a.rows; ++j) a.add_row(j, u[j], w);
    const double next = detail::dot(u, u);  // v^T A^T A v with ||v|| = 1
    const double w_norm = detail::norm(w);
    if (w_norm == 0.0) return 0.0;  // A v = 0: A is zero (or v a freak null vector)
    for (std::size_t i = 0; i < w.size(); ++i) v[i] = w[i] / w_norm;
    const bool settled = std::abs(next - lambda) < 1e-12 * next;
    lambda = next;
    if (settled) break;
  }
  return lambda / (4.0 * static_cast<double>(a.rows));
}

struct optimum {
  std::vector<double> x;
  double f;
  double gradient_norm;
  int newton_iterations;
  int cg_iterations;
};

/// Minimises f to high precision (f* for suboptimality curves): Newton's method with the Newton
/// system solved inexactly by conjugate gradients on the Hessian (relative residual
/// min(0.5, sqrt(||g||))), backtracking (Armijo) line search, start x = 0; stops when
/// ||grad f|| <= grad_tol * max(1, ||grad f(0)||). Throws std::runtime_error when max_newton
/// iterations do not reach that, and std::invalid_argument when l2 == 0 (f* needs strong convexity),
/// grad_tol is not positive and finite, or max_newton < 0.
inline optimum minimise(const logistic_regression& f, double grad_tol = 1e-10, int max_newton = 100) {
  if (!(f.l2() > 0)) throw std::invalid_argument("minimise: l2 must be > 0 (f* needs a strongly convex problem)");
  if (!(grad_tol > 0) || !std::isfinite(grad_tol))
    throw std::invalid_argument("minimise: grad_tol = " + detail::format_double(grad_tol) +
                                ", expected a finite number > 0");
  if (max_newton < 0) throw std::invalid_argument("minimise: max_newton must be >= 0");

  const std::size_t d = f.dim();
  optimum out{std::vector<double>(d, 0.0), 0.0, 0.0, 0, 0};
  std::vector<double>& x = out.x;
  std::vector<double> z = f.margins(x);
  double fx = f.loss_at(x, z);
  std::vector<double> g(d), p(d), r(d), q(d), hq(d), trial(d);
  f.gradient_at(x, z, g);
  double g_norm = detail::norm(g);
  const double target = grad_tol * std::max(1.0, g_norm);
  // CG needs at most d steps in exact arithmetic; the cap only guards against stagnation.
  const int max_cg = static_cast<int>(std::min<std::size_t>(2 * d + 10, 100000));

  while (g_norm > target) {
    if (out.newton_iterations == max_newton)
      throw std::runtime_error("minimise: Newton's method did not converge in " + std::to_string(max_newton) +
                               " iterations: ||grad f|| = " + detail::format_double(g_norm) + ", target " +
                               detail::format_double(target));
    ++out.newton_iterations;

    // Newton direction: CG from p = 0 on H p = -g. Every CG iterate is a descent direction, so
    // an early stop still gives a usable step; the forcing term tightens as ||g|| shrinks.
    const std::vector<double> w = f.curvature(z);
    const double tol = std::min(0.5, std::sqrt(g_norm)) * g_norm;
    std::fill(p.begin(), p.end(), 0.0);
    for (std::size_t i = 0; i < d; ++i) r[i] = q[i] = -g[i];
    double rr = detail::dot(r, r);
    for (int k = 0; k < max_cg && std::sqrt(rr) > tol; ++k) {
      f.curvature_times(w, q, hq);
      ++out.cg_iterations;
      const double qhq = detail::dot(q, hq);
      if (!(qhq > 0)) break;  // H is positive definite; this only guards against roundoff
      const double alpha = rr / qhq;
      for (std::size_t i = 0; i < d; ++i) {
        p[i] += alpha * q[i];
        r[i] -= alpha * hq[i];
      }
      const double rr_next = detail::dot(r, r);
      const double beta = rr_next / rr;
      rr = rr_next;
      for (std::size_t i = 0; i < d; ++i) q[i] = r[i] + beta * q[i];
    }

    // Armijo backtracking from the full Newton step. Near x*, the decrease f - f(trial) falls to
    // the rounding error of f itself, so a change within that noise is accepted too.
    const double slope = detail::dot(g, p);
    const double noise = 1e-13 * std::max(1.0, std::abs(fx));
    double t = 1.0;
    for (int halvings = 0;; ++halvings) {
      if (halvings == 60)
        throw std::runtime_error("minimise: line search failed at ||grad f|| = " + detail::format_double(g_norm));
      for (std::size_t i = 0; i < d; ++i) trial[i] = x[i] + t * p[i];
      std::vector<double> z_trial = f.margins(trial);
      const double f_trial = f.loss_at(trial, z_trial);
      if (f_trial <= fx + 1e-4 * t * slope + noise) {
        x.swap(trial);
        z.swap(z_trial);
        fx = f_trial;
        break;
      }
      t *= 0.5;
    }
    f.gradient_at(x, z, g);
    g_norm = detail::norm(g);
  }
  out.f = fx;
  out.gradient_norm = g_norm;
  return out;
}

}  // namespace repro
