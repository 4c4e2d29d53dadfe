#pragma once
// The examples' model: a 784-128-10 MLP on Fashion-MNIST with one flat parameter vector,
// and the helpers to batch images and measure test accuracy. Header-only, standard library
// only; shared by the demo (compress_table.cpp) and the MPI example (mpi_training.cpp).
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <random>
#include <span>
#include <vector>

#include "fashion_mnist.hpp"

namespace examples {

// The model: a 784-128-10 MLP with one flat parameter vector, because a compressor sees the
// gradient of all layers as one vector of dimension d (as in data-parallel training, where
// the whole gradient is one all-reduce buffer).

class mlp {
 public:
  static constexpr std::size_t in = 784, hidden = 128, out = 10;
  // Layout of the flat vector. W1 is stored input-major ([in][hidden]) and W2 [hidden][out],
  // so the inner loops below are axpy's over contiguous rows, which the compiler vectorizes
  // without reassociating sums (dot products would need -ffast-math).
  static constexpr std::size_t w1 = 0, b1 = w1 + in * hidden, w2 = b1 + hidden, b2 = w2 + hidden * out, size = b2 + out;

  /// He initialisation (normal, std sqrt(2 / fan_in)) with zero biases, from a fixed seed.
  static std::vector<float> he_init(std::uint64_t seed) {
    std::vector<float> p(size, 0.0f);
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> n1(0.0f, std::sqrt(2.0f / in)), n2(0.0f, std::sqrt(2.0f / hidden));
    for (std::size_t i = 0; i < in * hidden; ++i) p[w1 + i] = n1(rng);
    for (std::size_t i = 0; i < hidden * out; ++i) p[w2 + i] = n2(rng);
    return p;
  }

  /// Mean softmax cross-entropy over the n = y.size() images in x (n * in pixels in [0, 1]);
  /// writes its gradient with respect to params into grad.
  double loss_and_gradient(std::span<const float> params, std::span<const float> x, std::span<const std::uint8_t> y,
                           std::span<float> grad) {
    const std::size_t n = y.size();
    const double loss = forward(params, x, y);

    // Softmax cross-entropy: d loss / d logits = (softmax - onehot) / n; probs_ holds softmax.
    for (std::size_t b = 0; b < n; ++b) {
      float* dz = &probs_[b * out];
      dz[y[b]] -= 1.0f;
      for (std::size_t c = 0; c < out; ++c) dz[c] /= static_cast<float>(n);
    }
    std::fill(grad.begin(), grad.end(), 0.0f);
    dh_.assign(n * hidden, 0.0f);
    for (std::size_t b = 0; b < n; ++b) {
      const float* dz = &probs_[b * out];
      const float* h = &h_[b * hidden];
      float* dh = &dh_[b * hidden];
      for (std::size_t c = 0; c < out; ++c) grad[b2 + c] += dz[c];
      for (std::size_t j = 0; j < hidden; ++j) {
        float back = 0.0f;
        for (std::size_t c = 0; c < out; ++c) {
          grad[w2 + j * out + c] += h[j] * dz[c];
          back += params[w2 + j * out + c] * dz[c];
        }
        dh[j] = h[j] > 0.0f ? back : 0.0f;  // ReLU
      }
      for (std::size_t j = 0; j < hidden; ++j) grad[b1 + j] += dh[j];
      const float* xb = &x[b * in];
      for (std::size_t i = 0; i < in; ++i) {
        if (xb[i] == 0.0f) continue;  // about half of the pixels are background
        float* g = &grad[w1 + i * hidden];
        for (std::size_t j = 0; j < hidden; ++j) g[j] += xb[i] * dh[j];
      }
    }
    return loss;
  }

  /// Number of images in x classified correctly.
  std::size_t count_correct(std::span<const float> params, std::span<const float> x, std::span<const std::uint8_t> y) {
    forward(params, x, y);
    std::size_t correct = 0;
    for (std::size_t b = 0; b < y.size(); ++b) {
      const float* p = &probs_[b * out];
      correct += static_cast<std::size_t>(std::max_element(p, p + out) - p) == y[b];
    }
    return correct;
  }

 private:
  /// Fills h_ (hidden activations) and probs_ (softmax); returns the mean cross-entropy.
  double forward(std::span<const float> params, std::span<const float> x, std::span<const std::uint8_t> y) {
    const std::size_t n = y.size();
    h_.resize(n * hidden);
    probs_.resize(n * out);
    double loss = 0.0;
    for (std::size_t b = 0; b < n; ++b) {
      float* h = &h_[b * hidden];
      std::copy_n(&params[b1], hidden, h);
      const float* xb = &x[b * in];
      for (std::size_t i = 0; i < in; ++i) {
        if (xb[i] == 0.0f) continue;
        const float* w = &params[w1 + i * hidden];
        for (std::size_t j = 0; j < hidden; ++j) h[j] += xb[i] * w[j];
      }
      for (std::size_t j = 0; j < hidden; ++j) h[j] = std::max(h[j], 0.0f);

      float* z = &probs_[b * out];
      std::copy_n(&params[b2], out, z);
      for (std::size_t j = 0; j < hidden; ++j)
        for (std::size_t c = 0; c < out; ++c) z[c] += h[j] * params[w2 + j * out + c];
      // Stable softmax and log-sum-exp.
      const float zmax = *std::max_element(z, z + out);
      double sum = 0.0;
      for (std::size_t c = 0; c < out; ++c) sum += std::exp(static_cast<double>(z[c] - zmax));
      loss += std::log(sum) - static_cast<double>(z[y[b]] - zmax);
      for (std::size_t c = 0; c < out; ++c) z[c] = static_cast<float>(std::exp(static_cast<double>(z[c] - zmax)) / sum);
    }
    return loss / static_cast<double>(n);
  }

  std::vector<float> h_, probs_, dh_;
};

/// Pixels of the listed images scaled to [0, 1], and their labels.
inline void gather_batch(const fashion_mnist::labelled_images& data, std::span<const std::uint32_t> ids, std::vector<float>& x,
                  std::vector<std::uint8_t>& y) {
  const std::size_t ppi = data.x.pixels_per_image();
  x.resize(ids.size() * ppi);
  y.resize(ids.size());
  for (std::size_t b = 0; b < ids.size(); ++b) {
    const std::uint8_t* img = data.x.image(ids[b]);
    for (std::size_t i = 0; i < ppi; ++i) x[b * ppi + i] = static_cast<float>(img[i]) / 255.0f;
    y[b] = data.labels[ids[b]];
  }
}

inline double test_accuracy(mlp& net, std::span<const float> params, const fashion_mnist::labelled_images& test) {
  std::vector<float> x;
  std::vector<std::uint8_t> y;
  std::vector<std::uint32_t> ids;
  std::size_t correct = 0;
  for (std::size_t start = 0; start < test.size(); start += 500) {
    ids.resize(std::min<std::size_t>(500, test.size() - start));
    std::iota(ids.begin(), ids.end(), static_cast<std::uint32_t>(start));
    gather_batch(test, ids, x, y);
    correct += net.count_correct(params, x, y);
  }
  return static_cast<double>(correct) / static_cast<double>(test.size());
}

}  // namespace examples
