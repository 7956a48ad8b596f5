#include "embedding/embedding_ref.h"

#include <cstddef>

#include "nibble/core/half.h"

namespace nibble::kernels::ref {

void embedding_lookup(const uint16_t* table, const int32_t* ids, float* out, int tokens, int dim) {
  for (int t = 0; t < tokens; ++t)
    for (int i = 0; i < dim; ++i)
      out[static_cast<size_t>(t) * dim + i] = fp16_to_float(table[static_cast<size_t>(ids[t]) * dim + i]);
}

void gather_rows(const uint16_t* src, const int32_t* indices, uint16_t* dst, int rows, int dim) {
  for (int r = 0; r < rows; ++r)
    for (int i = 0; i < dim; ++i)
      dst[static_cast<size_t>(r) * dim + i] = src[static_cast<size_t>(indices[r]) * dim + i];
}

}  // namespace nibble::kernels::ref
