#pragma once
// Reading dense F32/F16/BF16 checkpoint tensors as fp32 (norm weights,
// embeddings, biases), with the shape and dtype checks that go with it.
#include <cstdint>
#include <string>
#include <vector>

#include "nibble/model/weights.h"

namespace nibble {

bool is_float_dtype(DType t);

// out[i] = fp16 src[i] as fp32 for i < n: F16C instructions where the CPU has
// them, else a table of every bit pattern (both exact).
void fp16_to_float_row(const uint16_t* src, float* out, int64_t n);
std::string shape_string(const std::vector<int64_t>& shape);

// Checks that t is present, F32/F16/BF16 and has exactly `shape`.
void check_dense(const TensorView& t, const std::vector<int64_t>& shape, const std::string& what);

// out[0:n) = t[row * n : (row + 1) * n) as fp32 (t is F32/F16/BF16, checked before).
void dense_row(const TensorView& t, int64_t row, int64_t n, float* out);

// Converts a 1-D tensor of n elements to fp32 after checking it.
std::vector<float> dense_vector(const TensorView& t, int64_t n, const std::string& what);

}  // namespace nibble
