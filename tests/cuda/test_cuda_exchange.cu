// Device-side exchanges (docs/device-exchanges.md): gc::cuda::comm::thread_group's collectives
// (sizes, rank-order sums bit for bit against comm::local_communicator, mismatches failing on
// every rank, a throwing rank releasing the others), and gc::cuda::sparse_exchange on 1 to 6
// thread ranks against the host's gc::detail::sparse_exchange over comm::local_group on the
// same messages, bit for bit: mean, selection, unsent entries, regions, every message's bytes;
// failures and skips on every rank. Compiled in CI, never run there (no GPU: main.cpp exits 77).
//
// Built twice: into gradcomp_cuda_tests (everything but NCCL), and with
// GRADCOMP_CUDA_EXCHANGE_NCCL_ONLY into gradcomp_nccl_tests (tests/CMakeLists.txt, where
// gradcomp::nccl exists): only the one-rank NCCL smoke test of the collectives' plumbing, with
// the fewest headers (it compiles in CI too), so that gradcomp_cuda_tests needs no libnccl where
// it runs. NCCL refuses two ranks on one GPU, hence one rank.
//
// Rank threads record what they see and the test thread checks it (a failing REQUIRE inside a
// rank thread aborts its group, which fails the test case).
#if defined(GRADCOMP_CUDA_EXCHANGE_NCCL_ONLY)

#include <doctest/doctest.h>

#include <cuda_runtime_api.h>

#include <gradcomp/cuda/comm/device_communicator.cuh>
#include <gradcomp/nccl/communicator.cuh>

#include <cstring>
#include <span>
#include <vector>

namespace gc = gradcomp;

namespace {

void ok(cudaError_t status) { REQUIRE_MESSAGE(status == cudaSuccess, cudaGetErrorString(status)); }

template <class T>
gc::cuda::device_buffer<T> upload(const std::vector<T>& host) {
  gc::cuda::device_buffer<T> d(std::max<std::size_t>(host.size(), 1));
  if (!host.empty()) ok(cudaMemcpy(d.data(), host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice));
  return d;
}

template <class T>
std::vector<T> download(const T* device, std::size_t n, cudaStream_t stream) {
  std::vector<T> out(n);
  if (n > 0) ok(cudaMemcpyAsync(out.data(), device, n * sizeof(T), cudaMemcpyDeviceToHost, stream));
  ok(cudaStreamSynchronize(stream));
  return out;
}

}  // namespace

TEST_CASE("nccl: one rank through every collective, both allgatherv methods, and the padding rule") {
  int device = 0;
  ok(cudaGetDevice(&device));
  ncclComm_t handle = nullptr;
  REQUIRE(ncclCommInitAll(&handle, 1, &device) == ncclSuccess);
  {
    gc::nccl::communicator comm(handle, nullptr);
    REQUIRE(comm.rank() == 0);
    REQUIRE(comm.size() == 1);
    const cudaStream_t stream = comm.stream();
    std::vector<std::byte> host(777);
    for (std::size_t i = 0; i < host.size(); ++i) host[i] = static_cast<std::byte>(i * 7 + 3);
    const auto mine_buffer = upload(host);
    const std::span<const std::byte> mine(mine_buffer.data(), host.size());
    const auto read = [&](const gc::cuda::comm::device_blocks& b) { return download(b.data(), b.total(), stream); };
    for (const auto method : {gc::nccl::allgatherv_method::padded, gc::nccl::allgatherv_method::send_recv}) {
      gc::cuda::comm::device_blocks all;
      comm.allgatherv(mine, all.receive(), method);
      CHECK(comm.last_allgatherv_method() == method);
      CHECK(read(all) == host);
    }
    gc::cuda::comm::device_blocks all;
    comm.allgatherv(mine, all.receive());
    CHECK(read(all) == host);
    const std::vector<std::size_t> counts{host.size()};
    gc::cuda::comm::device_blocks received;
    comm.alltoallv(mine, counts, received.receive());
    CHECK(read(received) == host);
    comm.broadcast(mine, gc::cuda::comm::receiver(), 0);  // the root's receiver is not called
    const std::vector<float> v{1.0f, -0.0f, 3.5f, 1e-40f};
    auto dv = upload(v);
    comm.allreduce_sum(std::span<float>(dv.data(), v.size()));
    const auto summed = download(dv.data(), v.size(), stream);
    CHECK(std::memcmp(summed.data(), v.data(), v.size() * sizeof(float)) == 0);  // one rank: its own vector
    comm.allreduce_sum_nondeterministic(std::span<float>(dv.data(), v.size()));
    auto dd = upload(std::vector<double>{2.0, -0.0});
    comm.allreduce_sum(std::span<double>(dd.data(), 2));
    comm.barrier();
    // Mismatches one rank can make.
    const std::vector<std::size_t> two{1, 1};
    CHECK_THROWS_WITH_AS(comm.alltoallv(mine.first(2), two, received.receive()),
                         doctest::Contains("has send blocks for 2 ranks"), gc::error);
    CHECK_THROWS_WITH_AS(comm.alltoallv(mine, std::vector<std::size_t>{1}, received.receive()),
                         doctest::Contains("do not add up"), gc::error);
    CHECK_THROWS_WITH_AS(comm.broadcast(mine, gc::cuda::comm::receiver(), 1), doctest::Contains("root 1 is not a rank"),
                         gc::error);
    comm.barrier();  // and the next operation works
    CHECK(download(dd.data(), 2, stream) == std::vector<double>{2.0, -0.0});
  }
  ncclCommDestroy(handle);

  const gc::nccl::allgatherv_rule rule;
  CHECK(rule.choose(std::vector<std::size_t>{100, 100, 90}) == gc::nccl::allgatherv_method::padded);
  CHECK(rule.choose(std::vector<std::size_t>{1 << 20, 1 << 20, 1 << 20, 1 << 19}) == gc::nccl::allgatherv_method::padded);
  CHECK(rule.choose(std::vector<std::size_t>{1 << 20, 10, 10, 10}) == gc::nccl::allgatherv_method::send_recv);
}

