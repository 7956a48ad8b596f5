// Malformed tokenizer.json / tokenizer_config.json files give a nibble::Error that names
// the file and what is wrong with it.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "nibble/core/error.h"
#include "nibble/tokenizer/tokenizer.h"

namespace nibble {
namespace {

using nlohmann::json;

json valid() {
  return json::parse(R"({
    "added_tokens": [{"id": 3, "content": "<s>", "special": true}],
    "normalizer": null, "pre_tokenizer": null, "post_processor": null, "decoder": null,
    "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}})");
}

class Malformed : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("nibble_malformed_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Writes `text` as tokenizer.json and expects loading to fail with a message that names
  // the file and contains every one of `parts`.
  void expect_error(const std::string& text, std::vector<std::string> parts) {
    const auto path = dir_ / "tokenizer.json";
    std::ofstream(path) << text;
    try {
      Tokenizer::from_files(path, std::nullopt);
      ADD_FAILURE() << "no error for: " << text.substr(0, 200);
    } catch (const Error& e) {
      const std::string msg = e.what();
      parts.push_back(path.string());
      for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "\"" << p << "\" not in: " << msg;
    }
  }
  json with(const std::string& pointer, const json& value) {
    json j = valid();
    j[json::json_pointer(pointer)] = value;
    return j;
  }
  std::filesystem::path dir_;
};

TEST_F(Malformed, NotJson) { expect_error("{\"model\": ", {"invalid JSON"}); }
TEST_F(Malformed, NotAnObject) { expect_error("[1, 2]", {"JSON object"}); }
TEST_F(Malformed, MissingModel) {
  json j = valid();
  j.erase("model");
  expect_error(j.dump(), {"missing field \"model\""});
}
TEST_F(Malformed, UnsupportedModel) { expect_error(with("/model/type", "WordPiece").dump(), {"WordPiece", "BPE"}); }
TEST_F(Malformed, VocabNotAnObject) { expect_error(with("/model/vocab", json::array()).dump(), {".model.vocab"}); }
TEST_F(Malformed, VocabIdNotANumber) { expect_error(with("/model/vocab/a", "zero").dump(), {"vocab[\"a\"]", "integer"}); }
TEST_F(Malformed, MissingMerges) {
  json j = valid();
  j["model"].erase("merges");
  expect_error(j.dump(), {"merges"});
}
TEST_F(Malformed, MergeOfUnknownToken) {
  expect_error(with("/model/merges", {"a b", "a zz"}).dump(), {"merges[1]", "\"zz\" is not in the vocab"});
}
TEST_F(Malformed, MergeWithoutSpace) { expect_error(with("/model/merges", {"ab"}).dump(), {"merges[0]", "\"ab\""}); }
TEST_F(Malformed, MergeNotStringOrPair) { expect_error(with("/model/merges", {42}).dump(), {"merges[0]"}); }
TEST_F(Malformed, UnkTokenNotInVocab) { expect_error(with("/model/unk_token", "<unk>").dump(), {"unk_token", "<unk>"}); }
TEST_F(Malformed, UnknownNormalizer) {
  expect_error(with("/normalizer", {{"type", "Precompiled"}}).dump(), {"normalizer", "Precompiled"});
}
TEST_F(Malformed, UnknownPreTokenizer) {
  expect_error(with("/pre_tokenizer", {{"type", "Sequence"}, {"pretokenizers", {{{"type", "Magic"}}}}}).dump(),
               {"pre_tokenizer.pretokenizers[0]", "Magic"});
}
TEST_F(Malformed, BadRegex) {
  expect_error(with("/pre_tokenizer", json::parse(R"({"type": "Split", "pattern": {"Regex": "(a"}, "behavior": "Isolated"})")).dump(),
               {"pre_tokenizer", "invalid regex", "(a"});
}
TEST_F(Malformed, BadSplitBehavior) {
  expect_error(with("/pre_tokenizer", json::parse(R"({"type": "Split", "pattern": {"String": " "}, "behavior": "Sideways"})")).dump(),
               {"behavior", "Sideways"});
}
TEST_F(Malformed, PatternWithoutStringOrRegex) {
  expect_error(with("/normalizer", json::parse(R"({"type": "Replace", "pattern": {"Glob": "*"}, "content": ""})")).dump(),
               {"normalizer.pattern"});
}
TEST_F(Malformed, UnknownDecoder) { expect_error(with("/decoder", {{"type", "CTC"}}).dump(), {"decoder", "CTC"}); }
TEST_F(Malformed, TemplateWithUnknownSpecialToken) {
  expect_error(with("/post_processor", json::parse(R"({"type": "TemplateProcessing",
      "single": [{"SpecialToken": {"id": "<bos>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
      "special_tokens": {}})")).dump(), {"post_processor", "<bos>"});
}
TEST_F(Malformed, AddedTokenWithoutContent) {
  expect_error(with("/added_tokens", json::parse(R"([{"id": 5, "special": true}])")).dump(),
               {"added_tokens[0]", "content"});
}
TEST_F(Malformed, AddedTokenWithNegativeId) {
  expect_error(with("/added_tokens", json::parse(R"([{"id": -1, "content": "x"}])")).dump(), {"added_tokens[0].id"});
}
TEST_F(Malformed, MissingFiles) {
  EXPECT_THROW(Tokenizer::from_file(dir_ / "absent.json"), Error);
  try {
    Tokenizer::from_model_dir(dir_);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tokenizer.json"), std::string::npos);
  }
}
TEST_F(Malformed, BadTokenizerConfig) {
  std::ofstream(dir_ / "tokenizer.json") << valid().dump();
  const auto cfg = dir_ / "tokenizer_config.json";
  for (const auto& [text, part] : std::vector<std::pair<std::string, std::string>>{
           {"{", "invalid JSON"}, {R"({"chat_template": 5})", "chat_template"}, {R"({"bos_token": 5})", "bos_token"},
           {R"({"add_bos_token": "yes"})", "add_bos_token"}}) {
    std::ofstream(cfg) << text;
    try {
      Tokenizer::from_file(dir_ / "tokenizer.json");
      ADD_FAILURE() << text;
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(cfg.string()), std::string::npos) << msg;
      EXPECT_NE(msg.find(part), std::string::npos) << msg;
    }
  }
}

}  // namespace
}  // namespace nibble
