// The demo model's tokenizer: shape, determinism, and agreement with Hugging Face's
// own tokenizer (npm `tokenizers`) loading the generated tokenizer.json.
#include "nibble/tokenizer/demo_tokenizer.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "nibble/core/error.h"
#include "nibble/tokenizer/tokenizer.h"
#include "test_paths.h"

namespace nibble {
namespace {

class DemoTokenizer : public ::testing::TestWithParam<int> {};

TEST_P(DemoTokenizer, ShapeAndRoundTrip) {
  const int vocab_size = GetParam();
  const auto files = make_demo_tokenizer(vocab_size);
  EXPECT_EQ(files.tokenizer_json, make_demo_tokenizer(vocab_size).tokenizer_json) << "not deterministic";
  const auto spec = nlohmann::json::parse(files.tokenizer_json);
  const auto tok = Tokenizer::from_json_text(files.tokenizer_json, files.tokenizer_config_json, "demo");
  EXPECT_EQ(tok->vocab_size(), vocab_size);
  EXPECT_EQ(spec["model"]["vocab"].size() + spec["added_tokens"].size(), static_cast<size_t>(vocab_size));
  EXPECT_GT(spec["model"]["merges"].size(), 200u);
  for (int b = 0; b < 256; ++b) EXPECT_TRUE(tok->id_to_token(b).has_value());

  for (const char* name : {"<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                           "<|eot_id|>"}) {
    const auto id = tok->token_to_id(name);
    ASSERT_TRUE(id.has_value()) << name;
    EXPECT_TRUE(tok->is_special(*id));
    EXPECT_EQ(tok->encode(name, false), std::vector<int32_t>{*id});
  }
  EXPECT_EQ(tok->bos_token(), "<|begin_of_text|>");
  EXPECT_EQ(tok->eos_token(), "<|eot_id|>");
  ASSERT_TRUE(tok->chat_template().has_value());
  EXPECT_NE(tok->chat_template()->find("add_generation_prompt"), std::string::npos);
  EXPECT_EQ(tok->eos_token_ids(), std::vector<int32_t>{*tok->token_to_id("<|eot_id|>")});

  const std::string text = "Hello! The model answers questions about 42 things.\n\nÄpfel 日本 😀";
  const auto ids = tok->encode(text, true);
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids.front(), *tok->token_to_id("<|begin_of_text|>"));
  EXPECT_EQ(tok->decode(ids, true), text);
  EXPECT_LT(tok->encode(demo_tokenizer_training_text(), false).size(), demo_tokenizer_training_text().size() / 2)
      << "merges should compress the training text";
}

TEST_P(DemoTokenizer, AgreesWithHuggingFace) {
  const auto node_modules = test::node_modules_dir();
  const std::string node = NIBBLE_NODE_EXECUTABLE;
  if (node.empty() || !std::filesystem::exists(node_modules / "tokenizers")) {
    GTEST_SKIP() << "node or tests/node/node_modules absent";
  }
  const int vocab_size = GetParam();
  const auto files = make_demo_tokenizer(vocab_size);
  const auto dir = std::filesystem::path(NIBBLE_BINARY_DIR) / "tokenizer_demo_check" / std::to_string(vocab_size);
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "tokenizer.json") << files.tokenizer_json;
  std::ofstream(dir / "tokenizer_config.json") << files.tokenizer_config_json;

  std::vector<std::string> corpus = {"", " ", "Hello world", "  two  spaces", "<|begin_of_text|>hi<|eot_id|>",
                                     "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>",
                                     "ünïcödé 日本語 👩‍👩‍👧 \t\r\n", "x = y + 1; return n * 2;"};
  std::istringstream lines(demo_tokenizer_training_text());
  for (std::string line; std::getline(lines, line);) {
    corpus.push_back(line);
    corpus.push_back(" " + line.substr(0, line.size() / 2) + "\n\n");
  }
  std::ofstream(dir / "corpus.json") << nlohmann::json(corpus).dump();
  const std::string cmd = "\"" + node + "\" \"" + NIBBLE_SOURCE_DIR + "/tests/tokenizer/hf_encode.js\" \"" +
                          node_modules.string() + "\" \"" + (dir / "tokenizer.json").string() + "\" \"" +
                          (dir / "corpus.json").string() + "\" \"" + (dir / "hf.json").string() + "\"";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  nlohmann::json hf;
  std::ifstream(dir / "hf.json") >> hf;
  const auto tok = Tokenizer::from_file(dir / "tokenizer.json");
  EXPECT_EQ(hf["vocab_size"].get<int>(), vocab_size);
  ASSERT_EQ(hf["results"].size(), corpus.size());
  for (size_t i = 0; i < corpus.size(); ++i) {
    const auto& r = hf["results"][i];
    EXPECT_EQ(tok->encode(corpus[i], true), r["with_special"].get<std::vector<int32_t>>()) << corpus[i];
    EXPECT_EQ(tok->encode(corpus[i], false), r["without_special"].get<std::vector<int32_t>>()) << corpus[i];
    const auto ids = r["with_special"].get<std::vector<int32_t>>();
    EXPECT_EQ(tok->decode(ids, false), r["decode"].get<std::string>());
    EXPECT_EQ(tok->decode(ids, true), r["decode_skip"].get<std::string>());
  }
  std::printf("[demo %d] %zu strings agree with Hugging Face\n", vocab_size, corpus.size());
}

INSTANTIATE_TEST_SUITE_P(Sizes, DemoTokenizer, ::testing::Values(512, 2048));

TEST(DemoTokenizerErrors, RejectsTinyVocab) { EXPECT_THROW(make_demo_tokenizer(100), Error); }

}  // namespace
}  // namespace nibble