#else  // the thread group, the device sparse exchanges, return_unsent

#include "cuda_support.cuh"

#include <gradcomp/algorithms/sparse_exchange.hpp>
#include <gradcomp/comm/local.hpp>
#include <gradcomp/cuda/comm/sparse_exchange.cuh>
#include <gradcomp/cuda/comm/thread_group.cuh>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>
#include <limits>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace gct = gradcomp_cuda_test;
using gc::detail::frame_status;

// ---- messages and what a rank does in a step

/// Rank r's message at step t: the Top-k of one of the host test's adversarial gradients.
template <class T>
gc::sparse_vector<T> message_of(const std::string& kind, std::size_t d, std::size_t k, int rank, int step) {
  std::mt19937_64 rng(static_cast<std::uint64_t>(rank) * 7919u + static_cast<std::uint64_t>(step) * 104729u + d);
  std::normal_distribution<double> normal(0.0, 1.0);
  if (kind == "few") {  // k entries anywhere, without a gradient of d values (for large d)
    gc::sparse_vector<T> m;
    m.dim = d;
    for (std::size_t j = 0; j < k; ++j) m.indices.push_back(static_cast<std::uint32_t>(rng() % d));
    std::sort(m.indices.begin(), m.indices.end());
    m.indices.erase(std::unique(m.indices.begin(), m.indices.end()), m.indices.end());
    for (std::size_t j = 0; j < m.indices.size(); ++j) m.values.push_back(static_cast<T>(normal(rng)));
    return m;
  }
  std::vector<T> g(d, T(0));
  for (std::size_t i = 0; i < d; ++i) {
    if (kind == "normal") {
      g[i] = static_cast<T>(normal(rng));
    } else if (kind == "ties") {  // few magnitudes: ties at the k-th sum, and sums that cancel
      g[i] = static_cast<T>(static_cast<int>(rng() % 3) + 1) * ((rng() & 1) ? T(1) : T(-1));
    } else if (kind == "sparse") {  // fewer nonzero entries than k, negative zeros
      g[i] = (rng() % 97 == 0) ? static_cast<T>(normal(rng)) : ((rng() & 1) ? T(-0.0) : T(0));
    } else if (kind == "cancel") {  // ranks 2j and 2j + 1 send opposite values
      std::mt19937_64 pair(static_cast<std::uint64_t>(rank / 2) * 31u + static_cast<std::uint64_t>(step) + i * 1000003u);
      g[i] = static_cast<T>(pair() % 1000) * ((rank % 2) ? T(-1) : T(1)) * ((i % 2) ? T(1) : T(0.5));
    } else if (kind == "denormals") {
      g[i] = static_cast<T>(std::ldexp(normal(rng), sizeof(T) == 4 ? -140 : -1070));
    } else if (kind == "concentrated") {  // the large entries in one layer: equal shards unbalance
      g[i] = static_cast<T>(normal(rng) * (i >= d - d / 8 ? 100.0 : 0.01));
    }
  }
  gc::sparse_vector<T> m;
  gc::top_k{.k = k}.compress(gc::exec::seq, std::span<const T>(g), m);
  return m;
}

struct scenario {
  int ranks = 1;
  std::size_t d = 389;
  std::size_t k = 17;
  gc::exchange_options options;
  std::string kind = "normal";
  int steps = 3;
  /// (step, rank) -> what the rank brings: ok, or failed / skipped.
  std::vector<std::pair<std::pair<int, int>, frame_status>> special;

