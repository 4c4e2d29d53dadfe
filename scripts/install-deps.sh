#!/usr/bin/env bash
# Installs (with apt-get) only the Debian packages that are missing.
# Usage: scripts/install-deps.sh [--python]
#   --python  also what the Python package, its tests and the PyTorch examples need
set -euo pipefail

# libtbb-dev, libhwy-dev: exec::par (gradcomp::tbb); libbenchmark-dev, python3: bench/ and its table script.
# libopenmpi-dev, openmpi-bin: comm::mpi_communicator (gradcomp::mpi) and the MPI tests.
# libcli11-dev, dataset-fashion-mnist, gnuplot-nox: gradcomp_reproduce, its data, its plots
# (the tests run it too, on small slices).
# clang-14, libclang-rt-14-dev: the fuzz targets (libFuzzer and the sanitizer runtimes; ctest label fuzz).
# libopenblas-dev, pkgconf: PowerSGD's products on exec::par (gradcomp::blas: OpenBLAS's multithreaded
# sgemm/dgemm through the cblas interface, found with pkg-config).
packages=(cmake g++ make doctest-dev libtbb-dev libhwy-dev libbenchmark-dev python3 libopenmpi-dev openmpi-bin
          libcli11-dev dataset-fashion-mnist gnuplot-nox clang-14 libclang-rt-14-dev libopenblas-dev pkgconf)
for arg in "$@"; do
  case "$arg" in
    # python3-dev, pybind11-dev, libdlpack-dev: gradcomp._core; python3-numpy, python3-torch:
    # the package's tests and gradcomp.torch (Debian's PyTorch 1.13, CPU, gloo);
    # python3-matplotlib: the plot of examples/pytorch/compare_hooks.py (also run by the tests).
    --python) packages+=(python3-dev pybind11-dev libdlpack-dev python3-numpy python3-torch python3-matplotlib) ;;
    *) echo "install-deps: unknown option $arg (known: --python)" >&2; exit 2 ;;
  esac
done

missing=()
for pkg in "${packages[@]}"; do
  # dpkg -s also succeeds for removed-but-configured packages; require "installed".
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-deps: all packages present (${packages[*]})"
  exit 0
fi

sudo=()
if [[ $(id -u) -ne 0 ]]; then
  sudo=(sudo)
fi

echo "install-deps: installing ${missing[*]}"
# env: sudo drops the caller's environment. Lock timeout: wait if apt is busy.
apt_opts=(-y -q -o DPkg::Lock::Timeout=600)
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" update
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" install --no-install-recommends "${missing[@]}"
