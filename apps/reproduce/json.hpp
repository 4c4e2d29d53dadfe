#pragma once
// A minimal streaming JSON writer, for the reproduction program's summary.json.
//
// Streaming (begin/end calls rather than a document tree) because the summary is written once,
// in order; the writer keeps a stack of the open containers only to check that the calls form
// a valid document, so a mistake throws std::logic_error at the call that made it instead of
// producing a file that other tools cannot parse. Output is pretty-printed with a 2-space
// indent, one member or element per line; empty containers are written "{}" and "[]".
//
// Doubles are written as the shortest text that reads back to the same value; JSON has no NaN
// or infinity, so those are written as null. Strings are escaped per RFC 8259; bytes >= 0x80
// are copied unchanged (the caller provides UTF-8).
#include <charconv>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace repro {

class json_writer {
 public:
  json_writer& begin_object() {
    before_value("begin_object()");
    out_ += '{';
    stack_.push_back({true});
    return *this;
  }

  json_writer& end_object() { return end(true); }

  json_writer& begin_array() {
    before_value("begin_array()");
    out_ += '[';
    stack_.push_back({false});
    return *this;
  }

  json_writer& end_array() { return end(false); }

  /// The name of the next member of the innermost open object.
  json_writer& key(std::string_view k) {
    const auto misuse = [&](std::string_view problem) {
      std::string m = "json_writer: key(\"";
      m.append(k).append("\") ").append(problem);
      return std::logic_error(m);
    };
    if (stack_.empty())
      throw misuse(done_ ? "outside any object; expected nothing more (the document is complete)"
                         : "outside any object; expected a value or begin_object()");
    frame& f = stack_.back();
    if (!f.object) throw misuse("inside an array; expected a value");
    if (f.after_key) {
      std::string problem = "right after key(\"";
      problem.append(f.last_key).append("\"); expected a value for \"").append(f.last_key).append("\"");
      throw misuse(problem);
    }
    new_line(f);
    append_string(out_, k);
    out_ += ": ";
    f.after_key = true;
    f.last_key = k;
    return *this;
  }

  /// Shortest round-trip text; NaN and infinities are written as null (JSON has no such numbers).
  json_writer& value(double v) {
    before_value("value()");
    if (!std::isfinite(v)) {
      out_ += "null";
    } else {
      char buf[64];
      out_.append(buf, static_cast<std::size_t>(std::to_chars(buf, buf + sizeof buf, v).ptr -
                                                buf));  // (pointer, count): GCC 12 warns falsely on the iterator pair
    }
    after_scalar();
    return *this;
  }

  json_writer& value(std::int64_t v) { return integer(v); }
  json_writer& value(std::uint64_t v) { return integer(v); }
  json_writer& value(int v) { return integer(v); }

  /// Other integer types (long long, unsigned, short...), which would otherwise be ambiguous.
  /// Not bool (its own overload) nor char (more likely a mistake than a number).
  template <std::integral T>
  requires(!std::same_as<T, bool> && !std::same_as<T, char>) json_writer& value(T v) { return integer(v); }

  json_writer& value(bool v) {
    before_value("value()");
    out_ += v ? "true" : "false";
    after_scalar();
    return *this;
  }

  /// Escaped per RFC 8259: quote, backslash and control characters.
  json_writer& value(std::string_view s) {
    before_value("value()");
    append_string(out_, s);
    after_scalar();
    return *this;
  }

  /// A null pointer is written as null.
  json_writer& value(const char* s) { return s ? value(std::string_view(s)) : null(); }

  json_writer& null() {
    before_value("null()");
    out_ += "null";
    after_scalar();
    return *this;
  }

  /// key(k) then value(v).
  template <class T>
  json_writer& member(std::string_view k, const T& v) {
    key(k);
    return value(v);
  }

  /// True once one complete top-level value has been written.
  bool complete() const noexcept { return done_ && stack_.empty(); }