  frame_status status(int step, int rank) const {
    for (const auto& [at, s] : special)
      if (at.first == step && at.second == rank) return s;
    return frame_status::ok;
  }
  std::string label() const {
    return std::string(gc::exchange_name(options.kind)) + " ranks=" + std::to_string(ranks) + " d=" + std::to_string(d) +
           " k=" + std::to_string(k) + " global_k=" +
           (options.global_k == gc::exchange_options::keep_all ? std::string("keep_all") : std::to_string(options.global_k)) +
           " kind=" + kind;
  }
};

/// What one rank saw in one step.
template <class T>
struct step_record {
  bool applied = false;
  std::string error;  // the gc::error the step threw, if any
  std::vector<T> mean;
  std::vector<std::size_t> selection, regions, unsent_index;
  std::vector<T> unsent_value;
  std::vector<gc::exchange_message> messages;
  gc::traffic traffic;
};

std::string failure_text(int rank, int step) { return "rank " + std::to_string(rank) + " broke at step " + std::to_string(step); }

/// Every step of every rank: records[rank][step].
template <class T>
using run_records = std::vector<std::vector<step_record<T>>>;

/// The host exchange over comm::local_group.
template <class T>
run_records<T> host_run(const scenario& sc) {
  run_records<T> out(static_cast<std::size_t>(sc.ranks), std::vector<step_record<T>>(static_cast<std::size_t>(sc.steps)));
  gc::comm::local_group::run(sc.ranks, [&](gc::comm::local_communicator& comm) {
    gc::detail::sparse_exchange<T> ex(sc.options, sc.d,
                                      sc.options.global_k == 0 ? sc.k : sc.options.global_k);
    std::vector<T> mean(sc.d);
    for (int t = 0; t < sc.steps; ++t) {
      auto& rec = out[static_cast<std::size_t>(comm.rank())][static_cast<std::size_t>(t)];
      const frame_status st = sc.status(t, comm.rank());
      const auto m = st == frame_status::ok ? message_of<T>(sc.kind, sc.d, sc.k, comm.rank(), t) : gc::sparse_vector<T>{};
      try {
        rec.applied = ex.run(comm, st, failure_text(comm.rank(), t), m, std::span<T>(mean), "exchange_test") ==
                      gc::step_status::applied;
      } catch (const gc::error& e) {
        rec.error = e.what();
      }
      if (!rec.applied) continue;
      rec.mean = mean;
      rec.selection.assign(ex.selection().begin(), ex.selection().end());
      rec.regions.assign(ex.regions().begin(), ex.regions().end());
      rec.unsent_index.assign(ex.unsent_indices().begin(), ex.unsent_indices().end());
      rec.unsent_value.assign(ex.unsent_values().begin(), ex.unsent_values().end());
      rec.messages.assign(ex.messages().begin(), ex.messages().end());
      rec.traffic = ex.last_traffic();
    }
  });
  return out;
}

/// One step of the device exchange on one rank of any device communicator.
template <class T, class Comm>
void device_step(Comm& comm, gc::cuda::sparse_exchange<T>& ex, const scenario& sc, int t,
                 gc::cuda::sparse_vector<T>& message, gc::cuda::device_buffer<T>& mean, step_record<T>& rec) {
  const cudaStream_t stream = comm.stream();
  const frame_status st = sc.status(t, comm.rank());
  if (st == frame_status::ok) message.from_host(message_of<T>(sc.kind, sc.d, sc.k, comm.rank(), t), stream);
  try {
    rec.applied = ex.run(comm, st, failure_text(comm.rank(), t), message, std::span<T>(mean.data(), sc.d),
                         "exchange_test") == gc::step_status::applied;
  } catch (const gc::error& e) {
    rec.error = e.what();
  }
  if (!rec.applied) return;
  rec.mean.resize(sc.d);
  if (sc.d > 0)
    gc::cuda::detail::check(cudaMemcpyAsync(rec.mean.data(), mean.data(), sc.d * sizeof(T), cudaMemcpyDeviceToHost, stream),
                            "test", "cudaMemcpyAsync");
  rec.selection = ex.selection_to_host(stream);
  rec.regions.assign(ex.regions().begin(), ex.regions().end());
  const auto ui = ex.unsent_indices();
  const auto uv = ex.unsent_values();
  std::vector<std::uint64_t> idx(ui.size());
  rec.unsent_value.resize(uv.size());
  if (!idx.empty()) {
    gc::cuda::detail::check(cudaMemcpyAsync(idx.data(), ui.data(), idx.size() * sizeof(std::uint64_t),
                                            cudaMemcpyDeviceToHost, stream),
                            "test", "cudaMemcpyAsync");
    gc::cuda::detail::check(cudaMemcpyAsync(rec.unsent_value.data(), uv.data(), uv.size() * sizeof(T),
                                            cudaMemcpyDeviceToHost, stream),
                            "test", "cudaMemcpyAsync");
  }
  gc::cuda::detail::check(cudaStreamSynchronize(stream), "test", "cudaStreamSynchronize");
  rec.unsent_index.assign(idx.begin(), idx.end());
  rec.messages.assign(ex.messages().begin(), ex.messages().end());
  rec.traffic = ex.last_traffic();
}

