#pragma once
#include <cstdint>

namespace nibble::kernels::ref {

void embedding_lookup(const uint16_t* table, const int32_t* ids, float* out, int tokens, int dim);
void gather_rows(const uint16_t* src, const int32_t* indices, uint16_t* dst, int rows, int dim);

}  // namespace nibble::kernels::ref
