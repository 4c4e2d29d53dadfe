// Tests for apps/reproduce/samples.hpp: the canonical order of the rows, the seeded shuffle
// and the workers' blocks, so that results depend on the seed and not on the file's order.
#include <doctest/doctest.h>

#include <gradcomp/distributed.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "convex.hpp"
#include "samples.hpp"

namespace gc = gradcomp;

namespace {

/// LIBSVM lines: 120 rows of 6 features, both labels, with a few awkward cases: duplicate
/// rows, rows that are prefixes of others, an explicit zero and a -0, an empty row.
std::vector<std::string> libsvm_lines() {
  std::vector<std::string> lines;
  std::uint64_t state = 99;
  const auto next = [&] {  // a fixed LCG, so the data do not depend on the library's generators
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<double>(state >> 11) / 9007199254740992.0;
  };
  for (int i = 0; i < 120; ++i) {
    std::ostringstream line;
    double score = 0;
    line.precision(17);
    std::ostringstream features;
    features.precision(17);
    for (int j = 1; j <= 6; ++j) {
      if (next() < 0.3) continue;
      const double v = std::round((next() * 2 - 1) * 8) / 8;  // few distinct values: many ties
      score += (j % 2 ? 1.0 : -1.0) * v;
      features << ' ' << j << ':' << v;
    }
    line << (score > 0 ? "+1" : "-1") << features.str();
    lines.push_back(line.str());
  }
  for (const char* extra : {"+1 1:0.5", "+1 1:0.5", "+1 1:0.5 2:0.25", "-1 3:0", "-1 3:-0", "-1", "+1", "-1 3:0"})
    lines.push_back(extra);
  return lines;
}

repro::binary_dataset parse_lines(const std::vector<std::string>& lines) {
  std::string text;
  for (const auto& l : lines) text += l + "\n";
  std::istringstream in(text);
  return repro::parse_libsvm(in, "rows");
}

/// The stored content of row r: label, then (index, value bits) pairs.
std::vector<std::uint64_t> row_content(const repro::binary_dataset& d, std::size_t r) {
  std::vector<std::uint64_t> out{std::bit_cast<std::uint64_t>(d.y[r])};
  for (std::size_t k = 0; k < d.a.cols_of(r).size(); ++k) {
    out.push_back(d.a.cols_of(r)[k]);
    out.push_back(std::bit_cast<std::uint64_t>(d.a.values_of(r)[k]));
  }
  return out;
}

void check_same_data(const repro::binary_dataset& a, const repro::binary_dataset& b) {
  CHECK(a.a.rows == b.a.rows);
  CHECK(a.a.cols == b.a.cols);
  CHECK(a.a.row_ptr == b.a.row_ptr);
  CHECK(a.a.col == b.a.col);
  REQUIRE(a.a.val.size() == b.a.val.size());
  for (std::size_t i = 0; i < a.a.val.size(); ++i)
    CHECK(std::bit_cast<std::uint64_t>(a.a.val[i]) == std::bit_cast<std::uint64_t>(b.a.val[i]));
  CHECK(a.y == b.y);
}

/// The permutations of the file the tests try: as written, sorted by class, reversed, shuffled.
std::vector<std::vector<std::string>> orders_of(const std::vector<std::string>& lines) {
  std::vector<std::vector<std::string>> orders{lines};
  auto by_class = lines;
  std::stable_sort(by_class.begin(), by_class.end(),
                   [](const std::string& a, const std::string& b) { return a[0] < b[0]; });
  orders.push_back(by_class);
  orders.emplace_back(lines.rbegin(), lines.rend());
  for (unsigned seed : {1u, 2u, 3u}) {
    auto shuffled = lines;
    std::shuffle(shuffled.begin(), shuffled.end(), std::mt19937(seed));
    orders.push_back(shuffled);
  }
  return orders;
}

}  // namespace