template <class T, class Comm>
void device_rank(Comm& comm, const scenario& sc, std::vector<step_record<T>>& records) {
  gc::cuda::sparse_exchange<T> ex(sc.options, sc.d, sc.options.global_k == 0 ? sc.k : sc.options.global_k);
  gc::cuda::sparse_vector<T> message;
  gc::cuda::device_buffer<T> mean(std::max<std::size_t>(sc.d, 1));
  for (int t = 0; t < sc.steps; ++t) device_step(comm, ex, sc, t, message, mean, records[static_cast<std::size_t>(t)]);
}

/// The device exchange with any device communicator: run(f) calls f(comm, records of its
/// rank) on every rank.
template <class T, class Run>
run_records<T> device_run(const scenario& sc, Run&& run) {
  run_records<T> out(static_cast<std::size_t>(sc.ranks), std::vector<step_record<T>>(static_cast<std::size_t>(sc.steps)));
  run([&](auto& comm) { device_rank<T>(comm, sc, out[static_cast<std::size_t>(comm.rank())]); });
  return out;
}

bool same_messages(const std::vector<gc::exchange_message>& a, const std::vector<gc::exchange_message>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::string_view(a[i].phase) != std::string_view(b[i].phase) || a[i].peer != b[i].peer ||
        a[i].sent != b[i].sent || a[i].nnz != b[i].nnz || a[i].len != b[i].len || a[i].bytes != b[i].bytes)
      return false;
  return true;
}

/// The device run against the host run, rank by rank and step by step, bit for bit.
template <class T>
void check_same(const scenario& sc, const run_records<T>& want, const run_records<T>& got) {
  CAPTURE(sc.label());
  REQUIRE(got.size() == want.size());
  for (std::size_t r = 0; r < want.size(); ++r) {
    for (std::size_t t = 0; t < want[r].size(); ++t) {
      CAPTURE(r);
      CAPTURE(t);
      const auto& w = want[r][t];
      const auto& g = got[r][t];
      CHECK(g.error == w.error);
      REQUIRE(g.applied == w.applied);
      if (!w.applied) continue;
      CHECK(gt::same_bits(g.mean, w.mean));
      CHECK(g.selection == w.selection);
      CHECK(g.regions == w.regions);
      CHECK(g.unsent_index == w.unsent_index);
      CHECK(gt::same_bits(g.unsent_value, w.unsent_value));
      CHECK(same_messages(g.messages, w.messages));
      CHECK(g.traffic == w.traffic);
    }
  }
}

}  // namespace

namespace {

using gc::cuda::comm::thread_communicator;
using gc::cuda::comm::thread_group;

template <class T>
run_records<T> thread_run(const scenario& sc) {
  return device_run<T>(sc, [&](auto&& f) {
    thread_group::run(sc.ranks, [&](thread_communicator& comm) { f(comm); });
  });
}

std::byte pattern(int rank, int to, std::size_t i) {
  return static_cast<std::byte>((rank * 37 + to * 11 + static_cast<int>(i) * 3) & 0xff);
}

std::vector<std::byte> to_host_bytes(const std::byte* device, std::size_t n, cudaStream_t stream) {
  std::vector<std::byte> out(n);
  if (n > 0) gct::ok(cudaMemcpyAsync(out.data(), device, n, cudaMemcpyDeviceToHost, stream));
  gct::ok(cudaStreamSynchronize(stream));
  return out;
}

/// A device copy of host bytes on a stream.
void to_device(const std::vector<std::byte>& host, gc::cuda::device_buffer<std::byte>& device, cudaStream_t stream) {
  device.resize(std::max<std::size_t>(host.size(), 1));
  if (!host.empty()) gct::ok(cudaMemcpyAsync(device.data(), host.data(), host.size(), cudaMemcpyHostToDevice, stream));
}

/// Runs f(comm) on n thread ranks; returns each rank's gc::error message ("" if none).
template <class F>
std::vector<std::string> errors_of(int n, F&& f) {
  std::vector<std::string> out(static_cast<std::size_t>(n));
  thread_group::run(n, [&](thread_communicator& comm) {
    try {
      f(comm);
    } catch (const gc::error& e) {
      out[static_cast<std::size_t>(comm.rank())] = e.what();
    }
  });
  return out;
}

/// The part of an error message after the "gradcomp::<where>: " prefix.
std::string body_of(const std::string& message) {
  const auto at = message.find(": ");
  return at == std::string::npos ? message : message.substr(at + 2);
}

}  // namespace

