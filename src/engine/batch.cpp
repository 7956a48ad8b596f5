#include "nibble/engine/batch.h"

#include "nibble/core/error.h"

namespace nibble {

void set_block_tables(Batch& batch, const std::vector<std::vector<int32_t>>& block_tables, int block_size) {
  NIBBLE_CHECK(static_cast<int>(block_tables.size()) == batch.num_seqs(),
               "set_block_tables: one block table per sequence is needed");
  batch.kv_indptr.assign(1, 0);
  batch.kv_indices.clear();
  batch.kv_last_block_len.clear();
  for (size_t s = 0; s < block_tables.size(); ++s) {
    const auto& table = block_tables[s];
    int len = batch.seq_lens[s];
    int needed = (len + block_size - 1) / block_size;
    NIBBLE_CHECK(static_cast<int>(table.size()) >= needed, "set_block_tables: sequence has too few blocks");
    batch.kv_indices.insert(batch.kv_indices.end(), table.begin(), table.begin() + needed);
    batch.kv_indptr.push_back(static_cast<int32_t>(batch.kv_indices.size()));
    batch.kv_last_block_len.push_back(len - (needed - 1) * block_size);
  }
}

}  // namespace nibble
