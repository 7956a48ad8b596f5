#include "nibble/model/weights.h"

namespace nibble {

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

size_t TensorView::nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype); }

}  // namespace nibble