TEST_CASE("cuda exchange: thread_group allgatherv, alltoallv, broadcast and barrier deliver every block, 1 to 5 ranks") {
  for (int n = 1; n <= 5; ++n) {
    CAPTURE(n);
    struct seen {
      std::vector<std::byte> gathered, exchanged, broadcast;
      std::vector<std::size_t> gathered_sizes, exchanged_sizes;
    };
    std::vector<seen> out(static_cast<std::size_t>(n));
    const auto block = [](int rank) { return static_cast<std::size_t>(3 * rank + 1); };
    const auto pair_bytes = [](int from, int to) { return static_cast<std::size_t>((from + 2 * to) % 5); };
    const int root = n - 1;
    thread_group::run(n, [&](thread_communicator& comm) {
      const int me = comm.rank();
      seen& s = out[static_cast<std::size_t>(me)];
      gc::cuda::device_buffer<std::byte> mine, blocks, root_bytes;
      std::vector<std::byte> host(block(me));
      for (std::size_t i = 0; i < host.size(); ++i) host[i] = pattern(me, -1, i);
      to_device(host, mine, comm.stream());
      gc::cuda::comm::device_blocks all;
      comm.allgatherv(std::span<const std::byte>(mine.data(), host.size()), all.receive());
      // Overwriting the send buffer right after the call (stream-ordered) must not change
      // what the others receive.
      gct::ok(cudaMemsetAsync(mine.data(), 0xee, host.size(), comm.stream()));
      s.gathered = to_host_bytes(all.data(), all.total(), comm.stream());
      s.gathered_sizes.assign(all.sizes().begin(), all.sizes().end());

      std::vector<std::byte> packed;
      std::vector<std::size_t> counts;
      for (int j = 0; j < n; ++j) {
        counts.push_back(pair_bytes(me, j));
        for (std::size_t i = 0; i < counts.back(); ++i) packed.push_back(pattern(me, j, i));
      }
      to_device(packed, blocks, comm.stream());
      gc::cuda::comm::device_blocks received;
      comm.alltoallv(std::span<const std::byte>(blocks.data(), packed.size()), counts, received.receive());
      s.exchanged = to_host_bytes(received.data(), received.total(), comm.stream());
      s.exchanged_sizes.assign(received.sizes().begin(), received.sizes().end());

      std::vector<std::byte> message(1000);
      for (std::size_t i = 0; i < message.size(); ++i) message[i] = pattern(root, 99, i);
      to_device(me == root ? message : std::vector<std::byte>(), root_bytes, comm.stream());
      gc::cuda::device_buffer<std::byte> got(1000);
      comm.broadcast(std::span<const std::byte>(root_bytes.data(), me == root ? message.size() : 0),
                     [&](std::span<const std::size_t> sizes) {
                       return std::span<std::byte>(got.data(), sizes[static_cast<std::size_t>(root)]);
                     },
                     root);
      s.broadcast = me == root ? message : to_host_bytes(got.data(), message.size(), comm.stream());
      comm.barrier();
    });
    for (int r = 0; r < n; ++r) {
      CAPTURE(r);
      const seen& s = out[static_cast<std::size_t>(r)];
      std::vector<std::byte> want;
      std::vector<std::size_t> sizes;
      for (int j = 0; j < n; ++j) {
        sizes.push_back(block(j));
        for (std::size_t i = 0; i < block(j); ++i) want.push_back(pattern(j, -1, i));
      }
      CHECK(s.gathered_sizes == sizes);
      CHECK(s.gathered == want);
      want.clear();
      sizes.clear();
      for (int j = 0; j < n; ++j) {
        sizes.push_back(pair_bytes(j, r));
        for (std::size_t i = 0; i < pair_bytes(j, r); ++i) want.push_back(pattern(j, r, i));
      }
      CHECK(s.exchanged_sizes == sizes);
      CHECK(s.exchanged == want);
      want.clear();
      for (std::size_t i = 0; i < 1000; ++i) want.push_back(pattern(root, 99, i));
      CHECK(s.broadcast == want);
    }
  }
}

