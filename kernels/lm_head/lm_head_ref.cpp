#include "lm_head/lm_head_ref.h"

#include <cstddef>
#include <vector>

#include "nibble/core/half.h"

namespace nibble::kernels::ref {

void lm_head_logits(const uint16_t* x, const uint16_t* w, float* logits, int rows, int hidden, int vocab) {
  std::vector<double> xf(hidden);
  for (int m = 0; m < rows; ++m) {
    for (int k = 0; k < hidden; ++k) xf[k] = fp16_to_float(x[static_cast<size_t>(m) * hidden + k]);
    for (int v = 0; v < vocab; ++v) {
      const uint16_t* row = w + static_cast<size_t>(v) * hidden;
      double sum = 0.0;
      for (int k = 0; k < hidden; ++k) sum += xf[k] * fp16_to_float(row[k]);
      logits[static_cast<size_t>(m) * vocab + v] = static_cast<float>(sum);
    }
  }
}

}  // namespace nibble::kernels::ref
