#pragma once
// Per-op timing of one decode step's kernels at a model's shapes (dummy data),
// to see where a step's time goes compared with its bytes.
#include "nibble/model/config.h"

namespace nibble::bench {

// Prints a table: op, ms per step (all layers), GB moved, fraction of copy_gbs,
// for `batch` sequences each adding `new_tokens` tokens after `context` cached
// ones (new_tokens 1: a decode step; a prompt length with context 0: a prefill).
void print_step_breakdown(const ModelConfig& config, int batch, int new_tokens, int context, double copy_gbs);

}  // namespace nibble::bench
