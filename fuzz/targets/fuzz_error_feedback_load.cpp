// Fuzz target: error_feedback<C, T>::load on arbitrary bytes, for a few compressors and both
// value types, written against the public API only: load either throws gc::error and leaves
// the instance as it was (its save() is unchanged), or accepts, and then save() writes back
// exactly the bytes load consumed (reject or round-trip: a checkpoint load accepts has one
// encoding).
//
// Checkpoints end with a checksum, which random bytes almost never match; so every input is
// also tried with the checksum recomputed where the header says it sits (docs/error-feedback.md
// gives the layout), to reach the checks behind it.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <gradcomp/compressors/hard_threshold.hpp>
#include <gradcomp/compressors/onebit.hpp>
#include <gradcomp/compressors/qsgd.hpp>
#include <gradcomp/compressors/random_k.hpp>
#include <gradcomp/compressors/scaled_sign.hpp>
#include <gradcomp/compressors/top_k.hpp>
#include <gradcomp/feedback/error_feedback.hpp>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include "fuzz_support.hpp"

namespace {

using namespace gradcomp_fuzz;

// load used to accept any value in the compressor-step field of a compressor without a step
// (save() writes 0 there), so two checkpoints loaded to the same state. It now rejects a
// nonzero step there; while this were true, the target would compare everything but that
// field (and the checksum, which covers it).
constexpr bool tolerate_unchecked_step_field = false;

/// Offset of the compressor-step field: after the 24-byte prefix, the name, three u64
/// counters, the total error (f64) and the has-step flag (u8).
std::size_t step_field_offset(const std::string& bytes) {
  return 24 + static_cast<std::size_t>(load_le(reinterpret_cast<const std::byte*>(bytes.data()) + 12, 4)) + 33;
}

/// FNV-1a 64 of bytes (the checkpoint's checksum, as the format documents it).
std::uint64_t fnv1a(const std::string& s, std::size_t n) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (std::size_t i = 0; i < n; ++i) h = (h ^ static_cast<unsigned char>(s[i])) * 0x100000001b3ULL;
  return h;
}

/// bytes with the checksum recomputed, when the header (name length at 12, dim at 16) puts the
/// end of a checkpoint of value size `value_bytes` inside them; else bytes as they are.
std::string with_checksum(std::string bytes, std::size_t value_bytes) {
  if (bytes.size() < 24) return bytes;
  const auto* p = reinterpret_cast<const std::byte*>(bytes.data());
  const std::uint64_t name = load_le(p + 12, 4), dim = load_le(p + 16, 8);
  if (name > bytes.size() || dim > bytes.size()) return bytes;
  const std::uint64_t total = 24 + name + 8 * 4 + 1 + 8 + dim * value_bytes + 8;
  if (total > bytes.size()) return bytes;
  const std::uint64_t sum = fnv1a(bytes, total - 8);
  for (int b = 0; b < 8; ++b) bytes[total - 8 + b] = static_cast<char>((sum >> (8 * b)) & 0xff);
  return bytes;
}

std::string saved(const auto& ef) {
  std::ostringstream out;
  ef.save(out);
  return out.str();
}

template <class T, class C>
void run(const std::string& input, const C& compressor) {
  // The dimension the checkpoint claims, when it is small enough to hold; else a small one
  // (and load must then reject the mismatch).
  std::size_t dim = 3;
  if (input.size() >= 24) {
    const std::uint64_t d = load_le(reinterpret_cast<const std::byte*>(input.data()) + 16, 8);
    if (d <= input.size()) dim = static_cast<std::size_t>(d);
  }
  gc::error_feedback<C, T> ef(compressor, dim);
  std::vector<T> g(dim);
  for (std::size_t i = 0; i < dim; ++i) g[i] = static_cast<T>(static_cast<double>(i % 7) * 0.25 - 0.6);
  ef.compress(gc::exec::seq, std::span<const T>(g));  // a state that a failed load must keep
  const std::string before = saved(ef);

  for (const bool fix : {false, true}) {
    const std::string bytes = fix ? with_checksum(input, sizeof(T)) : input;
    std::istringstream in(bytes);
    try {
      ef.load(in);
    } catch (const gc::error&) {
      GRADCOMP_FUZZ_CHECK(saved(ef) == before);
      continue;
    }
    // Accepted: save() gives back what load read (load leaves bytes after the checkpoint in
    // the stream: a checkpoint may sit inside a larger file).
    const std::streamoff consumed = in.tellg();
    const std::size_t read = consumed < 0 ? bytes.size() : static_cast<std::size_t>(consumed);
    std::string again = saved(ef), got = bytes.substr(0, read);
    if (tolerate_unchecked_step_field && !gc::seeded_compressor<C> && again != got && got.size() == again.size()) {
      const std::size_t step_at = step_field_offset(got);
      for (std::string* s : {&again, &got}) {
        std::fill(s->begin() + static_cast<std::ptrdiff_t>(step_at),
                  s->begin() + static_cast<std::ptrdiff_t>(step_at + 8), '\0');
        std::fill(s->end() - 8, s->end(), '\0');  // the checksum covers the step field
      }
    }
    if (again != got) {
      std::fprintf(stderr, "error_feedback<%s>::load accepted %zu bytes that save() writes differently\n",
                   std::string(C::name).c_str(), read);
      for (std::size_t i = 0; i < read && i < again.size(); ++i)
        if (again[i] != got[i]) {
          std::fprintf(stderr, "first difference at byte %zu: read 0x%02x, save writes 0x%02x\n", i,
                       static_cast<unsigned char>(got[i]), static_cast<unsigned char>(again[i]));
          break;
        }
      GRADCOMP_FUZZ_CHECK(again == got);
    }
    // Put the state back for the next variant.
    std::istringstream restore(before);
    ef.load(restore);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  run<float>(input, gc::top_k{.k = 2});
  run<double>(input, gc::hard_threshold{.lambda = 0.3});
  run<double>(input, gc::random_k{.k = 2, .seed = 9, .step = 4});
  run<float>(input, gc::qsgd{.s = 4, .seed = 1});
  run<float>(input, gc::scaled_sign{});
  run<double>(input, gc::onebit{.block_size = 4});
  return 0;
}
