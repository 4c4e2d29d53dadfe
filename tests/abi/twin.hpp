#pragma once
// One program, two translation units that include <gradcomp/cpu.hpp>: native.cpp built with
// -march=native, portable.cpp without -march flags. Each reports what its own copy of the
// exec::par back end does. If the two copies shared symbols (the ODR violation cpu/abi.hpp
// prevents), the linker would keep one of them and both would report the same.
#include <cstdint>
#include <string>
#include <vector>

struct twin_report {
  std::string abi;                    // the inline namespace of the back end
  std::vector<std::string> compiled;  // gc::cpu::compiled_simd_targets()
  std::string chosen;                 // gc::cpu::simd_target()
  std::vector<std::uint32_t> indices;  // top_k{k} of the input, on exec::par
  std::vector<float> values;
  double norm = 0;                    // ||x||^2 on exec::par
};

twin_report run_native(const std::vector<float>& x, std::size_t k);
twin_report run_portable(const std::vector<float>& x, std::size_t k);
