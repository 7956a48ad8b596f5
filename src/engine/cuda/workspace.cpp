#include "workspace.h"

namespace nibble::cuda {
namespace {

// Hands out 256-byte aligned ranges of a base pointer (or just counts bytes when
// the base is null).
struct Carver {
  char* base = nullptr;
  size_t offset = 0;
  template <typename T>
  void operator()(T*& p, size_t count) {
    offset = (offset + 255) & ~size_t{255};
    p = base ? reinterpret_cast<T*>(base + offset) : nullptr;
    offset += count * sizeof(T);
  }
};

}  // namespace

template <typename Carve>
void Workspace::layout(const ModelConfig& c, Carve& carve) {
  const size_t T = limits.max_tokens, S = limits.max_seqs;
  const size_t H = c.hidden_size, I = c.intermediate_size, D = c.head_dim;
  const size_t QD = static_cast<size_t>(c.num_attention_heads) * D, KD = static_cast<size_t>(c.num_key_value_heads) * D;
  carve(residual, T * H);
  carve(normed, T * H);
  carve(qkv, T * (QD + 2 * KD));
  carve(q, T * QD);
  carve(attn, T * QD);
  carve(delta, T * H);
  carve(gate_up, T * 2 * I);
  carve(act, T * I);
  carve(gathered, S * H);
  carve(logits, S * static_cast<size_t>(c.vocab_size));
  carve(sampled, S);
  carve(split_out, static_cast<size_t>(limits.split_capacity) * QD);
  carve(split_lse, static_cast<size_t>(limits.split_capacity) * c.num_attention_heads * 2);
  carve(inv_freq, D / 2);
  char* splitk = nullptr;
  char* dequant = nullptr;
  char* cublas_ws = nullptr;
  carve(splitk, limits.gptq_splitk_bytes);
  carve(dequant, limits.gptq_dequant_bytes);
  carve(cublas_ws, limits.cublas_bytes);
  gptq_splitk = splitk;
  gptq_dequant = dequant;
  cublas = cublas_ws;
  carve(meta.token_ids, T);
  carve(meta.positions, T);
  carve(meta.slot_mapping, T);
  carve(meta.query_start, S + 1);
  carve(meta.seq_lens, S);
  carve(meta.kv_indptr, S + 1);
  carve(meta.kv_indices, static_cast<size_t>(limits.max_kv_indices));
  carve(meta.work_seq, static_cast<size_t>(limits.max_work));
  carve(meta.work_qoff, static_cast<size_t>(limits.max_work));
  carve(meta.logits_indices, S);
  carve(sample_jobs, static_cast<size_t>(limits.max_sample_jobs));
  carve(sample_entries, limits.max_sample_entries);
  carve(sample_out, static_cast<size_t>(limits.max_sample_jobs));
}

size_t Workspace::bytes_needed(const ModelConfig& c, const WorkspaceLimits& limits) {
  Workspace w;
  w.limits = limits;
  Carver carve;
  w.layout(c, carve);
  return carve.offset;
}

void Workspace::allocate(const ModelConfig& c, const WorkspaceLimits& l) {
  limits = l;
  storage_ = DeviceBuffer(bytes_needed(c, l));
  CUDA_CHECK(cudaMemset(storage_.get(), 0, storage_.bytes()));
  Carver carve{storage_.get<char>(), 0};
  layout(c, carve);
}

}  // namespace nibble::cuda
