#pragma once
// Errors raised at module edges. Internal invariants use assert; anything a user
// can cause (bad files, bad requests, bad options) throws nibble::Error with a
// message that names the thing at fault.
#include <stdexcept>
#include <string>

namespace nibble {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

[[noreturn]] void throw_error(const std::string& message);

}  // namespace nibble

#define NIBBLE_CHECK(cond, message)                     \
  do {                                                  \
    if (!(cond)) ::nibble::throw_error(message);        \
  } while (0)
