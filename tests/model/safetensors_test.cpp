#include "nibble/model/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "nibble/core/error.h"
#include "nibble/model/tensor_store.h"
#include "temp_dir.h"

namespace nibble {
namespace {

using testing::TempDir;

// A safetensors file from raw header text and data bytes.
std::string raw_file(const std::string& header, const std::string& data, uint64_t declared_len = UINT64_MAX) {
  const uint64_t len = declared_len == UINT64_MAX ? header.size() : declared_len;
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((len >> (8 * i)) & 0xff);
  return out + header + data;
}

std::string load_error(const std::filesystem::path& path) {
  try {
    SafetensorsFile f(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

void expect_error(const TempDir& dir, const std::string& contents, const std::vector<std::string>& expected) {
  const auto path = dir / "bad.safetensors";
  testing::write_file(path, contents);
  const std::string message = load_error(path);
  ASSERT_FALSE(message.empty()) << "accepted: " << contents.substr(8);
  EXPECT_NE(message.find(path.string()), std::string::npos) << message;
  for (const auto& s : expected) EXPECT_NE(message.find(s), std::string::npos) << message;
}

TEST(Safetensors, RoundTripKeepsNamesDtypesShapesBytesAndMetadata) {
  TempDir dir;
  std::vector<float> a{1.5f, -2.0f, 3.25f, 0.0f, 7.0f, 8.0f};
  std::vector<uint16_t> b{0x3c00, 0xc000, 0x7bff};
  std::vector<int32_t> c{-1, 0, 123456789};
  std::vector<uint8_t> d{};  // an empty tensor
  write_safetensors(dir / "m.safetensors",
                    {{"a", DType::F32, {2, 3}, as_bytes_span(a)},
                     {"b.weight", DType::F16, {3}, as_bytes_span(b)},
                     {"c", DType::I32, {1, 3}, as_bytes_span(c)},
                     {"empty", DType::U8, {0, 4}, as_bytes_span(d)}},
                    {{"format", "pt"}, {"note", "hello"}});
  SafetensorsFile f(dir / "m.safetensors");
  EXPECT_EQ(f.metadata().at("format"), "pt");
  EXPECT_EQ(f.metadata().at("note"), "hello");
  ASSERT_EQ(f.tensors().size(), 4u);
  const SafetensorsTensor* ta = f.find("a");
  ASSERT_NE(ta, nullptr);
  EXPECT_EQ(ta->dtype, DType::F32);
  EXPECT_EQ(ta->shape, (std::vector<int64_t>{2, 3}));
  ASSERT_EQ(ta->nbytes(), 24u);
  EXPECT_EQ(std::memcmp(ta->data, a.data(), 24), 0);
  const SafetensorsTensor* tb = f.find("b.weight");
  ASSERT_NE(tb, nullptr);
  EXPECT_EQ(tb->dtype, DType::F16);
  EXPECT_EQ(std::memcmp(tb->data, b.data(), 6), 0);
  const SafetensorsTensor* tc = f.find("c");
  ASSERT_NE(tc, nullptr);
  EXPECT_EQ(std::memcmp(tc->data, c.data(), 12), 0);
  EXPECT_EQ(f.find("empty")->nbytes(), 0u);
  EXPECT_EQ(f.find("missing"), nullptr);

  // Read without mmap: same content.
  SafetensorsFile g(dir / "m.safetensors", /*use_mmap=*/false);
  EXPECT_EQ(std::memcmp(g.find("c")->data, c.data(), 12), 0);

  // The header is padded to 8 bytes, as the reference writer does.
  std::string bytes = testing::read_file(dir / "m.safetensors");
  uint64_t len = 0;
  std::memcpy(&len, bytes.data(), 8);
  EXPECT_EQ(len % 8, 0u);
}

TEST(Safetensors, WriterRejectsSizeMismatch) {
  TempDir dir;
  std::vector<float> a{1, 2, 3};
  EXPECT_THROW(write_safetensors(dir / "x.safetensors", {{"a", DType::F32, {2, 2}, as_bytes_span(a)}}), Error);
  EXPECT_THROW(write_safetensors(dir / "x.safetensors",
                                 {{"a", DType::F32, {3}, as_bytes_span(a)}, {"a", DType::F32, {3}, as_bytes_span(a)}}),
               Error);
}

TEST(Safetensors, RejectsMalformedFiles) {
  TempDir dir;
  const std::string data(16, '\x01');
  const std::string good = R"({"t":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}})";
  testing::write_file(dir / "ok.safetensors", raw_file(good, data));
  EXPECT_NO_THROW(SafetensorsFile(dir / "ok.safetensors"));

  expect_error(dir, "", {"8-byte"});                                   // empty file
  expect_error(dir, std::string("\x05\x00\x00", 3), {"8-byte"});      // shorter than the length field
  expect_error(dir, raw_file(good, data, 4096), {"header length", "past the end"});
  expect_error(dir, raw_file(good, data, 1ull << 40), {"header length"});
  expect_error(dir, raw_file(good, data.substr(0, 10)), {"'t'", "past the end"});  // truncated data
  expect_error(dir, raw_file("{\"t\": [1,", data), {"not valid JSON"});
  expect_error(dir, raw_file("[1, 2]", data), {"not an object"});
  expect_error(dir, raw_file(R"({"t":{"dtype":"F8_E4M3","shape":[16],"data_offsets":[0,16]}})", data),
               {"'t'", "F8_E4M3"});
  expect_error(dir, raw_file(R"({"t":{"dtype":"F32","shape":[2,2],"data_offsets":[0,24]}})", data),
               {"'t'", "past the end"});
  expect_error(dir, raw_file(R"({"t":{"dtype":"F32","shape":[2,2],"data_offsets":[8,4]}})", data),
               {"'t'", "begin past end"});
  expect_error(dir, raw_file(R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}})", data),
               {"'t'", "shape [3]"});
  expect_error(dir, raw_file(R"({"t":{"dtype":"F32","shape":[-1,4],"data_offsets":[0,16]}})", data), {"'t'", "shape"});
  expect_error(dir,
               raw_file(R"({"t":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,16]}})", data),
               {"'t'", "overflow"});
  expect_error(dir, raw_file(R"({"t":{"dtype":"F32","shape":[2,2]}})", data), {"'t'", "data_offsets"});
  expect_error(dir, raw_file(R"({"t":{"shape":[2,2],"data_offsets":[0,16]}})", data), {"'t'", "dtype"});
  expect_error(dir, raw_file(R"({"t":{"dtype":"F32","shape":"2x2","data_offsets":[0,16]}})", data), {"'t'", "shape"});
  expect_error(dir, raw_file(R"({"t":{"dtype":"F32","shape":[2,2],"data_offsets":[0,-16]}})", data),
               {"'t'", "data_offsets"});
  expect_error(dir, raw_file(R"({"t": 5})", data), {"'t'", "not an object"});
  expect_error(dir,
               raw_file(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},
                           "b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})",
                        data),
               {"overlaps", "'a'", "'b'"});
  // A big tensor containing a small one, with an empty tensor sorted between them.
  expect_error(dir,
               raw_file(R"({"a":{"dtype":"U8","shape":[16],"data_offsets":[0,16]},
                           "z":{"dtype":"U8","shape":[0],"data_offsets":[4,4]},
                           "b":{"dtype":"U8","shape":[2],"data_offsets":[6,8]}})",
                        data),
               {"overlaps", "'a'", "'b'"});
  // Nesting far deeper than any stack: rejected without recursing through it.
  const std::string deep = std::string(300000, '[') + std::string(300000, ']');
  std::string deep_shape = R"({"t":{"dtype":"F32","shape":[2,)";
  deep_shape.append(deep).append(R"(],"data_offsets":[0,16]}})");
  expect_error(dir, raw_file(deep_shape, data), {"'t'", "shape entry 1"});
  std::string deep_entry = R"({"t":)";
  deep_entry.append(deep).append("}");
  expect_error(dir, raw_file(deep_entry, data), {"'t'"});
  expect_error(dir, raw_file(R"({"__metadata__":{"format":5}})", data), {"__metadata__", "format"});
  expect_error(dir, raw_file(R"({"__metadata__":[1]})", data), {"__metadata__"});
}

