// gradcomp over MPI: data-parallel training of the examples' 784-128-10 MLP on
// Fashion-MNIST with EF-SGD, DoubleSqueeze or LIEC-SGD and any of four compressors, or with
// the bucket exchange and the trainer's own optimizer (as a DDP communication hook does).
//
//   mpirun -np 4 --oversubscribe --allow-run-as-root build/examples/gradcomp_mpi_training
//          --scheme double_squeeze --compressor top_k --density 0.01 --server sharded --steps 300
//   (one command line)
//
// Every rank holds a replica of the model and trains on its own quarter of the training
// set (a batch of --batch images per rank and step); the scheme exchanges the compressed
// gradients. Rank 0 prints the mean training loss over ranks, the test accuracy of the
// averaged model, and the bytes a worker sent and received so far (mean over ranks).
// --synthetic replaces the dataset by random images (a smoke test without the dataset).
//
// --scheme buckets: one bucket per parameter tensor, started in the order backward produces
// them (the last layer first), all in flight at once, then finished; the mean decoded
// gradient goes to SGD with momentum 0.9 and weight decay 1e-4 applied here, not by gradcomp.
// --warmup N: the learning rate grows linearly over the first N steps (a schedule: every
// step passes its own lr). --loss-scale S: the gradient is computed S times too large, as
// in mixed-precision training, and every step passes S so that it is divided out.
// --exchange reduce_scatter|recursive_doubling (ef_sgd over top_k or hard_threshold): the
// sparse exchanges that keep the global Top-k of the messages' sum (docs/distributed.md).
// --trace PREFIX: every rank writes PREFIX.<rank>.jsonl, one line per applied step with its
// bytes and every message it sent and received (ef_sgd), for scripts/scale_model.py validate.
//
// Usage: gradcomp_mpi_training [--scheme ef_sgd|double_squeeze|liec_sgd|buckets]
//          [--compressor top_k|hard_threshold|scaled_sign|blockwise_sign|identity] [--density F]
//          [--exchange allgather|reduce_scatter|recursive_doubling] [--trace PREFIX]
//          [--server single|sharded] [--sync-every H] [--steps N] [--batch B] [--lr F]
//          [--warmup N] [--loss-scale S] [--data DIR] [--synthetic] [--every N]
#include <mpi.h>

#include <gradcomp/comm/mpi.hpp>
#include <gradcomp/distributed.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <numeric>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "fashion_mnist.hpp"
#include "mlp.hpp"

namespace gc = gradcomp;
using examples::mlp;

