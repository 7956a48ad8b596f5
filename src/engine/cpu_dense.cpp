#include "cpu_dense.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

#include "nibble/core/error.h"
#include "nibble/core/half.h"

namespace nibble {

bool is_float_dtype(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

namespace {

const std::vector<float>& fp16_table() {
  static const std::vector<float> table = [] {
    std::vector<float> t(65536);
    for (uint32_t h = 0; h < 65536; ++h) t[h] = fp16_to_float(static_cast<uint16_t>(h));
    return t;
  }();
  return table;
}

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx,f16c"))) void fp16_to_float_row_f16c(const uint16_t* src, float* out, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
  for (; i < n; ++i) out[i] = fp16_to_float(src[i]);
}

bool have_f16c() {
  static const bool yes = __builtin_cpu_supports("f16c") && __builtin_cpu_supports("avx");
  return yes;
}
#endif

}  // namespace

void fp16_to_float_row(const uint16_t* src, float* out, int64_t n) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (have_f16c()) {
    fp16_to_float_row_f16c(src, out, n);
    return;
  }
#endif
  const float* table = fp16_table().data();
  for (int64_t i = 0; i < n; ++i) out[i] = table[src[i]];
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

void check_dense(const TensorView& t, const std::vector<int64_t>& shape, const std::string& what) {
  NIBBLE_CHECK(t.present(), what + ": tensor " + t.name + " is missing");
  NIBBLE_CHECK(is_float_dtype(t.dtype), what + ": tensor " + t.name + " has dtype " + std::string(dtype_name(t.dtype)) +
                                            ", expected F32, F16 or BF16");
  NIBBLE_CHECK(t.shape == shape,
               what + ": tensor " + t.name + " has shape " + shape_string(t.shape) + ", expected " + shape_string(shape));
}

void dense_row(const TensorView& t, int64_t row, int64_t n, float* out) {
  const int64_t offset = row * n;
  switch (t.dtype) {
    case DType::F32: {
      const float* src = static_cast<const float*>(t.data) + offset;
      for (int64_t i = 0; i < n; ++i) out[i] = src[i];
      break;
    }
    case DType::F16:
      fp16_to_float_row(static_cast<const uint16_t*>(t.data) + offset, out, n);
      break;
    case DType::BF16: {
      const uint16_t* src = static_cast<const uint16_t*>(t.data) + offset;
      for (int64_t i = 0; i < n; ++i) out[i] = bf16_to_float(src[i]);
      break;
    }
    default:
      throw_error("tensor " + t.name + " has dtype " + std::string(dtype_name(t.dtype)) + ", expected F32, F16 or BF16");
  }
}

std::vector<float> dense_vector(const TensorView& t, int64_t n, const std::string& what) {
  check_dense(t, {n}, what);
  std::vector<float> v(n);
  dense_row(t, 0, n, v.data());
  return v;
}

}  // namespace nibble
