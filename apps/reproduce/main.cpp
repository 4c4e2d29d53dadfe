// gradcomp_reproduce: the papers' experiments on real data (docs/reproduction.md).
//
//   gradcomp_reproduce convex      hard-threshold vs Top-k under EF-SGD, logistic regression
//   gradcomp_reproduce nonconvex   an MLP on Fashion-MNIST: SGD, EF Top-k, EF hard-threshold,
//                                  DoubleSqueeze and LIEC-SGD with scaled and blockwise sign;
//                                  --methods peers: the peers' compressors
//
// Workers are threads of this process (gc::comm::local) unless the program was started by
// mpirun/mpiexec: then every MPI rank is one worker (gc::comm::mpi_communicator), and the
// curves are the same bits as a simulated run with as many workers and the same seed.
#include <gradcomp/distributed.hpp>
#if GRADCOMP_REPRO_MPI
#include <mpi.h>

#include <gradcomp/comm/mpi.hpp>
#endif

#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <limits>
#include <string>
#include <vector>

#include "convex_experiment.hpp"
#include "fashion_mnist.hpp"
#include "nonconvex_experiment.hpp"

namespace gc = gradcomp;
namespace fs = std::filesystem;

namespace {

/// Set by mpirun/mpiexec (Open MPI, MPICH/Hydra, PMIx): this process is one rank of several.
bool launched_by_mpi() {
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"})
    if (std::getenv(var)) return true;
  return false;
}

/// Runs body(comm, workers) on `workers` threads, or on this MPI rank when launched by mpirun.
template <class Body>
void on_workers(int workers, [[maybe_unused]] bool workers_given, Body&& body) {
  if (launched_by_mpi()) {
#if GRADCOMP_REPRO_MPI
    gc::comm::mpi_communicator comm;
    if (workers_given && workers != comm.size())
      throw std::invalid_argument("--workers " + std::to_string(workers) + " but mpirun started " +
                                  std::to_string(comm.size()) + " ranks (under MPI every rank is one worker)");
    body(comm, comm.size());
    return;
#else
    throw std::runtime_error("started by mpirun, but this gradcomp_reproduce was built without MPI");
#endif
  }
  gc::comm::local_group::run(workers, [&](gc::comm::local_communicator& comm) { body(comm, workers); });
}

int rank_of_process() {
#if GRADCOMP_REPRO_MPI
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized) {
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    return rank;
  }
#endif
  return 0;
}

std::vector<int> parse_classes(const std::string& text) {
  const auto comma = text.find(',');
  if (comma == std::string::npos) throw std::invalid_argument("--classes needs two classes as A,B (got " + text + ")");
  try {
    return {std::stoi(text.substr(0, comma)), std::stoi(text.substr(comma + 1))};
  } catch (const std::exception&) {
    throw std::invalid_argument("--classes needs two integers as A,B (got " + text + ")");
  }
}

struct convex_cli {
  repro::convex_settings s;
  std::string data, fashion_dir = std::string(fashion_mnist::debian_dir), classes = "0,6", start = "zero";
  std::size_t samples = 0;
  repro::libsvm_options libsvm;
  std::vector<std::string> methods{"sgd", "top_k", "hard_threshold", "budget_threshold"};
  repro::output_options out{.dir = "out/reproduce/convex", .plots = true};
  bool no_plots = false;
  CLI::Option* workers = nullptr;
};