namespace {

struct options {
  std::string scheme = "double_squeeze";
  std::string compressor = "top_k";
  double density = 0.01;  // top_k: k = density * d; hard_threshold: lambda = 1 / (2 sqrt(k))
  std::string server = "single";
  std::uint64_t sync_every = 32;
  int steps = 200;
  std::size_t batch = 32;
  double lr = 0.1;
  int warmup = 0;
  double loss_scale = 1.0;
  std::string data = std::string(fashion_mnist::debian_dir);
  bool synthetic = false;
  int every = 20;
  std::string exchange = "allgather";
  std::string trace;
};

gc::exchange_kind exchange_of(const std::string& name) {
  if (name == "allgather") return gc::exchange_kind::allgather;
  if (name == "reduce_scatter") return gc::exchange_kind::reduce_scatter;
  if (name == "recursive_doubling") return gc::exchange_kind::recursive_doubling;
  throw std::invalid_argument("--exchange must be allgather, reduce_scatter or recursive_doubling (got " + name + ")");
}

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--scheme") o.scheme = value();
    else if (arg == "--compressor") o.compressor = value();
    else if (arg == "--density") o.density = std::stod(value());
    else if (arg == "--server") o.server = value();
    else if (arg == "--sync-every") o.sync_every = std::stoull(value());
    else if (arg == "--steps") o.steps = std::stoi(value());
    else if (arg == "--batch") o.batch = std::stoul(value());
    else if (arg == "--lr") o.lr = std::stod(value());
    else if (arg == "--warmup") o.warmup = std::stoi(value());
    else if (arg == "--loss-scale") o.loss_scale = std::stod(value());
    else if (arg == "--data") o.data = value();
    else if (arg == "--synthetic") o.synthetic = true;
    else if (arg == "--every") o.every = std::stoi(value());
    else if (arg == "--exchange") o.exchange = value();
    else if (arg == "--trace") o.trace = value();
    else throw std::invalid_argument("unknown option " + arg + " (see the header of examples/mpi_training.cpp)");
  }
  if (o.scheme != "ef_sgd" && o.scheme != "double_squeeze" && o.scheme != "liec_sgd" && o.scheme != "buckets")
    throw std::invalid_argument("--scheme must be ef_sgd, double_squeeze, liec_sgd or buckets (got " + o.scheme + ")");
  if (o.warmup < 0) throw std::invalid_argument("--warmup must be >= 0");
  if (exchange_of(o.exchange) != gc::exchange_kind::allgather && o.scheme != "ef_sgd")
    throw std::invalid_argument("--exchange is ef_sgd's (got --scheme " + o.scheme + ")");
  if (!(o.loss_scale > 0)) throw std::invalid_argument("--loss-scale must be > 0");
  if (o.server != "single" && o.server != "sharded")
    throw std::invalid_argument("--server must be single or sharded (got " + o.server + ")");
  if (!(o.density > 0 && o.density <= 1)) throw std::invalid_argument("--density must be in (0, 1]");
  if (o.steps < 1 || o.batch < 1 || o.every < 1) throw std::invalid_argument("--steps, --batch and --every must be >= 1");
  return o;
}

/// Random images and labels, for runs without the dataset.
fashion_mnist::labelled_images synthetic(std::size_t count, std::uint64_t seed) {
  fashion_mnist::labelled_images out;
  out.x.count = count;
  out.x.rows = out.x.cols = 28;
  out.x.pixels.resize(count * mlp::in);
  out.labels.resize(count);
  std::mt19937_64 rng(seed);
  for (std::size_t i = 0; i < count; ++i) {
    out.labels[i] = static_cast<std::uint8_t>(rng() % fashion_mnist::num_classes);
    for (std::size_t p = 0; p < mlp::in; ++p)  // a class-dependent stripe, so there is something to learn
      out.x.pixels[i * mlp::in + p] =
          static_cast<std::uint8_t>((p / 28) % 10 == out.labels[i] ? 200 + rng() % 56 : rng() % 40);
  }
  return out;
}

/// This step's learning rate: linear warm-up over o.warmup steps, then o.lr.
double lr_at(const options& o, int t) {
  return t <= o.warmup ? o.lr * static_cast<double>(t) / static_cast<double>(o.warmup + 1) : o.lr;
}

/// The trainer's own optimizer over a bucket exchange: one bucket per parameter tensor of
/// the MLP, SGD with momentum and weight decay applied to the mean decoded gradient.
template <class C>
class bucket_trainer {
 public:
  /// per_bucket(size) is the compressor of a bucket of that size.
  template <class PerBucket>
  bucket_trainer(PerBucket&& per_bucket, gc::comm::mpi_communicator& comm)
      : exchange_(compressors(per_bucket), comm, std::span<const std::size_t>(sizes_)),
        update_(mlp::size),
        velocity_(mlp::size) {}

