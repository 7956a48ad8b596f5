#pragma once
#include <cstdint>

namespace nibble::kernels::ref {

// The hash behind kernels/random_fill: splitmix64 of (seed, index).
uint64_t random_hash(uint64_t seed, uint64_t index);
float random_uniform(uint64_t seed, uint64_t index);  // in [-1, 1)

}  // namespace nibble::kernels::ref