TEST_CASE("cuda exchange: thread_group allreduce_sum adds in rank order, the bits of comm::local_communicator") {
  const auto values_of = [](int rank, std::size_t len) {
    std::mt19937_64 rng(static_cast<std::uint64_t>(rank) * 1000003u + len);
    std::vector<float> v(len);
    // Magnitudes far apart: any other order of the additions changes bits.
    for (std::size_t i = 0; i < len; ++i)
      v[i] = static_cast<float>(std::ldexp(static_cast<double>(rng() % 2001) - 1000.0, static_cast<int>(rng() % 60) - 30));
    return v;
  };
  for (int n = 1; n <= 6; ++n) {
    for (const std::size_t len : {std::size_t{0}, std::size_t{1}, std::size_t{5}, std::size_t{1000}, std::size_t{65537}}) {
      CAPTURE(n);
      CAPTURE(len);
      std::vector<std::vector<float>> want(static_cast<std::size_t>(n)), got(static_cast<std::size_t>(n));
      gc::comm::local_group::run(n, [&](gc::comm::local_communicator& comm) {
        auto v = values_of(comm.rank(), len);
        gc::comm::allreduce_sum(comm, std::span<float>(v));
        want[static_cast<std::size_t>(comm.rank())] = v;
      });
      thread_group::run(n, [&](thread_communicator& comm) {
        const auto v = values_of(comm.rank(), len);
        gct::device_copy<float> d(v);
        comm.allreduce_sum(d.span());
        comm.synchronize();  // to_host copies on the legacy stream, which does not wait for comm's
        got[static_cast<std::size_t>(comm.rank())] = d.to_host();
      });
      for (int r = 0; r < n; ++r) CHECK(gt::same_bits(got[static_cast<std::size_t>(r)], want[static_cast<std::size_t>(r)]));
    }
  }
  // double, once.
  std::vector<std::vector<double>> want(3), got(3);
  const auto doubles = [](int rank) {
    return std::vector<double>{1e300 * (rank + 1), 1.0 + rank, -1e-300 * rank, 3.0 / (rank + 1)};
  };
  gc::comm::local_group::run(3, [&](gc::comm::local_communicator& comm) {
    auto v = doubles(comm.rank());
    gc::comm::allreduce_sum(comm, std::span<double>(v));
    want[static_cast<std::size_t>(comm.rank())] = v;
  });
  thread_group::run(3, [&](thread_communicator& comm) {
    gct::device_copy<double> d(doubles(comm.rank()));
    comm.allreduce_sum(d.span());
    comm.synchronize();
    got[static_cast<std::size_t>(comm.rank())] = d.to_host();
  });
  for (int r = 0; r < 3; ++r) CHECK(gt::same_bits(got[static_cast<std::size_t>(r)], want[static_cast<std::size_t>(r)]));
}

TEST_CASE("cuda exchange: thread_group mismatched collectives fail on every rank with comm::local's error, then work") {
  const int n = 3;
  // What comm::local_communicator says for the same mismatches.
  const auto local_errors = [&](auto&& f) {
    std::vector<std::string> out(static_cast<std::size_t>(n));
    gc::comm::local_group::run(n, [&](gc::comm::local_communicator& comm) {
      try {
        f(comm);
      } catch (const gc::error& e) {
        out[static_cast<std::size_t>(comm.rank())] = e.what();
      }
    });
    return out;
  };
  std::vector<float> after(static_cast<std::size_t>(n), -1.0f);
  // A length that differs on rank 1, then an allreduce that works.
  const auto lengths = errors_of(n, [&](thread_communicator& comm) {
    gct::device_copy<float> v(std::vector<float>(comm.rank() == 1 ? 5 : 4, 1.0f));
    try {
      comm.allreduce_sum(v.span());
    } catch (const gc::error&) {
      gct::device_copy<float> one(std::vector<float>{static_cast<float>(comm.rank())});
      comm.allreduce_sum(one.span());
      comm.synchronize();
      after[static_cast<std::size_t>(comm.rank())] = one.to_host()[0];
      throw;
    }
  });
  const auto local_lengths = local_errors([&](gc::comm::local_communicator& comm) {
    std::vector<float> v(comm.rank() == 1 ? 5 : 4, 1.0f);
    gc::comm::allreduce_sum(comm, std::span<float>(v));
  });
  for (int r = 0; r < n; ++r) {
    CHECK(lengths[static_cast<std::size_t>(r)] == lengths[0]);
    CHECK(body_of(lengths[static_cast<std::size_t>(r)]) == body_of(local_lengths[0]));
    CHECK(after[static_cast<std::size_t>(r)] == 3.0f);  // 0 + 1 + 2: later operations work
  }
  CHECK(lengths[0].find("length differs") != std::string::npos);

  // Another collective on rank 2; a root out of range; alltoallv counts for another group.
  gc::cuda::device_buffer<std::byte> scratch(64);
  const auto kinds = errors_of(n, [&](thread_communicator& comm) {
    gc::cuda::comm::device_blocks all;
    if (comm.rank() == 2)
      comm.broadcast(std::span<const std::byte>(), all.receive(), 0);
    else
      comm.allgatherv(std::span<const std::byte>(), all.receive());
  });
  const auto roots = errors_of(n, [&](thread_communicator& comm) {
    gc::cuda::comm::device_blocks all;
    comm.broadcast(std::span<const std::byte>(), all.receive(), 7);
  });
  const auto groups = errors_of(n, [&](thread_communicator& comm) {
    gc::cuda::comm::device_blocks all;
    const std::vector<std::size_t> counts(comm.rank() == 0 ? 2 : 3, 0);
    comm.alltoallv(std::span<const std::byte>(), counts, all.receive());
  });
  const auto local_kinds = local_errors([&](gc::comm::local_communicator& comm) {
    std::vector<std::byte> b;
    gc::comm::gathered_bytes all;
    if (comm.rank() == 2)
      gc::comm::broadcast(comm, b, 0);
    else
      gc::comm::allgatherv(comm, std::span<const std::byte>(), all);
  });
  for (const auto* errors : {&kinds, &roots, &groups}) {
    for (int r = 0; r < n; ++r) {
      CHECK_FALSE((*errors)[static_cast<std::size_t>(r)].empty());
      CHECK((*errors)[static_cast<std::size_t>(r)] == (*errors)[0]);
    }
  }
  CHECK(body_of(kinds[0]) == body_of(local_kinds[0]));
  CHECK(roots[0].find("root 7 is not a rank") != std::string::npos);
  CHECK(groups[0].find("has send blocks for 2 ranks") != std::string::npos);

  // A receiver that fails on one rank fails that rank only.
  const auto receivers = errors_of(n, [&](thread_communicator& comm) {
    gc::cuda::device_buffer<std::byte> mine(8);
    gc::cuda::comm::device_blocks all;
    const gc::comm::receiver receive = comm.rank() == 1 ? gc::comm::receiver([&](std::span<const std::size_t>) {
      return std::span<std::byte>(scratch.data(), 1);  // too small
    })
                                                        : all.receive();
    comm.allgatherv(std::span<const std::byte>(mine.data(), 8), receive);
  });
  CHECK(receivers[0].empty());
  CHECK(receivers[1].find("the receiver gave 1 bytes") != std::string::npos);
  CHECK(receivers[2].empty());
}

