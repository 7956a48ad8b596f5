#pragma once
// GPTQ linear layers: the checkpoint layout as stored (AutoGPTQ / GPTQModel) and
// the kernel layout that gptq_prepare() converts it into. Host-only: no CUDA here,
// so the repacking is built and tested in CI without a GPU.
#include <cstdint>
#include <vector>

namespace nibble::kernels {

// One quantized linear as it is stored in a checkpoint, y = x W with W [K, N]:
//   qweight int32 [K / pack, N]      row k at bit offset bits * (k % pack) of word k / pack
//   qzeros  int32 [groups, N / pack] column n at bit offset bits * (n % pack)
//   scales  fp16  [groups, N]
//   g_idx   int32 [K] (may be null: row k is in group k / group_size)
// pack = 32 / bits. Format `gptq` stores zero - 1, `gptq_v2` the zero itself.
struct GptqCheckpointView {
  int64_t K = 0;  // input features
  int64_t N = 0;  // output features
  int bits = 4;        // 4 or 8
  int group_size = 128;  // 32, 64, 128, ... or -1 (one group over all of K)
  bool zero_minus_one = true;  // true for format `gptq`, false for `gptq_v2`
  const int32_t* qweight = nullptr;
  const int32_t* qzeros = nullptr;
  const uint16_t* scales = nullptr;
  const int32_t* g_idx = nullptr;
};

// The kernel's own layout (what the GPU holds). Rows are sorted by group
// (act-order resolved once, ExLlamaV2's make_sequential), so group g covers rows
// [g * group_rows, min((g + 1) * group_rows, K)) and the activations are gathered
// by `perm` at run time: sorted row r is checkpoint row perm[r].
//   qweight uint32 [K / pack, N]: word (r / pack, n) holds rows r..r+pack-1 of
//     column n with adjacent rows paired in the two fp16 halves of a word, so
//     one shift, mask and OR builds a half2 of two consecutive rows:
//       4-bit: (w >> 4j) & 0x000F000F = (q[2j], q[2j+1]) for j = 0..3
//       8-bit: (w >> 8j) & 0x00FF00FF = (q[2j], q[2j+1]) for j = 0..1
//   scales fp16 [groups, N]
//   zeros  fp16 [groups, N]: -(1024 + zero), so that (1024 + q) + zeros = q - zero
//     exactly in fp16 (the kernels build 1024 + q with the 0x6400 exponent trick)
//   perm   int32 [K], empty when the checkpoint rows are already in group order
struct GptqPrepared {
  int64_t K = 0;
  int64_t N = 0;
  int bits = 4;
  int group_rows = 0;  // rows per group (K for group_size -1)
  int64_t groups = 0;
  std::vector<uint32_t> qweight;
  std::vector<uint16_t> scales;
  std::vector<uint16_t> zeros;
  std::vector<int32_t> perm;

  int pack() const { return 32 / bits; }
  bool act_order() const { return !perm.empty(); }
};

// Number of groups a checkpoint linear has: ceil(K / group_size), 1 for -1.
int64_t gptq_group_count(int64_t K, int group_size);

// Validates a checkpoint linear and converts it to the kernel layout. Throws
// nibble::Error naming the field at fault: bits not 4/8, K or N not multiples of
// the packing, a group size that is not a positive multiple of 32 (or -1), a
// g_idx value out of range, or a g_idx whose groups, once sorted, are not the
// contiguous blocks of group_size rows that GPTQ (with or without act-order) writes.
GptqPrepared gptq_prepare(const GptqCheckpointView& checkpoint);

// The checks of gptq_prepare() alone (throws nibble::Error).
void gptq_validate(const GptqCheckpointView& checkpoint);

}  // namespace nibble::kernels
