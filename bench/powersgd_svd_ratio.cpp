// Measures PowerSGD's error against the best rank-r approximation (Eckart-Young, from a
// Jacobi eigenvalue routine in tests/lowrank_reference.hpp): ||M - P Q^T||_F^2 / (sum of the
// squared singular values of M beyond r), per step, for
//   (a) a fixed low-rank-plus-noise matrix, residual cleared each step (M is the same every
//       step: the warm start is subspace iteration), and the same gradient with error feedback;
//   (b) the Fashion-MNIST MLP's first layer (784 x 128) gradient along plain SGD training,
//       compressed with error feedback (M = e + lr g changes every step).
// Usage: gradcomp_powersgd_svd_ratio [fashion-mnist dir]. Prints a table (docs/powersgd.md).
#include <cstddef>
#include <cstdio>
#include <numeric>
#include <span>
#include <string>
#include <vector>

#include <gradcomp/lowrank/powersgd.hpp>

#include "../examples/fashion_mnist.hpp"
#include "../examples/mlp.hpp"
#include "../tests/lowrank_reference.hpp"

namespace gc = gradcomp;
namespace gt = gradcomp_test;

namespace {

const std::vector<int> report_steps{1, 2, 3, 5, 10, 20, 50};

/// The ratio of one step for M (rows x cols), which the step was given, and what it decoded.
double ratio(std::span<const float> m, std::span<const float> decoded, std::size_t rows, std::size_t cols, std::size_t r) {
  return gt::squared_frobenius_distance<float>(m, decoded) / gt::best_rank_error<float>(m, rows, cols, r);
}

void print_row(const char* what, std::size_t r, const std::vector<double>& ratios) {
  std::printf("| %s | %zu |", what, r);
  for (const int s : report_steps) std::printf(" %.4f |", ratios[static_cast<std::size_t>(s - 1)]);
  std::printf("\n");
}

void synthetic() {
  constexpr std::size_t n = 256, m = 128;
  const std::vector<double> sigma{10, 7, 5, 3.5, 2.5, 1.8};
  const auto g = gt::low_rank_plus_noise<float>(n, m, sigma, 0.02, 2024);
  for (const std::size_t r : {1, 2, 4}) {
    for (const bool feedback : {false, true}) {
      gc::powersgd<float> ps({{n, m}}, {.rank = r, .seed = 1});
      const std::vector<float> zero(n * m, 0.0f);
      std::vector<float> decoded(n * m), mm(n * m);
      std::vector<double> ratios;
      for (int step = 0; step < report_steps.back(); ++step) {
        if (!feedback) ps.restore(zero, ps.all_q(), ps.steps());
        for (std::size_t i = 0; i < mm.size(); ++i) mm[i] = ps.residual()[i] + g[i];
        ps.step(gc::exec::seq, std::span<const float>(g), 1.0f, std::span<float>(decoded), [](std::span<float>) {});
        ratios.push_back(ratio(mm, decoded, n, m, r));
      }
      print_row(feedback ? "256x128 low rank + noise, error feedback" : "256x128 low rank + noise, fixed M", r, ratios);
    }
  }
}

void fashion_mnist_mlp(const std::string& dir) {
  using examples::mlp;
  const auto train = fashion_mnist::load_split(dir, "train");
  mlp net;
  std::vector<float> params = mlp::he_init(20240607), grad(mlp::size), x;
  std::vector<std::uint8_t> y;
  constexpr std::size_t batch = 64;
  const float lr = 0.1f;
  for (const std::size_t r : {1, 2, 4}) {
    std::vector<float> p = params;
    gc::powersgd<float> ps({{mlp::in, mlp::hidden}}, {.rank = r, .seed = 1});
    std::vector<float> decoded(mlp::in * mlp::hidden), mm(decoded.size());
    std::vector<double> ratios;
    for (int step = 0; step < report_steps.back(); ++step) {
      std::vector<std::uint32_t> ids(batch);
      std::iota(ids.begin(), ids.end(), static_cast<std::uint32_t>(step * batch));
      examples::gather_batch(train, ids, x, y);
      net.loss_and_gradient(p, x, y, grad);
      const std::span<const float> g1(grad.data() + mlp::w1, mlp::in * mlp::hidden);
      for (std::size_t i = 0; i < mm.size(); ++i) mm[i] = ps.residual()[i] + lr * g1[i];
      ps.step(gc::exec::seq, g1, lr, std::span<float>(decoded), [](std::span<float>) {});
      ratios.push_back(ratio(mm, decoded, mlp::in, mlp::hidden, r));
      // Train on: W1 with PowerSGD's update, the rest with plain SGD.
      for (std::size_t i = 0; i < decoded.size(); ++i) p[mlp::w1 + i] -= decoded[i];
      for (std::size_t i = mlp::b1; i < mlp::size; ++i) p[i] -= lr * grad[i];
    }
    print_row("Fashion-MNIST MLP W1 (784x128), error feedback", r, ratios);
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::printf("| matrix | r |");
  for (const int s : report_steps) std::printf(" step %d |", s);
  std::printf("\n|---|---|");
  for (std::size_t i = 0; i < report_steps.size(); ++i) std::printf("---|");
  std::printf("\n");
  synthetic();
  fashion_mnist_mlp(argc > 1 ? argv[1] : std::string(fashion_mnist::debian_dir));
}
