#pragma once
// gc::error: the one exception type for everything a caller can get wrong.
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace gradcomp {

/// Thrown for every bad parameter, bad input or malformed buffer. It derives from
/// std::invalid_argument so that generic handlers catch it; the message names the
/// function, the parameter and the offending value.
class error : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

namespace detail {

template <class V>
void append_value(std::ostringstream& out, const V& v) {
  // Print small integer types as numbers, not characters.
  if constexpr (std::is_same_v<V, char> || std::is_same_v<V, signed char> ||
                std::is_same_v<V, unsigned char>)
    out << static_cast<int>(v);
  else
    out << v;
}

/// Throws gc::error with "gradcomp::<where>: " followed by the parts.
template <class... Parts>
[[noreturn]] void fail(const char* where, const Parts&... parts) {
  std::ostringstream out;
  out.precision(9);
  out << "gradcomp::" << where << ": ";
  (append_value(out, parts), ...);
  throw error(out.str());
}

}  // namespace detail
}  // namespace gradcomp
