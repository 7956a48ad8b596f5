#include "random_fill/random_fill_ref.h"

namespace nibble::kernels::ref {

uint64_t random_hash(uint64_t seed, uint64_t index) {
  uint64_t z = seed * 0x9e3779b97f4a7c15ull + index + 0x632be59bd9b4e019ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

float random_uniform(uint64_t seed, uint64_t index) {
  return static_cast<float>(random_hash(seed, index) >> 40) * (2.0f / 16777216.0f) - 1.0f;
}

}  // namespace nibble::kernels::ref
