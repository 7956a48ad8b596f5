#pragma once
// Reading dense F32/F16/BF16 checkpoint tensors as fp32 (norm weights,
// embeddings, biases), with the shape and dtype checks that go with it.
#include <cstdint>
#include <string>
#include <vector>

#include "nibble/model/weights.h"

namespace nibble {

bool is_float_dtype(DType t);

// fp16 -> fp32 for every bit pattern, built once: a lookup is much cheaper than
// the bit manipulation of fp16_to_float when converting whole weights.
const std::vector<float>& fp16_table();
std::string shape_string(const std::vector<int64_t>& shape);

// Checks that t is present, F32/F16/BF16 and has exactly `shape`.
void check_dense(const TensorView& t, const std::vector<int64_t>& shape, const std::string& what);

// out[0:n) = t[row * n : (row + 1) * n) as fp32 (t is F32/F16/BF16, checked before).
void dense_row(const TensorView& t, int64_t row, int64_t n, float* out);

// Converts a 1-D tensor of n elements to fp32 after checking it.
std::vector<float> dense_vector(const TensorView& t, int64_t n, const std::string& what);

}  // namespace nibble
