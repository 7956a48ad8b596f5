#include "nibble/engine/backend.h"

#include "nibble/core/error.h"

namespace nibble {

std::vector<int32_t> Backend::forward_greedy(const Batch&) {
  throw_error(name() + " backend has no device-side greedy sampling");
}

}  // namespace nibble