  gc::step_status step(gc::exec::seq_t policy, std::span<float> params, std::span<const float> grad,
                       const gc::step_options& s) {
    // Backward produces the last layer's gradients first: start those buckets first.
    for (std::size_t b = buckets; b-- > 0;)
      exchange_.start(policy, b, grad.subspan(offsets_[b], sizes_[b]), s.loss_scale);
    bool applied[buckets], skipped = false;
    for (std::size_t b = 0; b < buckets; ++b) {
      applied[b] = exchange_.finish(policy, b, std::span<float>(update_).subspan(offsets_[b], sizes_[b])) ==
                   gc::step_status::applied;
      skipped |= !applied[b];
    }
    // A gradient overflowed: a loss scaler skips the whole step (and lowers its scale). The
    // buckets that were exchanged are taken back, so the step leaves no trace.
    if (skipped) {
      for (std::size_t b = 0; b < buckets; ++b)
        if (applied[b]) exchange_.undo(b);
      return gc::step_status::skipped;
    }
    const auto lr = static_cast<float>(s.lr);
    for (std::size_t i = 0; i < params.size(); ++i) {
      velocity_[i] = 0.9f * velocity_[i] + (update_[i] + 1e-4f * params[i]);
      params[i] -= lr * velocity_[i];
    }
    return gc::step_status::applied;
  }

  template <class PerBucket>
  static std::vector<C> compressors(PerBucket& per_bucket) {
    std::vector<C> out;
    for (const std::size_t n : sizes_) out.push_back(per_bucket(n));
    return out;
  }

  gc::traffic_log bytes() const {
    gc::traffic_log log;
    log.total = exchange_.total_bytes();
    return log;
  }

 private:
  static constexpr std::size_t buckets = 4;
  static constexpr std::size_t offsets_[buckets] = {mlp::w1, mlp::b1, mlp::w2, mlp::b2};
  static constexpr std::size_t sizes_[buckets] = {mlp::b1 - mlp::w1, mlp::w2 - mlp::b1, mlp::b2 - mlp::w2,
                                                  mlp::size - mlp::b2};
  gc::bucket_exchange<C, gc::comm::mpi_communicator> exchange_;
  std::vector<float> update_, velocity_;
};

/// One line of --trace: this rank's bytes in step t and the messages behind them. For the
/// sparse exchanges the scheme lists its messages; the all-gather of Top-k messages (k
/// entries each) and the allreduce of a dense message are written out here.
template <class Scheme>
void write_trace(std::ofstream& out, const Scheme& scheme, const options& o, int t, int rank, int ranks) {
  const gc::traffic& b = scheme.bytes().last;
  out << "{\"step\": " << t << ", \"rank\": " << rank << ", \"ranks\": " << ranks << ", \"scheme\": \"" << o.scheme
      << "\", \"exchange\": \"" << o.exchange << "\", \"d\": " << mlp::size << ", \"up\": " << b.uplink
      << ", \"down\": " << b.downlink << ", \"messages\": [";
  bool first = true;
  const auto message = [&](const char* phase, int peer, bool sent, std::size_t nnz, std::size_t len, std::size_t bytes) {
    out << (first ? "" : ", ") << "{\"phase\": \"" << phase << "\", \"peer\": " << peer << ", \"dir\": \""
        << (sent ? "send" : "recv") << "\", \"nnz\": " << nnz << ", \"len\": " << len << ", \"bytes\": " << bytes << "}";
    first = false;
  };
  if constexpr (requires { scheme.exchange_messages(); }) {
    if (!scheme.exchange_messages().empty() || o.exchange != "allgather") {
      for (const gc::exchange_message& m : scheme.exchange_messages())
        message(m.phase, m.peer, m.sent, m.nnz, m.len, m.bytes);
    } else if (o.compressor == "identity") {
      message("allreduce", -1, true, mlp::size, mlp::size, b.uplink);
      message("allreduce", -1, false, mlp::size, mlp::size, b.downlink);
    } else if constexpr (requires { scheme.feedback().message().nnz(); }) {
      if (o.compressor == "top_k") {  // every rank's message holds k entries
        const std::size_t nnz = scheme.feedback().message().nnz();
        message("allgather", -1, true, nnz, mlp::size, b.uplink);
        for (int r = 0; r < ranks; ++r)
          if (r != rank) message("allgather", r, false, nnz, mlp::size, b.downlink / static_cast<std::size_t>(ranks - 1));
      }
    }
  }
  out << "]}\n";
}

