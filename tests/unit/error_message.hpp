#pragma once
// What the tests of error messages share: the message a call throws, and a substring check.
#include <doctest/doctest.h>

#include <gradcomp/error.hpp>
#include <string>

namespace gradcomp_test {

/// Runs f, which must throw gc::error; returns its message ("" and a failed check if not).
template <class F>
std::string error_message(F&& f) {
  try {
    f();
  } catch (const gradcomp::error& e) {
    return e.what();
  } catch (...) {
    FAIL_CHECK("threw something other than gc::error");
    return "";
  }
  FAIL_CHECK("did not throw");
  return "";
}

inline bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace gradcomp_test
