#pragma once
// Device pieces shared by the two tensor-core GPTQ kernels (gptq_mma.cu for up to
// 32 tokens, gptq_mma_wide.cu above): the MMA, the fp16 bit tricks of the
// dequantization, and the split-K finish.
#include <cuda_fp16.h>

#include <cstdint>

namespace nibble::kernels::detail::mma {

__device__ __forceinline__ void mma_16816(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                          uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// 16 bytes global -> shared without registers (cp.async; sm_80 and later).
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, bool valid) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  const int bytes = valid ? 16 : 0;  // 0: zero-fill, nothing read
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(bytes));
}

// Copies only when `valid` (the destination keeps its old contents otherwise).
__device__ __forceinline__ void cp_async16_if(void* smem, const void* gmem, bool valid) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile(
      "{\n .reg .pred p;\n setp.ne.b32 p, %2, 0;\n @p cp.async.cg.shared.global [%0], [%1], 16;\n}\n" ::"r"(s),
      "l"(gmem), "r"(static_cast<int>(valid)));
}

__device__ __forceinline__ void cp_async8_if(void* smem, const void* gmem, bool valid) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile(
      "{\n .reg .pred p;\n setp.ne.b32 p, %2, 0;\n @p cp.async.ca.shared.global [%0], [%1], 8;\n}\n" ::"r"(s),
      "l"(gmem), "r"(static_cast<int>(valid)));
}

__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }

template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_all;\n" ::); }

// (a & mask) | bits in one LOP3.
template <uint32_t MASK, uint32_t BITS>
__device__ __forceinline__ uint32_t and_or(uint32_t a) {
  uint32_t d;
  asm("lop3.b32 %0, %1, %2, %3, 0xEA;\n" : "=r"(d) : "r"(a), "n"(MASK), "n"(BITS));
  return d;
}

__device__ __forceinline__ uint32_t as_u32(__half2 h) { return *reinterpret_cast<const uint32_t*>(&h); }
__device__ __forceinline__ __half2 as_h2(uint32_t u) { return *reinterpret_cast<const __half2*>(&u); }

// The four pairs P_j = (q[2j], q[2j + 1]) - zero of a word, exact in fp16. Even
// pairs: (0x6400 | q) = 1024 + q, plus z = -(1024 + zero). Odd pairs are read in
// place as 1024 + 16 q: times 1/16 plus z64 = -(64 + zero).
__device__ __forceinline__ void dequant_word(uint32_t w, __half2 z, __half2 z64, uint32_t (&p)[4]) {
  const __half2 sixteenth = as_h2(0x2C002C00u);  // 1/16
  const uint32_t hi = w >> 8;
  p[0] = as_u32(__hadd2(as_h2(and_or<0x000F000Fu, 0x64006400u>(w)), z));
  p[1] = as_u32(__hfma2(as_h2(and_or<0x00F000F0u, 0x64006400u>(w)), sixteenth, z64));
  p[2] = as_u32(__hadd2(as_h2(and_or<0x000F000Fu, 0x64006400u>(hi)), z));
  p[3] = as_u32(__hfma2(as_h2(and_or<0x00F000F0u, 0x64006400u>(hi)), sixteenth, z64));
}

// Where a lane of the narrow tensor-core kernels reads its 4 columns' weights
// (word row t of each 32-row half), scales and zeros, from its split's first
// row on. The kernels request rows in order; enter_row moves the scale and zero
// pointers to the next group when the row starts one (a request never straddles
// groups).
template <typename Params>
struct LaneWeightSource {
  const uint32_t* w;
  const __half* s;
  const __half* z;
  int group_end;

  __device__ __forceinline__ LaneWeightSource(const Params& p, int k_begin, int t, int col)
      : w(p.qweight + (static_cast<size_t>(k_begin / 8 + t) * p.N + col)) {
    const int first_group = min(k_begin / p.group_rows, p.groups - 1);
    group_end = (first_group + 1) * p.group_rows;
    s = p.scales + (static_cast<size_t>(first_group) * p.N + col);
    z = p.zeros + (static_cast<size_t>(first_group) * p.N + col);
  }
  // Whether row k starts a new group (then s and z point at it).
  __device__ __forceinline__ bool enter_row(const Params& p, int k) {
    const bool new_group = k >= group_end;
    if (new_group) {
      group_end += p.group_rows;
      s += p.N;
      z += p.N;
    }
    return new_group;
  }
};

// x[row][perm[k .. k + 7]] (or x[row][k .. k + 7] without perm) packed as 4 half2,
// for x that cannot be loaded 16 bytes at a time.
__device__ __forceinline__ uint4 gather8(const __half* row, const int32_t* perm, int k) {
  uint32_t packed[4];
#pragma unroll
  for (int e = 0; e < 8; e += 2) {
    const unsigned short lo = __half_as_ushort(row[perm ? __ldg(perm + k + e) : k + e]);
    const unsigned short hi = __half_as_ushort(row[perm ? __ldg(perm + k + e + 1) : k + e + 1]);
    packed[e / 2] = static_cast<uint32_t>(lo) | static_cast<uint32_t>(hi) << 16;
  }
  return make_uint4(packed[0], packed[1], packed[2], packed[3]);
}

// -(64 + zero) from the stored -(1024 + zero): plus 960.
__device__ __forceinline__ __half2 zero_for_odd_pairs(__half2 z) { return __hadd2(z, as_h2(0x63806380u)); }

// The group constants of a lane's 4 adjacent columns, each broadcast to both
// halves: the zero for even pairs (the stored -(1024 + zero)), for odd pairs
// (-(64 + zero)) and the scale.
struct ColumnQuant {
  __half2 z[4], z64[4], scale2[4];
};