void add_convex(CLI::App& app, convex_cli& c) {
  auto* cmd = app.add_subcommand(
      "convex",
      "The hard-threshold paper's convex experiment: regularised logistic regression (l2 = L/10000, step 1/(L+l2)), "
      "n workers with batch 1, EF-SGD with the step inside the compressed quantity; SGD vs EF Top-k vs EF "
      "hard-threshold with lambda calibrated to Top-k's total volume.");
  cmd->add_option("--data", c.data,
                  "A binary data set in LIBSVM text format (label index:value ...). Default: Fashion-MNIST, --classes");
  cmd->add_option("--positive-label", c.libsvm.positive_label,
                  "--data: the label that becomes +1 (the other becomes -1). Without it the labels must be -1 and +1, "
                  "or 0 and 1");
  cmd->add_option("--max-dim", c.libsvm.max_dim,
                  "--data: the largest feature index accepted; the model and each worker's gradient and residual are "
                  "dense vectors of that many doubles")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{std::numeric_limits<std::uint32_t>::max()}));
  cmd->add_option("--fashion-dir", c.fashion_dir, "Directory of the Fashion-MNIST IDX files")->capture_default_str();
  cmd->add_option(
         "--classes", c.classes,
         "Fashion-MNIST classes A,B for the binary task (A is +1): 0 T-shirt/top, 6 Shirt, 2 Pullover, 4 Coat, ...")
      ->capture_default_str();
  cmd->add_option("--samples", c.samples,
                  "Keep only N samples (0: all), for quick runs: drawn by a shuffle seeded with --seed, the same for "
                  "any order of the file's rows");
  c.workers = cmd->add_option("--workers", c.s.workers, "Simulated workers n (under mpirun: the number of ranks)")
                  ->capture_default_str()
                  ->check(CLI::PositiveNumber);
  cmd->add_option("--epochs", c.s.epochs, "Passes over the data by all workers together")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--k", c.s.k, "Top-k's k (default: --k-fraction of d, at least 1)");
  cmd->add_option("--k-fraction", c.s.k_fraction, "Top-k's k as a fraction of d when --k is not given")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--seeds", c.s.seeds, "Runs per method (seeds --seed, --seed+1, ...); curves show mean and min-max")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--seed", c.s.seed, "First seed")->capture_default_str();
  cmd->add_option("--start", c.start,
                  "Starting point: zero, or near (x* + offset in every coordinate, as the paper's code)")
      ->capture_default_str()
      ->check(CLI::IsMember({"zero", "near"}));
  cmd->add_option("--start-offset", c.s.start_offset, "The offset of --start near")->capture_default_str();
  cmd->add_option("--points-per-epoch", c.s.points_per_epoch, "Logged points per epoch (plus steps 1, 2, 4, ... early)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--tolerance", c.s.tolerance,
                  "Hard-threshold's total elements must match Top-k's within this fraction")
      ->capture_default_str()
      ->check(CLI::Range(0.001, 0.5));
  cmd->add_option("--calibration-fraction", c.s.calibration_fraction,
                  "Length of the short calibration runs as a fraction of a run (full runs refine after)")
      ->capture_default_str()
      ->check(CLI::Range(0.001, 1.0));
  cmd->add_option("--methods", c.methods, "Methods to run: sgd top_k hard_threshold budget_threshold")
      ->capture_default_str()
      ->check(CLI::IsMember({"sgd", "top_k", "hard_threshold", "budget_threshold"}));
  cmd->add_option("--out", c.out.dir, "Directory for the CSVs, plots and summary.json")->capture_default_str();
  cmd->add_flag("--no-plots", c.no_plots, "Do not run gnuplot");
}

/// The data in canonical order, --samples of them drawn with the first seed (samples.hpp).
repro::binary_dataset load_convex_data(const convex_cli& c) {
  repro::binary_dataset data;
  if (!c.data.empty()) {
    data = repro::load_libsvm(c.data, c.libsvm);
  } else {
    const auto classes = parse_classes(c.classes);
    data = repro::fashion_mnist_binary(fashion_mnist::load_split(c.fashion_dir, "train"), classes[0], classes[1]);
  }
  return repro::seeded_sample(repro::canonical(std::move(data)), c.samples, c.s.seed);
}

