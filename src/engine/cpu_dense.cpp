#include "cpu_dense.h"

#include "nibble/core/error.h"
#include "nibble/core/half.h"

namespace nibble {

bool is_float_dtype(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

const std::vector<float>& fp16_table() {
  static const std::vector<float> table = [] {
    std::vector<float> t(65536);
    for (uint32_t h = 0; h < 65536; ++h) t[h] = fp16_to_float(static_cast<uint16_t>(h));
    return t;
  }();
  return table;
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
    case DType::F16: {
      const uint16_t* src = static_cast<const uint16_t*>(t.data) + offset;
      for (int64_t i = 0; i < n; ++i) out[i] = fp16_to_float(src[i]);
      break;
    }
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