// From the columns' packed fp16 scales and zeros (one 8-byte load each).
__device__ __forceinline__ void unpack_column_quant(uint2 s, uint2 z, ColumnQuant& q) {
  const __half2 z01 = as_h2(z.x), z23 = as_h2(z.y);
  q.z[0] = __low2half2(z01);
  q.z[1] = __high2half2(z01);
  q.z[2] = __low2half2(z23);
  q.z[3] = __high2half2(z23);
#pragma unroll
  for (int i = 0; i < 4; ++i) q.z64[i] = zero_for_odd_pairs(q.z[i]);
  q.scale2[0] = __low2half2(as_h2(s.x));
  q.scale2[1] = __high2half2(as_h2(s.x));
  q.scale2[2] = __low2half2(as_h2(s.y));
  q.scale2[3] = __high2half2(as_h2(s.y));
}

// A lane's 16-byte chunk (word row t of its 4 columns) as the A-fragment pairs
// a[column][pair], q - zero exact, times the scale in fp16 when SCALED.
template <bool SCALED>
__device__ __forceinline__ void dequant_chunk(uint4 w, const ColumnQuant& q, uint32_t (&a)[4][4]) {
  dequant_word(w.x, q.z[0], q.z64[0], a[0]);
  dequant_word(w.y, q.z[1], q.z64[1], a[1]);
  dequant_word(w.z, q.z[2], q.z64[2], a[2]);
  dequant_word(w.w, q.z[3], q.z64[3], a[3]);
  if constexpr (SCALED) {
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) a[i][j] = as_u32(__hmul2(as_h2(a[i][j]), q.scale2[i]));
  }
}

__device__ __forceinline__ uint2 pack_half4(float a, float b, float c, float d) {
  return make_uint2(as_u32(__floats2half2_rn(a, b)), as_u32(__floats2half2_rn(c, d)));
}

__device__ __forceinline__ float4 load_bias4(const __half* bias, int n) {
  if (!bias) return make_float4(0.f, 0.f, 0.f, 0.f);
  const uint2 raw = *reinterpret_cast<const uint2*>(bias + n);
  const float2 a = __half22float2(as_h2(raw.x));
  const float2 b = __half22float2(as_h2(raw.y));
  return make_float4(a.x, a.y, b.x, b.y);
}

__device__ __forceinline__ void add_to_partial(float* dst, float4 v) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  atomicAdd(reinterpret_cast<float4*>(dst), v);
#else
  atomicAdd(dst, v.x);
  atomicAdd(dst + 1, v.y);
  atomicAdd(dst + 2, v.z);
  atomicAdd(dst + 3, v.w);
#endif
}

// After every thread of the block added its partial sums into the fp32
// accumulator: the last split of tile (mchunk, ntile) to arrive writes rows
// [m0, m0 + rows) x columns [n0, n0 + cols) of y (+ bias) and re-zeroes the
// accumulator and its counter. Called by every thread of the block.
//
// The sums are read kFinishBatch at a time before any is written (the bias
// loads after the stores hit L1, and most products have none): __ldcg is a
// volatile asm and __stcg clobbers memory, so a load-then-store loop made one
// dependent L2 round trip per float4, 16 per thread of a 64-token tile (H200:
// 8B gate/up at 64 rows 47.5 -> 39.0 µs, 4096x4096 22.9 -> 18.1 µs).
inline constexpr int kFinishBatch = 8;

__device__ __forceinline__ void finish_split_tile(float* partial, unsigned* counters, int splits, __half* y,
                                                  const __half* bias, int M, int N, int m0, int rows, int n0,
                                                  int cols, bool& last_block) {
  const int tid = threadIdx.x, threads = blockDim.x;
  __threadfence();
  __syncthreads();
  if (tid == 0) {
    unsigned* counter = counters + blockIdx.x * gridDim.y + blockIdx.y;
    const unsigned arrived = atomicAdd(counter, 1u);
    last_block = arrived == static_cast<unsigned>(splits - 1);
    if (last_block) *counter = 0u;  // leave the workspace as we found it
  }
  __syncthreads();
  if (!last_block) return;
  __threadfence();
  const int quads = cols / 4, total = rows * quads;
  auto offset_of = [&](int c, bool& ok) {
    const int row = m0 + c / quads, n = n0 + 4 * (c % quads);
    ok = c < total && row < M && n < N;
    return ok ? static_cast<size_t>(row) * N + n : size_t{0};
  };
  for (int first = tid; first < total; first += kFinishBatch * threads) {
    float4 sum[kFinishBatch];
#pragma unroll
    for (int i = 0; i < kFinishBatch; ++i) {
      bool ok;
      const size_t at = offset_of(first + i * threads, ok);
      sum[i] = ok ? __ldcg(reinterpret_cast<const float4*>(partial + at)) : make_float4(0.f, 0.f, 0.f, 0.f);
    }
#pragma unroll
    for (int i = 0; i < kFinishBatch; ++i) {
      bool ok;
      const int c = first + i * threads;
      const size_t at = offset_of(c, ok);
      if (!ok) continue;
      const float4 b = load_bias4(bias, n0 + 4 * (c % quads));
      __stcg(reinterpret_cast<float4*>(partial + at), make_float4(0.f, 0.f, 0.f, 0.f));
      *reinterpret_cast<uint2*>(y + at) =
          pack_half4(sum[i].x + b.x, sum[i].y + b.y, sum[i].z + b.z, sum[i].w + b.w);
    }
  }
}

}  // namespace nibble::kernels::detail::mma