TEST_CASE("repro samples: seeded_permutation is a permutation, fixed by the seed on every platform") {
  const auto p = repro::seeded_permutation(1000, 42);
  std::vector<std::size_t> sorted = p;
  std::sort(sorted.begin(), sorted.end());
  std::vector<std::size_t> identity(1000);
  std::iota(identity.begin(), identity.end(), std::size_t{0});
  CHECK(sorted == identity);
  CHECK(p != identity);
  CHECK(repro::seeded_permutation(1000, 42) == p);
  CHECK(repro::seeded_permutation(1000, 43) != p);
  // Pinned (and checked against an independent Python implementation): splitmix64 and
  // Fisher-Yates use no std:: distribution, so these are the same everywhere and never change.
  CHECK(repro::seeded_permutation(10, 1) == std::vector<std::size_t>{4, 2, 8, 1, 9, 3, 0, 6, 7, 5});
  CHECK(repro::seeded_permutation(0, 1).empty());
  CHECK(repro::seeded_permutation(1, 1) == std::vector<std::size_t>{0});
  repro::splitmix64 g(7);
  for (int i = 0; i < 1000; ++i) CHECK(g.below(3) < 3);
  CHECK(repro::splitmix64(7).below(1) == 0);
}

TEST_CASE("repro samples: worker_rows gives disjoint equal blocks covering all rows, set by the seed") {
  for (const int workers : {1, 3, 7, 20}) {
    std::vector<std::size_t> all;
    std::size_t smallest = 1000, largest = 0;
    for (int r = 0; r < workers; ++r) {
      const auto mine = repro::worker_rows(101, workers, r, 5);
      smallest = std::min(smallest, mine.size());
      largest = std::max(largest, mine.size());
      all.insert(all.end(), mine.begin(), mine.end());
    }
    std::sort(all.begin(), all.end());
    std::vector<std::size_t> identity(101);
    std::iota(identity.begin(), identity.end(), std::size_t{0});
    CHECK(all == identity);
    CHECK(largest - smallest <= 1);
  }
  // Not the file's blocks, and another seed gives another assignment.
  const auto seed1 = repro::worker_rows(400, 4, 0, 1);
  const auto seed2 = repro::worker_rows(400, 4, 0, 2);
  CHECK(seed1 != seed2);
  CHECK(std::set<std::size_t>(seed1.begin(), seed1.end()) != std::set<std::size_t>(seed2.begin(), seed2.end()));
  CHECK(*std::max_element(seed1.begin(), seed1.end()) >= 100);
  CHECK(repro::worker_rows(400, 4, 0, 1) == seed1);
  CHECK(repro::worker_rows(10, 2, 0, 1) == std::vector<std::size_t>{4, 6, 3, 8, 9});  // pinned, as above
  CHECK(repro::worker_rows(10, 2, 1, 1) == std::vector<std::size_t>{7, 1, 5, 0, 2});
  CHECK_THROWS_AS(repro::worker_rows(3, 4, 0, 1), std::invalid_argument);
  CHECK_THROWS_AS(repro::worker_rows(10, 2, 2, 1), std::invalid_argument);
  CHECK_THROWS_AS(repro::worker_rows(10, 0, 0, 1), std::invalid_argument);
}

TEST_CASE("repro samples: any permutation of a file's rows gives the same data and worker assignment") {
  const auto lines = libsvm_lines();
  const repro::binary_dataset reference = repro::canonical(parse_lines(lines));
  // Canonical: -1 rows first, then by content; identical rows are next to each other.
  CHECK(std::is_sorted(reference.y.begin(), reference.y.end()));
  const std::vector<std::size_t> order = repro::canonical_order(reference);
  CHECK(std::is_sorted(order.begin(), order.end()));
  for (const auto& order : orders_of(lines)) {
    const repro::binary_dataset d = repro::canonical(parse_lines(order));
    check_same_data(d, reference);
    for (const std::uint64_t seed : {1u, 2u})
      for (int r = 0; r < 5; ++r) {
        const auto mine = repro::worker_rows(d.size(), 5, r, seed);
        CHECK(mine == repro::worker_rows(reference.size(), 5, r, seed));
        for (const std::size_t row : mine) CHECK(row_content(d, row) == row_content(reference, row));
      }
    // And a subset drawn with a seed is the same rows.
    check_same_data(repro::seeded_sample(d, 50, 3), repro::seeded_sample(reference, 50, 3));
  }
  // The rows "-1 3:0", "-1 3:-0", "-1 3:0" are ordered -0 first, not left in file order.
  std::vector<bool> zero_signs;
  for (std::size_t r = 0; r < reference.size(); ++r)
    if (reference.y[r] == -1 && reference.a.cols_of(r).size() == 1 && reference.a.cols_of(r)[0] == 2 &&
        reference.a.values_of(r)[0] == 0.0)
      zero_signs.push_back(std::signbit(reference.a.values_of(r)[0]));
  CHECK(zero_signs == std::vector<bool>{true, false, false});
}

