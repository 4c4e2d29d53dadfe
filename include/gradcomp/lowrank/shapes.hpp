#pragma once
// The shapes of a model's tensors for low-rank compression (PowerSGD), and which of them are
// compressed.
//
// A model is one flat vector holding its tensors one after another (tensor 0 first), as the
// tensor lists of multi_tensor.hpp concatenate them; each tensor is a rows x cols matrix in
// row-major order. A 1-D tensor (a bias) is {1, d} (or {d, 1}); a convolution's weight
// (out, in, kh, kw) is {out, in * kh * kw}, the usual reshape.
//
// The skip rule: rank r saves bytes on a rows x cols matrix only if its factors P (rows x r)
// and Q (cols x r) hold fewer values than the matrix, r (rows + cols) < rows cols. Tensors
// where they would not (every 1-D tensor among them, since r (1 + d) > d) are sent
// uncompressed: all-reduced as they are, which is exact up to the mean's rounding, so they
// need no residual.
#include <cstddef>
#include <span>
#include <vector>

#include "../detail/bits.hpp"
#include "../error.hpp"

namespace gradcomp {

/// A tensor seen as a rows x cols matrix, row-major.
struct tensor_shape {
  std::size_t rows = 0;
  std::size_t cols = 0;
  friend bool operator==(const tensor_shape&, const tensor_shape&) = default;
};

namespace lowrank {

/// Whether rank r compresses a matrix of this shape: r (rows + cols) < rows * cols (the
/// factors are smaller than the matrix). Written without overflow for any sizes.
constexpr bool compresses(tensor_shape s, std::size_t r) noexcept {
  if (r == 0 || s.rows == 0 || s.cols == 0) return false;
  // Integer arithmetic; each product is checked for overflow before it is formed.
  const std::size_t max = static_cast<std::size_t>(-1);
  if (s.rows > max - s.cols) return true;  // rows + cols overflows: a gigantic matrix
  const std::size_t sum = s.rows + s.cols;
  if (r > max / sum) return false;                   // r (rows + cols) overflows: r is too large
  if (s.rows > max / s.cols) return true;            // rows cols overflows: far larger than r (rows + cols)
  return r * sum < s.rows * s.cols;
}

/// Where each tensor lives in the flat model vector and in the factor buffers.
struct tensor_slot {
  tensor_shape shape;
  std::size_t offset = 0;    // first element in the flat model vector
  bool compressed = false;   // the skip rule's verdict for the scheme's rank
  std::size_t p_offset = 0;  // compressed: first value of P (rows x r) in the P buffer
  std::size_t q_offset = 0;  // compressed: first value of Q (cols x r) in the Q buffer
};

/// The layout of a model for rank r: every tensor's slot, the model's dimension, and the
/// sizes of the uncompressed values and of the P and Q buffers (all tensors' factors, in
/// tensor order).
struct model_layout {
  std::vector<tensor_slot> tensors;
  std::size_t dim = 0;                 // total elements
  std::size_t uncompressed_values = 0; // elements of the tensors sent as they are
  std::size_t p_values = 0;            // sum of rows * r over compressed tensors
  std::size_t q_values = 0;            // sum of cols * r over compressed tensors
  std::size_t rank = 0;

  /// Throws gc::error if a size overflows. Empty tensors are allowed (sent as they are: nothing).
  static model_layout of(std::span<const tensor_shape> shapes, std::size_t r, const char* where) {
    model_layout l;
    l.rank = r;
    l.tensors.reserve(shapes.size());
    for (const tensor_shape s : shapes) {
      tensor_slot t{.shape = s, .offset = l.dim, .compressed = compresses(s, r)};
      const std::size_t size = detail::checked_mul(s.rows, s.cols, where, "a tensor's size");
      l.dim = detail::checked_add(l.dim, size, where, "the model's size");
      if (t.compressed) {
        t.p_offset = l.p_values;
        t.q_offset = l.q_values;
        l.p_values = detail::checked_add(l.p_values, s.rows * r, where, "the size of P");
        l.q_values = detail::checked_add(l.q_values, s.cols * r, where, "the size of Q");
      } else {
        l.uncompressed_values += size;
      }
      l.tensors.push_back(t);
    }
    return l;
  }

  std::size_t size_of(const tensor_slot& t) const noexcept { return t.shape.rows * t.shape.cols; }
};

}  // namespace lowrank

}  // namespace gradcomp