void run_convex_command(convex_cli& c) {
  c.s.start = c.start == "near" ? repro::start_point::near_optimum : repro::start_point::zero;
  c.out.plots = !c.no_plots;
  const bool talk = rank_of_process() == 0;
  const auto t0 = std::chrono::steady_clock::now();
  repro::binary_dataset data = load_convex_data(c);
  if (talk)
    std::printf("data: %s, %zu samples, d = %zu; +1 is label %s, -1 is label %s\n", data.name.c_str(), data.size(),
                data.dim(), repro::detail::format_number(data.positive_label).c_str(),
                repro::detail::format_number(data.negative_label).c_str());
  const repro::convex_problem p = repro::make_convex_problem(std::move(data));
  if (talk)
    std::printf("L = %.6g, l2 = L/10000 = %.6g, gamma = %.6g; f* = %.15g (||grad|| %.2g, %d Newton steps) in %.1f s\n",
                p.smoothness, p.l2, p.gamma, p.best.f, p.best.gradient_norm, p.best.newton_iterations,
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  on_workers(c.s.workers, c.workers->count() > 0, [&](auto& comm, int workers) {
    repro::convex_settings s = c.s;
    s.workers = workers;
    const auto result = repro::run_convex_experiment(comm, p, s, c.methods);
    if (comm.rank() == 0) repro::write_convex_report(p, s, result, c.out);
  });
}

struct nonconvex_cli {
  repro::nonconvex_settings s;
  std::string fashion_dir = std::string(fashion_mnist::debian_dir), server = "single";
  std::size_t train_samples = 0, test_samples = 0;
  std::vector<std::string> methods = repro::nonconvex_methods();
  repro::output_options out{.dir = "out/reproduce/nonconvex", .plots = true};
  bool no_plots = false;
  CLI::Option* workers = nullptr;
};

/// Every name --methods accepts: each method, and the lists "peers" and "all".
std::vector<std::string> nonconvex_method_names() {
  std::vector<std::string> names = repro::nonconvex_methods();
  names.insert(names.end(), repro::peer_methods().begin(), repro::peer_methods().end());
  names.insert(names.end(), {"peers", "all"});
  return names;
}

/// --methods with "peers" and "all" expanded, in order and without repeats.
std::vector<std::string> expand_methods(const std::vector<std::string>& given) {
  std::vector<std::string> out;
  const auto add = [&](const std::string& m) {
    if (std::find(out.begin(), out.end(), m) == out.end()) out.push_back(m);
  };
  for (const auto& m : given) {
    if (m == "all" || m == "peers") {
      if (m == "all")
        for (const auto& x : repro::nonconvex_methods()) add(x);
      for (const auto& x : repro::peer_methods()) add(x);
    } else {
      add(m);
    }
  }
  return out;
}

void add_nonconvex(CLI::App& app, nonconvex_cli& c) {
  auto* cmd = app.add_subcommand(
      "nonconvex",
      "Both papers' non-convex comparisons at small scale: a 784-128-10 MLP on Fashion-MNIST (10 classes), n workers: "
      "SGD, EF Top-k, EF hard-threshold (lambda calibrated to Top-k's density), EF scaled sign (MEM-SGD), "
      "DoubleSqueeze and LIEC-SGD with scaled and blockwise sign; test accuracy against epochs and bytes. "
      "--methods peers runs the peers' compressors instead (QSGD, TernGrad, natural compression, natural dithering, 8-bit max-min, 1-bit SGD, "
      "fp16/bf16 casts, Signum, budget threshold, EF21, Ok-Topk's global Top-k, DGC, PowerSGD), --methods all both.");
  cmd->add_option("--fashion-dir", c.fashion_dir, "Directory of the Fashion-MNIST IDX files")->capture_default_str();
  cmd->add_option("--train-samples", c.train_samples,
                  "Keep only N training images (0: all 60000), drawn by a shuffle seeded with --seed");
  cmd->add_option("--test-samples", c.test_samples,
                  "Keep only N test images (0: all 10000), drawn by a shuffle seeded with --seed");
  c.workers = cmd->add_option("--workers", c.s.workers, "Simulated workers n (under mpirun: the number of ranks)")
                  ->capture_default_str()
                  ->check(CLI::PositiveNumber);
  cmd->add_option("--epochs", c.s.epochs, "Passes over the training set by all workers together")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--batch", c.s.batch, "Images per worker and step")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--lr", c.s.lr, "Step size (constant, no momentum)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--density", c.s.density, "Top-k's k / d; hard-threshold is calibrated to the same volume")
      ->capture_default_str()
      ->check(CLI::Range(1e-6, 1.0));
  cmd->add_option("--block-size", c.s.block_size, "Blockwise sign's block size")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--sync-every", c.s.sync_every, "LIEC-SGD's H: every H-th step averages the models uncompressed")
      ->capture_default_str();
  cmd->add_option("--server", c.server, "DoubleSqueeze/LIEC-SGD server: single (rank 0) or sharded (1/n per rank)")
      ->capture_default_str()
      ->check(CLI::IsMember({"single", "sharded"}));
  cmd->add_option("--seeds", c.s.seeds, "Runs per method")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--seed", c.s.seed, "First seed")->capture_default_str();
  cmd->add_option("--points-per-epoch", c.s.points_per_epoch, "Test-accuracy evaluations per epoch")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--signum-lr", c.s.signum_lr, "Signum's step per coordinate (the sign's scale; lr is 1 there)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--calibration-fraction", c.s.calibration_fraction,
                  "Length of hard-threshold's calibration runs as a fraction of a run")
      ->capture_default_str()
      ->check(CLI::Range(0.001, 1.0));
  cmd->add_option("--methods", c.methods,
                  "Methods to run (default: the papers' methods); 'peers' adds the peers' compressors, 'all' both "
                  "lists")
      ->capture_default_str()
      ->check(CLI::IsMember(nonconvex_method_names()));
  cmd->add_option("--out", c.out.dir, "Directory for the CSVs, plots and summary.json")->capture_default_str();
  cmd->add_flag("--no-plots", c.no_plots, "Do not run gnuplot");
}