TEST_CASE("repro samples: seeded_sample keeps a seeded subset in canonical order") {
  const repro::binary_dataset d = repro::canonical(parse_lines(libsvm_lines()));
  const auto half = repro::seeded_sample(d, 64, 1);
  CHECK(half.size() == 64);
  CHECK(half.dim() == d.dim());
  check_same_data(repro::canonical(half), half);
  CHECK(repro::seeded_sample(d, 0, 1).size() == d.size());
  CHECK(repro::seeded_sample(d, 10000, 1).size() == d.size());
  const auto other = repro::seeded_sample(d, 64, 2);
  CHECK((other.a.col != half.a.col || other.a.val != half.a.val || other.y != half.y));
}

TEST_CASE("repro samples: Fashion-MNIST images in any order give the same canonical set") {
  fashion_mnist::labelled_images images;
  images.x.rows = 1;
  images.x.cols = 3;
  std::mt19937 rng(4);
  for (int i = 0; i < 40; ++i) {
    for (int k = 0; k < 3; ++k) images.x.pixels.push_back(static_cast<std::uint8_t>(rng() % 3));
    images.labels.push_back(static_cast<std::uint8_t>(rng() % 4));
  }
  images.x.count = images.labels.size();
  const auto reference = repro::canonical(images);
  CHECK(std::is_sorted(reference.labels.begin(), reference.labels.end()));
  for (unsigned seed : {1u, 2u, 3u}) {
    std::vector<std::size_t> p(images.size());
    std::iota(p.begin(), p.end(), std::size_t{0});
    std::shuffle(p.begin(), p.end(), std::mt19937(seed));
    const auto d = repro::canonical(repro::select_images(images, p));
    CHECK(d.labels == reference.labels);
    CHECK(d.x.pixels == reference.x.pixels);
    const auto sample = repro::seeded_sample(d, 10, 9);
    CHECK(sample.size() == 10);
    CHECK(sample.x.pixels == repro::seeded_sample(reference, 10, 9).x.pixels);
  }
  auto broken = images;
  broken.labels.pop_back();
  CHECK_THROWS_AS(repro::canonical(broken), std::invalid_argument);
}

TEST_CASE("repro samples: a convex run on the rows sorted by class is the same run, bit for bit") {
  const auto lines = libsvm_lines();
  auto by_class = lines;
  std::stable_sort(by_class.begin(), by_class.end(),
                   [](const std::string& a, const std::string& b) { return a[0] > b[0]; });
  const repro::convex_problem p = repro::make_convex_problem(parse_lines(lines));
  const repro::convex_problem q = repro::make_convex_problem(parse_lines(by_class));
  CHECK(p.smoothness == q.smoothness);
  CHECK(p.best.f == q.best.f);
  repro::convex_settings s;
  s.workers = 4;
  s.epochs = 2;
  const auto plan = repro::plan_of(p, s);
  const auto run = [&](const repro::convex_problem& problem, std::uint64_t seed) {
    std::vector<double> objective;
    gc::comm::local_group::run(4, [&](gc::comm::local_communicator& comm) {
      const repro::run_request req{.method = "m",
                                   .seed = seed,
                                   .steps = plan.steps,
                                   .log_at = repro::log_schedule(plan.steps, plan.log_every),
                                   .bar = nullptr};
      const auto out = repro::run_convex(comm, problem, s, gc::top_k{.k = 1}, req);
      if (comm.rank() == 0)
        for (const auto& point : out.record.points) objective.push_back(point.objective);
    });
    return objective;
  };
  const auto a = run(p, 1);
  CHECK(a == run(q, 1));
  CHECK(a != run(p, 2));  // the seed decides
}