TEST_CASE("cuda exchange: a thread rank that throws releases the others") {
  std::vector<int> released(3, 0);
  try {
    thread_group::run(3, [&](thread_communicator& comm) {
      if (comm.rank() == 1) throw std::runtime_error("rank 1 gives up");
      try {
        comm.barrier();
      } catch (const gc::comm::group_aborted&) {
        released[static_cast<std::size_t>(comm.rank())] = 1;
        throw;
      }
    });
    FAIL("run returned");
  } catch (const std::runtime_error& e) {
    CHECK(std::string(e.what()) == "rank 1 gives up");
  }
  CHECK(released[0] == 1);
  CHECK(released[2] == 1);
}

TEST_CASE("cuda exchange: the device sparse exchanges give the host's bits on 1 to 6 ranks") {
  const char* const kinds[] = {"normal", "ties", "sparse", "cancel", "denormals", "concentrated"};
  for (const gc::exchange_kind kind : {gc::exchange_kind::reduce_scatter, gc::exchange_kind::recursive_doubling}) {
    for (int n = 1; n <= 6; ++n) {
      for (const char* input : kinds) {
        for (const std::size_t k : {std::size_t{1}, std::size_t{17}, std::size_t{300}}) {
          scenario sc;
          sc.ranks = n;
          sc.k = k;
          sc.kind = input;
          sc.options.kind = kind;
          check_same(sc, host_run<float>(sc), thread_run<float>(sc));
          if (k == 17) {  // keep_all, and equal regions
            sc.options.global_k = gc::exchange_options::keep_all;
            check_same(sc, host_run<float>(sc), thread_run<float>(sc));
            sc.options.global_k = 0;
            sc.options.balance = gc::region_balance::equal;
            check_same(sc, host_run<float>(sc), thread_run<float>(sc));
          }
        }
      }
    }
  }
}

TEST_CASE("cuda exchange: larger vectors, dense blocks, double, wide histograms") {
  for (const gc::exchange_kind kind : {gc::exchange_kind::reduce_scatter, gc::exchange_kind::recursive_doubling}) {
    scenario sc;
    sc.options.kind = kind;
    sc.ranks = 5;
    sc.d = 70001;
    sc.k = 9000;  // dense blocks: more than len / 2 entries per region
    sc.kind = "concentrated";
    check_same(sc, host_run<float>(sc), thread_run<float>(sc));
    sc.d = 4099;
    sc.k = 60;
    sc.ranks = 4;
    sc.kind = "ties";
    check_same(sc, host_run<double>(sc), thread_run<double>(sc));
  }
  // Past d = 2^24 the reduce-scatter's histograms are doubles (8 bytes a bin).
  scenario wide;
  wide.options.kind = gc::exchange_kind::reduce_scatter;
  wide.ranks = 2;
  wide.d = (std::size_t{1} << 24) + 3;
  wide.k = 5;
  wide.kind = "few";
  wide.steps = 2;
  const auto want = host_run<float>(wide);
  check_same(wide, want, thread_run<float>(wide));
  bool doubles = false;
  for (const auto& m : want[0][0].messages) doubles |= std::string_view(m.phase) == "histogram" && m.bytes == 256 * 8;
  CHECK(doubles);
}

