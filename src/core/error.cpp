#include "nibble/core/error.h"

namespace nibble {

void throw_error(const std::string& message) { throw Error(message); }

}  // namespace nibble
