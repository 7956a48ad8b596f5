#pragma once
// Validation of a Batch against a model and a KV pool, shared by the backends:
// every index a forward pass will follow is checked so a malformed batch is a
// nibble::Error, never an out-of-bounds access.
#include "nibble/engine/backend.h"
#include "nibble/engine/batch.h"

namespace nibble {

// Checks the CSR shapes, token ids in [0, vocab_size), positions contiguous
// and ending at seq_lens[s] - 1, block tables exactly covering seq_lens with
// block ids in [0, kv.num_blocks), no block receiving new tokens twice (from
// two sequences or two entries of one table; shared prefix blocks that are
// only read are fine), and logits_indices in [0, num_tokens).
void validate_batch(const Batch& batch, int vocab_size, const KvCacheShape& kv);

}  // namespace nibble
