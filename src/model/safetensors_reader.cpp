#include <algorithm>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

#include "json_fields.h"
#include "nibble/core/error.h"
#include "nibble/model/safetensors.h"

namespace nibble {
namespace {

using json = nlohmann::json;

// a * b, or false when it does not fit in 64 bits.
bool checked_mul(uint64_t a, uint64_t b, uint64_t* out) {
  if (a != 0 && b > std::numeric_limits<uint64_t>::max() / a) return false;
  *out = a * b;
  return true;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

bool read_u64(const json& j, uint64_t* out) {
  if (j.is_number_unsigned()) {
    *out = j.get<uint64_t>();
    return true;
  }
  if (j.is_number_integer() && j.get<int64_t>() >= 0) {
    *out = static_cast<uint64_t>(j.get<int64_t>());
    return true;
  }
  return false;
}

SafetensorsTensor parse_entry(const std::string& file, const std::string& name, const json& entry,
                              uint64_t data_size) {
  auto fail = [&](const std::string& what) -> Error {
    return Error(file + ": tensor '" + name + "': " + what);
  };
  if (!entry.is_object()) throw fail("header entry is not an object");
  SafetensorsTensor t;
  t.name = name;

  auto dtype_it = entry.find("dtype");
  if (dtype_it == entry.end() || !dtype_it->is_string()) throw fail("missing or non-string 'dtype'");
  auto dtype = parse_dtype(dtype_it->get<std::string>());
  if (!dtype) throw fail("unsupported dtype '" + dtype_it->get<std::string>() + "'");
  t.dtype = *dtype;

  auto shape_it = entry.find("shape");
  if (shape_it == entry.end() || !shape_it->is_array()) throw fail("missing or non-array 'shape'");
  uint64_t numel = 1;
  for (const auto& dim : *shape_it) {
    uint64_t d = 0;
    if (!read_u64(dim, &d) || d > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      throw fail("shape entry " + std::to_string(t.shape.size()) + " is " + detail::describe_json_value(dim) +
                 ", not a non-negative integer");
    if (!checked_mul(numel, d, &numel))
      throw fail("shape entry " + std::to_string(t.shape.size()) + " (" + std::to_string(d) +
                 ") makes the element count overflow");
    t.shape.push_back(static_cast<int64_t>(d));
  }
  const std::string shape_text = shape_string(t.shape);

  auto offsets_it = entry.find("data_offsets");
  if (offsets_it == entry.end() || !offsets_it->is_array() || offsets_it->size() != 2 ||
      !read_u64((*offsets_it)[0], &t.begin) || !read_u64((*offsets_it)[1], &t.end))
    throw fail("'data_offsets' must be [begin, end] with non-negative integers");
  if (t.begin > t.end) throw fail("data_offsets " + offsets_it->dump() + " begin past end");
  if (t.end > data_size)
    throw fail("data_offsets " + offsets_it->dump() + " reach past the end of the data (" +
               std::to_string(data_size) + " bytes; file truncated?)");
  uint64_t expected = 0;
  if (!checked_mul(numel, dtype_size(t.dtype), &expected) || expected != t.end - t.begin)
    throw fail("data_offsets " + offsets_it->dump() + " span " + std::to_string(t.end - t.begin) +
               " bytes but shape " + shape_text + " of " + dtype_it->get<std::string>() + " needs " +
               std::to_string(numel) + " x " + std::to_string(dtype_size(t.dtype)) + " bytes");
  return t;
}

}  // namespace

SafetensorsFile::SafetensorsFile(const std::filesystem::path& path, bool use_mmap) : file_(path, use_mmap) {
  const std::string file = path.string();
  if (file_.size() < 8)
    throw Error(file + ": not a safetensors file (" + std::to_string(file_.size()) +
                " bytes, shorter than the 8-byte header length)");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | std::to_integer<uint64_t>(file_.data()[i]);
  if (header_len > kMaxSafetensorsHeaderBytes)
    throw Error(file + ": header length " + std::to_string(header_len) + " exceeds the " +
                std::to_string(kMaxSafetensorsHeaderBytes) + "-byte limit");
  if (header_len > file_.size() - 8)
    throw Error(file + ": header length " + std::to_string(header_len) + " reaches past the end of the file (" +
                std::to_string(file_.size()) + " bytes; truncated?)");

  const char* header_begin = reinterpret_cast<const char*>(file_.data() + 8);
  json header = json::parse(header_begin, header_begin + header_len, nullptr, /*allow_exceptions=*/false);
  if (header.is_discarded()) throw Error(file + ": header is not valid JSON");
  if (!header.is_object()) throw Error(file + ": header JSON is not an object");

  const uint64_t data_size = file_.size() - 8 - header_len;
  const std::byte* data_begin = file_.data() + 8 + header_len;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it->is_object()) throw Error(file + ": '__metadata__' is not an object");
      for (auto m = it->begin(); m != it->end(); ++m) {
        if (!m->is_string()) throw Error(file + ": '__metadata__' value of '" + m.key() + "' is not a string");
        metadata_[m.key()] = m->get<std::string>();
      }
      continue;
    }
    SafetensorsTensor t = parse_entry(file, it.key(), *it, data_size);
    t.data = data_begin + t.begin;
    tensors_.push_back(std::move(t));
  }

  // No two tensors may share bytes.
  std::vector<const SafetensorsTensor*> by_offset;
  for (const auto& t : tensors_) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(), [](const auto* a, const auto* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  const SafetensorsTensor* furthest = nullptr;  // the tensor reaching furthest so far
  for (const auto* cur : by_offset) {
    if (cur->end == cur->begin) continue;  // empty tensors own no bytes
    if (furthest != nullptr && cur->begin < furthest->end)
      throw Error(file + ": tensor '" + cur->name + "' (bytes " + std::to_string(cur->begin) + ".." +
                  std::to_string(cur->end) + ") overlaps tensor '" + furthest->name + "' (bytes " +
                  std::to_string(furthest->begin) + ".." + std::to_string(furthest->end) + ")");
    if (furthest == nullptr || cur->end > furthest->end) furthest = cur;
  }
  for (size_t i = 0; i < tensors_.size(); ++i) index_[tensors_[i].name] = i;
}

const SafetensorsTensor* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

}  // namespace nibble
