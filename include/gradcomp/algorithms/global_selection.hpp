#pragma once
// The global Top-k of values spread over ranks, exactly: the k entries of largest magnitude
// among the nonzero ones, ties broken by the lower index, the same set on every rank. Radix
// select on magnitude keys (bits.hpp), 8 bits a round from the top: every rank counts its
// candidates per digit value, the counts are summed over the ranks (an allreduce of 256
// doubles, exact below 2^53), and the digit where the k-th largest key lies is fixed. At most
// sizeof(T) rounds; fewer when a digit's bin holds exactly the entries still needed.
//
// The rule it returns: take every key > `above`, and, if `has_equal`, the first `take_equal`
// (by global index) of the keys == `equal`. A caller that holds every candidate takes them
// itself; ranks that each hold a contiguous region take their share of the ties by the
// count in the regions below theirs (one allgather of a count).
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "../detail/bits.hpp"

namespace gradcomp::detail {

inline constexpr int selection_digit_bits = 8;
inline constexpr std::size_t selection_bins = std::size_t{1} << selection_digit_bits;

template <class Key>
struct selection_rule {
  bool everything = false;  // at most k candidates: take them all
  Key above = 0;            // take every key > above ...
  bool has_equal = false;   // ... and, if has_equal, some of the keys == equal:
  Key equal = 0;
  std::uint64_t take_equal = 0;   // how many of them (lowest global index first)
  std::uint64_t count_equal = 0;  // how many there are over all ranks
  int rounds = 0;                 // histogram reductions it took

  /// Whether ties must be shared out (some keys == equal are taken, not all).
  bool splits_ties() const noexcept { return has_equal && take_equal < count_equal; }
};

/// The selection from a histogram source: histogram(prefix, mask, shift, hist) fills the 256
/// counts, summed over the ranks, of the candidate keys with (key & mask) == prefix, binned by
/// (key >> shift) & 255. The one place the rule is decided; a back end supplies its counting.
template <class Key, class Histogram>
selection_rule<Key> select_largest_from(std::uint64_t k, Histogram&& histogram) {
  constexpr int bits = static_cast<int>(sizeof(Key) * 8);
  selection_rule<Key> rule;
  std::array<double, selection_bins> hist;
  Key prefix = 0, mask = 0;
  std::uint64_t needed = k;
  for (int shift = bits - selection_digit_bits; shift >= 0; shift -= selection_digit_bits) {
    hist.fill(0.0);
    histogram(prefix, mask, shift, std::span<double>(hist));
    ++rule.rounds;
    if (shift == bits - selection_digit_bits) {
      double total = 0.0;
      for (const double c : hist) total += c;
      if (total <= static_cast<double>(k)) {
        rule.everything = true;
        return rule;
      }
    }
    std::uint64_t above = 0;
    std::size_t bin = selection_bins;
    while (bin-- > 0) {
      const auto c = static_cast<std::uint64_t>(hist[bin]);
      if (above + c >= needed) break;
      above += c;
    }
    needed -= above;
    const auto count = static_cast<std::uint64_t>(hist[bin]);
    prefix |= static_cast<Key>(static_cast<Key>(bin) << shift);
    mask |= static_cast<Key>(static_cast<Key>(selection_bins - 1) << shift);
    if (count == needed) {  // the whole bin is taken: every key >= its lowest key
      rule.above = static_cast<Key>(prefix - 1);  // prefix > 0: a key of 0 is never a candidate
      return rule;
    }
    if (shift == 0) {
      rule.above = prefix;
      rule.has_equal = true;
      rule.equal = prefix;
      rule.take_equal = needed;
      rule.count_equal = count;
    }
  }
  return rule;
}

/// keys: this rank's candidates (magnitude keys of nonzero values), counted here; reduce(hist)
/// sums a histogram of selection_bins doubles over the ranks in place (identity for one holder).
template <class Key, class Reduce>
selection_rule<Key> select_largest(std::span<const Key> keys, std::uint64_t k, Reduce&& reduce) {
  return select_largest_from<Key>(k, [&](Key prefix, Key mask, int shift, std::span<double> hist) {
    for (const Key key : keys)
      if ((key & mask) == prefix) hist[static_cast<std::size_t>((key >> shift) & (selection_bins - 1))] += 1.0;
    reduce(hist);
  });
}

}  // namespace gradcomp::detail
