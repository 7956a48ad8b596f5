#pragma once
// Small fp32 vector kernels shared by the CPU backend's ops, written so the
// compiler vectorizes them without -ffast-math: sums use a fixed set of
// interleaved partial sums, so results never depend on batch composition.

// Hot loops are compiled twice on x86-64, for AVX2 and for the baseline, and
// picked at load time. Without FMA the two give bit-identical results.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define NIBBLE_VECTOR_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define NIBBLE_VECTOR_CLONES
#endif

namespace nibble {

inline float dot(const float* __restrict a, const float* __restrict b, int n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int k = 0;
  for (; k + 8 <= n; k += 8)
    for (int j = 0; j < 8; ++j) acc[j] += a[k + j] * b[k + j];
  float sum = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
  for (; k < n; ++k) sum += a[k] * b[k];
  return sum;
}

// y += a * x
inline void axpy(float a, const float* __restrict x, float* __restrict y, int n) {
  for (int i = 0; i < n; ++i) y[i] += a * x[i];
}

}  // namespace nibble