/// Trains with `scheme` (already constructed on comm) and prints progress on rank 0.
template <class Scheme>
void train(Scheme& scheme, gc::comm::mpi_communicator& comm, const options& o,
           const fashion_mnist::labelled_images& train_set, const fashion_mnist::labelled_images& test_set) {
  mlp net;
  std::vector<float> params = mlp::he_init(42), grad(mlp::size), x;
  std::vector<std::uint8_t> y;
  std::vector<std::uint32_t> ids(o.batch);
  // This rank's slice of the training set, sampled with its own generator.
  const auto mine = gc::comm::shard_of(train_set.size(), comm.size(), comm.rank());
  std::mt19937_64 rng(1000 + static_cast<std::uint64_t>(comm.rank()));
  std::uniform_int_distribution<std::size_t> pick(mine.begin, mine.end - 1);
  std::ofstream trace;
  if (!o.trace.empty()) {
    const std::string path = o.trace + "." + std::to_string(comm.rank()) + ".jsonl";
    trace.open(path);
    if (!trace) throw std::runtime_error("cannot write " + path);
  }
  for (int t = 1; t <= o.steps; ++t) {
    for (auto& id : ids) id = static_cast<std::uint32_t>(pick(rng));
    examples::gather_batch(train_set, ids, x, y);
    const double loss = net.loss_and_gradient(params, x, y, grad);
    if (o.loss_scale != 1.0)  // what a mixed-precision backward pass would hand over
      for (float& g : grad) g *= static_cast<float>(o.loss_scale);
    const gc::step_status status = scheme.step(gc::exec::seq, std::span<float>(params), std::span<const float>(grad),
                                               {.lr = lr_at(o, t), .loss_scale = o.loss_scale});
    if (status == gc::step_status::skipped && comm.rank() == 0)
      std::printf("step %5d  skipped: a gradient overflowed\n", t);
    if (trace.is_open() && status == gc::step_status::applied) write_trace(trace, scheme, o, t, comm.rank(), comm.size());
    if (t % o.every != 0 && t != o.steps) continue;
    // Progress: mean loss over ranks, accuracy of the averaged model, and the bytes a worker
    // sent and received so far, averaged over ranks (in single-server mode the root's own
    // messages never leave it, so its count alone would say 0).
    const gc::traffic& total = scheme.bytes().total;
    std::vector<double> sums{loss, static_cast<double>(total.uplink), static_cast<double>(total.downlink)};
    gc::comm::allreduce_sum(comm, std::span<double>(sums));
    std::vector<float> mean = params;
    gc::comm::allreduce_sum(comm, std::span<float>(mean));
    for (float& v : mean) v /= static_cast<float>(comm.size());
    if (comm.rank() == 0) {
      const double accuracy = examples::test_accuracy(net, mean, test_set);
      const double n = comm.size();
      std::printf(
          "step %5d  loss %.4f  test accuracy %.4f  per worker: up %.3f MB, down %.3f MB (dense: %.3f MB each way)\n", t,
          sums[0] / n, accuracy, sums[1] / n / 1e6, sums[2] / n / 1e6,
          static_cast<double>(t) * mlp::size * sizeof(float) / 1e6);
      std::fflush(stdout);
    }
  }
}