void run_nonconvex_command(nonconvex_cli& c) {
  c.s.server = c.server == "sharded" ? gc::server_mode::sharded : gc::server_mode::single;
  c.out.plots = !c.no_plots;
  const repro::nonconvex_data data = repro::make_nonconvex_data(fashion_mnist::load_split(c.fashion_dir, "train"),
                                                                fashion_mnist::load_split(c.fashion_dir, "t10k"),
                                                                c.train_samples, c.test_samples, c.s.seed);
  if (rank_of_process() == 0)
    std::printf("data: Fashion-MNIST, %zu training and %zu test images\n", data.train.size(), data.test.size());
  on_workers(c.s.workers, c.workers->count() > 0, [&](auto& comm, int workers) {
    repro::nonconvex_settings s = c.s;
    s.workers = workers;
    const auto result = repro::run_nonconvex_experiment(comm, data, s, expand_methods(c.methods));
    if (comm.rank() == 0) repro::write_nonconvex_report(data, s, result, c.out);
  });
}

int run(int argc, char** argv) {
  CLI::App app{
      "gradcomp_reproduce: the hard-threshold and LIEC-SGD papers' experiments on real data "
      "(under mpirun, every rank is one worker)"};
  app.require_subcommand(1);
  convex_cli convex;
  add_convex(app, convex);
  nonconvex_cli nonconvex;
  add_nonconvex(app, nonconvex);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (rank_of_process() == 0) return app.exit(e);
    return e.get_exit_code();
  }
  if (app.got_subcommand("convex"))
    run_convex_command(convex);
  else
    run_nonconvex_command(nonconvex);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Line-buffered even into a file or pipe, so the results and the progress lines (stderr)
  // appear in order in CI logs.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
#if GRADCOMP_REPRO_MPI
  const bool mpi = launched_by_mpi();
  if (mpi) MPI_Init(&argc, &argv);
#endif
  int code = 0;
  try {
    code = run(argc, argv);
  } catch (const fashion_mnist::missing_data& e) {
    std::fprintf(stderr, "gradcomp_reproduce: %s\n  install %s or pass --fashion-dir DIR\n", e.what(),
                 std::string(fashion_mnist::debian_package).c_str());
    code = 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gradcomp_reproduce: %s\n", e.what());
    code = 1;
  }
#if GRADCOMP_REPRO_MPI
  if (mpi) {
    // An error on one rank alone would leave the others waiting in a collective.
    if (code != 0) MPI_Abort(MPI_COMM_WORLD, code);
    MPI_Finalize();
  }
#endif
  return code;
}
