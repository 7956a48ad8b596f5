// `nibble tokenize` / `nibble detokenize` run as a real process on the demo tokenizer.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sys/wait.h>

#include "nibble/tokenizer/demo_tokenizer.h"
#include "nibble/tokenizer/tokenizer.h"

namespace nibble {
namespace {

struct Run {
  int status;
  std::string out;
};

Run run(const std::string& args) {
  const std::string cmd = std::string("\"") + NIBBLE_CLI + "\" " + args + " 2>&1";
  FILE* pipe = popen(cmd.c_str(), "r");
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) out.append(buf.data(), n);
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

class TokenizeCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("nibble_tokcli_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    const auto files = make_demo_tokenizer(512);
    std::ofstream(dir_ / "tokenizer.json") << files.tokenizer_json;
    std::ofstream(dir_ / "tokenizer_config.json") << files.tokenizer_config_json;
    tok_ = Tokenizer::from_model_dir(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string model() const { return "--model \"" + dir_.string() + "\""; }

  std::filesystem::path dir_;
  std::unique_ptr<Tokenizer> tok_;
};

TEST_F(TokenizeCli, PrintsIdsAsJson) {
  const std::string text = "Hello world, 42 tokens!";
  auto r = run("tokenize " + model() + " --text '" + text + "'");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(nlohmann::json::parse(r.out).get<std::vector<int32_t>>(), tok_->encode(text, true));
  r = run("tokenize " + model() + " --no-special --text '" + text + "'");
  EXPECT_EQ(nlohmann::json::parse(r.out).get<std::vector<int32_t>>(), tok_->encode(text, false));
  r = run("tokenize " + model() + " --count --text '" + text + "'");
  EXPECT_EQ(std::stoul(r.out), tok_->encode(text, true).size());
}

TEST_F(TokenizeCli, TokensModeShowsPiecesThatConcatenateToTheText) {
  auto r = run("tokenize --tokenizer \"" + (dir_ / "tokenizer.json").string() + "\" --no-special --tokens --text 'caf\xC3\xA9 time'");
  ASSERT_EQ(r.status, 0) << r.out;
  std::string joined;
  for (const auto& t : nlohmann::json::parse(r.out)) joined += t["text"].get<std::string>();
  EXPECT_EQ(joined, "caf\xC3\xA9 time");
}

TEST_F(TokenizeCli, DetokenizeReadsJsonOrPlainLists) {
  const auto ids = tok_->encode("The model answers.", true);
  std::string plain;
  for (int32_t id : ids) plain += std::to_string(id) + " ";
  auto r = run("detokenize " + model() + " --ids '" + nlohmann::json(ids).dump() + "'");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(r.out, "<|begin_of_text|>The model answers.\n");
  r = run("detokenize " + model() + " --skip-special --ids '" + plain + "'");
  EXPECT_EQ(r.out, "The model answers.\n");
  r = run("tokenize " + model() + " --text 'round trip' | \"" + std::string(NIBBLE_CLI) + "\" detokenize " + model() +
          " --skip-special");
  EXPECT_EQ(r.out, "round trip\n");
}

TEST_F(TokenizeCli, BadInputFailsWithAMessage) {
  auto r = run("detokenize " + model() + " --ids '1 two'");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("\"two\" is not a token id"), std::string::npos) << r.out;
  r = run("detokenize " + model() + " --ids '[99999]'");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("99999"), std::string::npos) << r.out;
  r = run("tokenize --text hi");
  EXPECT_NE(r.status, 0);
}

}  // namespace
}  // namespace nibble