template <class C>
void run_with(C compressor, gc::comm::mpi_communicator& comm, const options& o,
              const fashion_mnist::labelled_images& train_set, const fashion_mnist::labelled_images& test_set) {
  const gc::server_options server{.mode = o.server == "sharded" ? gc::server_mode::sharded : gc::server_mode::single};
  if (o.scheme == "ef_sgd") {
    gc::sgd_options opt{.lr = o.lr, .momentum = 0.0};
    opt.exchange.kind = exchange_of(o.exchange);
    // The global Top-k keeps as many entries as one worker's Top-k (hard_threshold: as many
    // as the Top-k whose volume its lambda matches).
    opt.exchange.global_k = static_cast<std::size_t>(std::max(1.0, o.density * static_cast<double>(mlp::size)));
    gc::ef_sgd s(compressor, comm, mlp::size, opt);
    train(s, comm, o, train_set, test_set);
  } else if (o.scheme == "buckets") {
    // Top-k keeps the same fraction of every bucket.
    bucket_trainer<C> s(
        [&](std::size_t n) {
          C c = compressor;
          if constexpr (std::is_same_v<C, gc::top_k>)
            c.k = static_cast<std::size_t>(std::max(1.0, o.density * static_cast<double>(n)));
          return c;
        },
        comm);
    train(s, comm, o, train_set, test_set);
  } else if (o.scheme == "double_squeeze") {
    gc::double_squeeze s(compressor, comm, mlp::size, {.lr = o.lr, .server = server});
    train(s, comm, o, train_set, test_set);
  } else {
    gc::liec_sgd s(compressor, comm, mlp::size, {.lr = o.lr, .sync_every = o.sync_every, .server = server});
    train(s, comm, o, train_set, test_set);
  }
}

int run(int argc, char** argv) {
  const options o = parse(argc, argv);
  gc::comm::mpi_communicator comm;
  fashion_mnist::labelled_images train_set, test_set;
  if (o.synthetic) {
    train_set = synthetic(4000, 1);
    test_set = synthetic(1000, 2);
  } else {
    train_set = fashion_mnist::load_split(o.data, "train");
    test_set = fashion_mnist::load_split(o.data, "t10k");
  }
  // In sharded mode Top-k keeps k per shard: the same density either way.
  const std::size_t shard = o.server == "sharded" && o.scheme != "ef_sgd" && o.scheme != "buckets"
                                ? mlp::size / comm.size()
                                : mlp::size;
  const auto k = static_cast<std::size_t>(std::max(1.0, o.density * static_cast<double>(shard)));
  if (comm.rank() == 0)
    std::printf("%s with %s (density %.4g) on %d ranks, server %s, exchange %s, d = %zu, batch %zu per rank, lr %.3g%s\n",
                o.scheme.c_str(), o.compressor.c_str(), o.density, comm.size(), o.server.c_str(), o.exchange.c_str(),
                mlp::size, o.batch, o.lr,
                o.synthetic ? ", synthetic data" : "");
  if (o.compressor == "top_k")
    run_with(gc::top_k{.k = k}, comm, o, train_set, test_set);
  else if (o.compressor == "hard_threshold")  // the hard-threshold paper's rule for Top-k's volume
    run_with(gc::hard_threshold{.lambda = 1.0 / (2.0 * std::sqrt(static_cast<double>(k)))}, comm, o, train_set, test_set);
  else if (o.compressor == "scaled_sign")
    run_with(gc::scaled_sign{}, comm, o, train_set, test_set);
  else if (o.compressor == "blockwise_sign")
    run_with(gc::blockwise_sign{.block_size = 256}, comm, o, train_set, test_set);
  else if (o.compressor == "identity")  // dense SGD, for scale
    run_with(gc::identity{}, comm, o, train_set, test_set);
  else
    throw std::invalid_argument("--compressor must be top_k, hard_threshold, scaled_sign, blockwise_sign or identity");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int code = 0;
  try {
    code = run(argc, argv);
  } catch (const fashion_mnist::missing_data& e) {
    std::fprintf(stderr, "gradcomp_mpi_training: %s\n  install %s, pass --data DIR, or use --synthetic\n", e.what(),
                 std::string(fashion_mnist::debian_package).c_str());
    code = 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gradcomp_mpi_training: %s\n", e.what());
    code = 1;
  }
  MPI_Finalize();
  return code;
}
