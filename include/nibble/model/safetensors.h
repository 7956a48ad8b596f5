#pragma once
// The safetensors format: an 8-byte little-endian header length N, N bytes of
// JSON ({name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {..}}),
// then the data buffer that the offsets index. The reader maps the file and
// checks every offset against the file before handing out a pointer; the writer
// produces files the reader (and Hugging Face's safetensors) accept.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "nibble/core/dtype.h"

namespace nibble {

// A read-only file image: mmapped, or read into memory when use_mmap is false
// (slower, but lets memory checkers see every read). Empty files are allowed.
class MappedFile {
 public:
  MappedFile(const std::filesystem::path& path, bool use_mmap = true);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::filesystem::path& path() const { return path_; }
  const std::byte* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  std::filesystem::path path_;
  const std::byte* data_ = nullptr;
  size_t size_ = 0;
  void* mapping_ = nullptr;  // non-null when mmapped
  std::vector<std::byte> buffer_;  // used when not mmapped
};

struct SafetensorsTensor {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // offsets into the data buffer, as in the header
  uint64_t end = 0;
  const std::byte* data = nullptr;  // points into the file image

  size_t nbytes() const { return static_cast<size_t>(end - begin); }
};

// Parses and validates one safetensors file. Throws nibble::Error naming the
// file (and the tensor, where one is at fault) for any malformed content.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::filesystem::path& path, bool use_mmap = true);

  const std::filesystem::path& path() const { return file_.path(); }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::vector<SafetensorsTensor>& tensors() const { return tensors_; }
  const SafetensorsTensor* find(const std::string& name) const;

 private:
  MappedFile file_;
  std::map<std::string, std::string> metadata_;
  std::vector<SafetensorsTensor> tensors_;
  std::map<std::string, size_t> index_;
};

// Largest header accepted (the reference implementation's limit too).
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = 100u << 20;

struct TensorToWrite {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::span<const std::byte> data;  // must hold exactly numel * dtype_size bytes
};

// Writes one safetensors file (header padded to 8 bytes so every tensor is
// aligned when its predecessors are). Tensors are laid out in the given order.
void write_safetensors(const std::filesystem::path& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// Writes tensors split over `shards` files named model-0000i-of-0000n.safetensors
// plus model.safetensors.index.json (weight_map and metadata.total_size), in the
// layout Hugging Face's save_pretrained uses. shards must be >= 1.
void write_sharded_safetensors(const std::filesystem::path& dir, const std::vector<TensorToWrite>& tensors,
                               int shards, const std::map<std::string, std::string>& metadata = {});

// Convenience for building a TensorToWrite over a typed vector.
template <typename T>
std::span<const std::byte> as_bytes_span(const std::vector<T>& v) {
  return std::as_bytes(std::span<const T>(v));
}

}  // namespace nibble
