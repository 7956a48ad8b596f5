#pragma once
// Errors inside the Jinja engine. A RenderError carries only a message; the
// evaluator adds the line and column of the node being evaluated when it turns
// one into a nibble::Error.
#include <stdexcept>
#include <string>

namespace nibble::jinja {

struct SourcePos {
  int line = 1;
  int column = 1;
};

class RenderError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

[[noreturn]] inline void fail(const std::string& message) { throw RenderError(message); }

std::string located(const SourcePos& pos, const std::string& message);

}  // namespace nibble::jinja