TEST_CASE("cuda exchange: failures and skips reach every rank, as on the host") {
  for (const gc::exchange_kind kind : {gc::exchange_kind::reduce_scatter, gc::exchange_kind::recursive_doubling}) {
    for (const int n : {1, 3, 5}) {
      scenario sc;
      sc.options.kind = kind;
      sc.ranks = n;
      sc.kind = "ties";
      sc.steps = 5;
      sc.special = {{{1, n - 1}, frame_status::failed},
                    {{2, n / 2}, frame_status::skipped},
                    {{3, 0}, frame_status::skipped},
                    {{3, n - 1}, frame_status::failed}};
      if (n > 1) sc.special.push_back({{1, 0}, frame_status::failed});  // the lowest failing rank's message wins
      const auto want = host_run<float>(sc);
      const auto got = thread_run<float>(sc);
      check_same(sc, want, got);
      for (int r = 0; r < n; ++r) {
        CHECK(got[static_cast<std::size_t>(r)][1].error ==
              "gradcomp::exchange_test: rank 0 failed: " + failure_text(0, 1));
        CHECK_FALSE(got[static_cast<std::size_t>(r)][2].applied);
        CHECK(got[static_cast<std::size_t>(r)][2].error.empty());
        if (n > 1)  // one rank: it skips (its first entry for step 3)
          CHECK(got[static_cast<std::size_t>(r)][3].error ==
                "gradcomp::exchange_test: rank " + std::to_string(n - 1) + " failed: " + failure_text(n - 1, 3));
        CHECK(got[static_cast<std::size_t>(r)][4].applied);
      }
    }
  }
  // A message of another dimension fails on every rank (on the host it is the caller's check).
  std::vector<std::string> errors(3);
  thread_group::run(3, [&](thread_communicator& comm) {
    gc::cuda::sparse_exchange<float> ex({.kind = gc::exchange_kind::reduce_scatter}, 100, 5);
    gc::cuda::sparse_vector<float> m;
    m.from_host(message_of<float>("normal", comm.rank() == 2 ? 99 : 100, 5, comm.rank(), 0), comm.stream());
    gc::cuda::device_buffer<float> mean(100);
    try {
      ex.run(comm, frame_status::ok, "", m, std::span<float>(mean.data(), 100), "exchange_test");
    } catch (const gc::error& e) {
      errors[static_cast<std::size_t>(comm.rank())] = e.what();
    }
  });
  for (const auto& e : errors) {
    CHECK(e == errors[0]);
    CHECK(e.find("rank 2 failed: ") != std::string::npos);
    CHECK(e.find("the message has dimension 99, the scheme 100") != std::string::npos);
  }
}

TEST_CASE("cuda exchange: error_feedback::return_unsent on the device gives the host's residual and metrics") {
  const std::size_t d = 1000;
  const auto e = gt::make_input<float>(gt::input_kind::heavy_tailed, d, 3);
  std::vector<std::uint64_t> index;
  std::vector<float> value;
  for (std::size_t i = 3; i < d; i += 7) {
    index.push_back(i);
    value.push_back(i % 3 == 0 ? -0.0f : static_cast<float>(i) * 1e-3f - 0.4f);
  }
  gc::error_feedback<gc::top_k, float> host(gc::top_k{.k = 10}, d);
  host.assign_error(std::span<const float>(e));
  host.return_unsent(std::span<const std::uint64_t>(index), std::span<const float>(value));
  gc::cuda::error_feedback<gc::top_k, float> device(gc::top_k{.k = 10}, d);
  const gct::device_copy<float> de(e);
  device.assign_error(gc::cuda::par, de.span());
  const gct::device_copy<std::uint64_t> di(index);
  const gct::device_copy<float> dv(value);
  device.return_unsent(gc::cuda::par, di.span(), dv.span());
  CHECK(gt::same_bits(gct::to_host(device.error()), std::vector<float>(host.error().begin(), host.error().end())));
  CHECK(device.metrics().total_error == host.metrics().total_error);
  CHECK(device.metrics().elements_sent == host.metrics().elements_sent);
  // Indices that do not ascend, and a sum that overflows: gc::error, the residual unchanged.
  const auto before = gct::to_host(device.error());
  const gct::device_copy<std::uint64_t> backwards(std::vector<std::uint64_t>{5, 4});
  const gct::device_copy<float> two(std::vector<float>{1.0f, 1.0f});
  CHECK_THROWS_AS(device.return_unsent(gc::cuda::par, backwards.span(), two.span()), gc::error);
  const gct::device_copy<std::uint64_t> one(std::vector<std::uint64_t>{7});
  const gct::device_copy<float> huge(std::vector<float>{std::numeric_limits<float>::infinity()});
  CHECK_THROWS_AS(device.return_unsent(gc::cuda::par, one.span(), huge.span()), gc::error);
  CHECK(gt::same_bits(gct::to_host(device.error()), before));
}

#endif
