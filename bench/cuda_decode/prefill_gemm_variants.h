#pragma once
// The large-M (prefill) GPTQ product at a model's four shapes, timed every way
// the dequantize + cuBLAS path can run: cuBLAS alone on an fp16 weight (both
// layouts, fp32 output, cublasLt's candidates), the dequantization alone, and the
// whole path.
#include "nibble/model/config.h"

namespace nibble::bench {

void print_prefill_gemm_variants(const ModelConfig& config, int M);

}  // namespace nibble::bench