  /// The document (without a trailing newline). Throws std::logic_error if it is incomplete.
  const std::string& str() const {
    if (!stack_.empty())
      throw std::logic_error("json_writer: incomplete document: " + std::to_string(stack_.size()) +
                             " container(s) still open; expected " +
                             (stack_.back().object ? "end_object()" : "end_array()"));
    if (!done_) throw std::logic_error("json_writer: empty document; expected a value");
    return out_;
  }

  /// Writes str() and a newline to `path`. Throws std::logic_error if the document is
  /// incomplete, std::runtime_error "cannot write PATH" on an I/O error.
  void write(const std::filesystem::path& path) const {
    const std::string& s = str();
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    if (!f) throw std::runtime_error("cannot write " + path.string());
    f.write(s.data(), static_cast<std::streamsize>(s.size()));
    f.put('\n');
    f.flush();
    if (!f) throw std::runtime_error("error writing " + path.string());
  }

  /// Appends `s` to `out` as a quoted, escaped JSON string.
  static void append_string(std::string& out, std::string_view s) {
    out += '"';
    for (const char c : s) {
      switch (c) {
        case '"':
          out += "\\\"";
          break;
        case '\\':
          out += "\\\\";
          break;
        case '\n':
          out += "\\n";
          break;
        case '\r':
          out += "\\r";
          break;
        case '\t':
          out += "\\t";
          break;
        case '\b':
          out += "\\b";
          break;
        case '\f':
          out += "\\f";
          break;
        default:
          if (static_cast<unsigned char>(c) < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(c)));
            out += buf;
          } else {
            out += c;
          }
      }
    }
    out += '"';
  }

 private:
  struct frame {
    bool object;
    bool has_items = false;
    bool after_key = false;  // objects: key() written, its value not yet
    std::string last_key = {};
  };

  template <class T>
  json_writer& integer(T v) {
    before_value("value()");
    char buf[32];
    out_.append(buf, static_cast<std::size_t>(std::to_chars(buf, buf + sizeof buf, v).ptr -
                                              buf));  // (pointer, count): GCC 12 warns falsely on the iterator pair
    after_scalar();
    return *this;
  }

  // Line break and indent before the next member or element of `f` (the innermost container).
  void new_line(frame& f) {
    if (f.has_items) out_ += ',';
    out_ += '\n';
    out_.append(2 * stack_.size(), ' ');
    f.has_items = true;
  }

  void before_value(const char* what) {
    if (stack_.empty()) {
      if (done_)
        throw std::logic_error(std::string("json_writer: ") + what +
                               " after the complete top-level value; expected nothing more (a document has one "
                               "top-level value)");
      return;
    }
    frame& f = stack_.back();
    if (f.object) {
      if (!f.after_key)
        throw std::logic_error(std::string("json_writer: ") + what + " inside an object; expected key() first");
      f.after_key = false;
    } else {
      new_line(f);
    }
  }

  void after_scalar() {
    if (stack_.empty()) done_ = true;
  }

  json_writer& end(bool object) {
    const char* call = object ? "end_object()" : "end_array()";
    if (stack_.empty())
      throw std::logic_error(std::string("json_writer: ") + call + " with no open " + (object ? "object" : "array"));
    const frame& f = stack_.back();
    if (f.object != object)
      throw std::logic_error(std::string("json_writer: ") + call + " but the innermost open container is an " +
                             (f.object ? "object; expected end_object()" : "array; expected end_array()"));
    if (f.after_key)
      throw std::logic_error(std::string("json_writer: ") + call + " right after key(\"" + f.last_key +
                             "\"); expected its value");
    const bool had_items = f.has_items;
    stack_.pop_back();
    if (had_items) {
      out_ += '\n';
      out_.append(2 * stack_.size(), ' ');
    }
    out_ += object ? '}' : ']';
    after_scalar();
    return *this;
  }

  std::string out_;
  std::vector<frame> stack_;
  bool done_ = false;  // a complete top-level value has been written
};

}  // namespace repro
