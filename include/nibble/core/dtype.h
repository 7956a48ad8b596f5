#pragma once
// Element types of tensors as they appear in safetensors files and in memory.
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace nibble {

enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };

size_t dtype_size(DType t);
std::string_view dtype_name(DType t);  // safetensors spelling, e.g. "F16"
std::optional<DType> parse_dtype(std::string_view safetensors_name);

}  // namespace nibble
