#pragma once
// Helpers for tests that edit a written model folder's weights.
#include <cstring>
#include <deque>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "nibble/model/safetensors.h"

namespace nibble::testing {

// An editable, owned copy of a safetensors file's tensors.
struct EditableTensor {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  std::vector<std::byte> bytes;
};

inline std::vector<EditableTensor> read_tensors(const std::filesystem::path& file) {
  SafetensorsFile f(file);
  std::vector<EditableTensor> out;
  for (const auto& t : f.tensors())
    out.push_back({t.name, t.dtype, t.shape, std::vector<std::byte>(t.data, t.data + t.nbytes())});
  return out;
}

inline void write_tensors(const std::filesystem::path& file, const std::vector<EditableTensor>& tensors) {
  std::vector<TensorToWrite> list;
  for (const auto& t : tensors) list.push_back({t.name, t.dtype, t.shape, std::span<const std::byte>(t.bytes)});
  write_safetensors(file, list);
}

// Reads file, lets edit change the list, writes it back.
inline void edit_tensors(const std::filesystem::path& file,
                         const std::function<void(std::vector<EditableTensor>&)>& edit) {
  auto tensors = read_tensors(file);
  edit(tensors);
  write_tensors(file, tensors);
}

inline EditableTensor* find_tensor(std::vector<EditableTensor>& list, const std::string& name) {
  for (auto& t : list)
    if (t.name == name) return &t;
  return nullptr;
}

}  // namespace nibble::testing
