#include "sampling/argmax_ref.h"

#include <cstddef>

namespace nibble::kernels::ref {

void argmax_rows(const float* logits, int32_t* out, int rows, int vocab) {
  for (int r = 0; r < rows; ++r) {
    const float* row = logits + static_cast<size_t>(r) * vocab;
    int best = 0;
    for (int i = 1; i < vocab; ++i)
      if (row[i] > row[best] || (row[best] != row[best] && row[i] == row[i])) best = i;
    out[r] = best;
  }
}

}  // namespace nibble::kernels::ref
