#pragma once
// Per-op timing of one decode step's kernels at a model's shapes (dummy data),
// to see where a step's time goes compared with its bytes.
#include "nibble/model/config.h"

namespace nibble::bench {

// Prints a table: op, ms per step (all layers), GB moved, fraction of copy_gbs.
void print_decode_breakdown(const ModelConfig& config, int batch, int context, double copy_gbs);

}  // namespace nibble::bench
