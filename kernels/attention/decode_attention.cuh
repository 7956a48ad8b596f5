#pragma once
// Internal to kernels/attention: the decode-step kernel (decode_attention.cu),
// dispatched by paged_attention() when PagedAttentionParams::decode_only is set.
#include "attention/attention.h"

namespace nibble::kernels {

bool decode_attention_supported(const PagedAttentionParams& p);
// Writes out directly (num_splits == 1, or a sequence with one split's worth of
// keys when split_counters is set), else the split partials, which the combine
// pass merges, or with split_counters the sequence's last split block.
cudaError_t launch_decode_attention(const PagedAttentionParams& p, cudaStream_t stream);

}  // namespace nibble::kernels