TEST(Safetensors, ShardedWriteAndStoreLookup) {
  TempDir dir;
  std::vector<std::vector<float>> values;
  std::vector<TensorToWrite> tensors;
  for (int i = 0; i < 7; ++i) values.push_back(std::vector<float>(static_cast<size_t>(10 + i), 0.5f * i));
  for (int i = 0; i < 7; ++i)
    tensors.push_back({"t" + std::to_string(i), DType::F32, {10 + i}, as_bytes_span(values[static_cast<size_t>(i)])});
  write_sharded_safetensors(dir.path(), tensors, 3);
  EXPECT_TRUE(std::filesystem::exists(dir / "model-00001-of-00003.safetensors"));
  EXPECT_TRUE(std::filesystem::exists(dir / "model-00003-of-00003.safetensors"));
  auto index = nlohmann::json::parse(testing::read_file(dir / "model.safetensors.index.json"));
  EXPECT_EQ(index["weight_map"].size(), 7u);

  TensorStore store(dir.path());
  EXPECT_EQ(store.files().size(), 3u);
  EXPECT_EQ(store.names().size(), 7u);
  for (int i = 0; i < 7; ++i) {
    const SafetensorsTensor* t = store.find("t" + std::to_string(i));
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->shape, std::vector<int64_t>{10 + i});
    float first;
    std::memcpy(&first, t->data, 4);
    EXPECT_EQ(first, 0.5f * i);
  }
  EXPECT_EQ(store.find("nope"), nullptr);
  EXPECT_NE(store.files_searched().find("model.safetensors.index.json"), std::string::npos);

  // The index names a shard that lacks the tensor.
  index["weight_map"]["t0"] = "model-00003-of-00003.safetensors";
  testing::write_file(dir / "model.safetensors.index.json", index.dump());
  TensorStore lying(dir.path());
  try {
    lying.find("t0");
    FAIL() << "lookup through a wrong index succeeded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("t0"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("model-00003-of-00003.safetensors"), std::string::npos);
  }
  // Shard names must stay inside the folder, and must exist.
  index["weight_map"]["t0"] = "../escape.safetensors";
  testing::write_file(dir / "model.safetensors.index.json", index.dump());
  EXPECT_THROW(TensorStore{dir.path()}, Error);
  index["weight_map"]["t0"] = "model-00009-of-00009.safetensors";
  testing::write_file(dir / "model.safetensors.index.json", index.dump());
  EXPECT_THROW(TensorStore{dir.path()}, Error);
}

TEST(Safetensors, StoreFindsSingleFileAndRejectsAmbiguousFolders) {
  TempDir dir;
  EXPECT_THROW(TensorStore{dir.path()}, Error);  // nothing there
  std::vector<float> a{1, 2};
  write_safetensors(dir / "gptq_model-4bit-128g.safetensors", {{"a", DType::F32, {2}, as_bytes_span(a)}});
  TensorStore one(dir.path());
  EXPECT_NE(one.find("a"), nullptr);
  write_safetensors(dir / "other.safetensors", {{"b", DType::F32, {2}, as_bytes_span(a)}});
  EXPECT_THROW(TensorStore{dir.path()}, Error);
  write_safetensors(dir / "model.safetensors", {{"c", DType::F32, {2}, as_bytes_span(a)}});
  TensorStore preferred(dir.path());
  EXPECT_NE(preferred.find("c"), nullptr);
}

}  // namespace
}  // namespace nibble
