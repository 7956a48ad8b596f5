// llama.cpp's tokenizer test vectors (../shared/testdata/tokenizer-vectors): NAME.inp holds
// texts separated by lines "__ggml_vocab_test__", NAME.out the expected ids (no BOS), one line each.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "nibble/tokenizer/tokenizer.h"
#include "test_paths.h"

namespace nibble {
namespace {

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> split_texts(const std::string& inp) {
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> texts;
  size_t pos = 0;
  while (pos < inp.size()) {
    const size_t next = inp.find(sep, pos);
    if (next == std::string::npos) break;
    texts.push_back(inp.substr(pos, next - pos));
    pos = next + sep.size();
  }
  return texts;
}

std::vector<std::vector<int32_t>> parse_ids(const std::string& out) {
  std::vector<std::vector<int32_t>> lines;
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::vector<int32_t> ids;
    int32_t id;
    while (ls >> id) ids.push_back(id);
    lines.push_back(std::move(ids));
  }
  return lines;
}

struct VectorCase {
  std::string vectors;
  std::string tokenizer;
};

void PrintTo(const VectorCase& c, std::ostream* os) { *os << c.vectors << " with " << c.tokenizer; }

class GgmlVectors : public ::testing::TestWithParam<VectorCase> {};

TEST_P(GgmlVectors, MatchExpectedIds) {
  const auto& param = GetParam();
  const auto dir = test::shared_dir() / "testdata/tokenizer-vectors";
  const auto inp = dir / ("ggml-vocab-" + param.vectors + ".gguf.inp");
  const auto outp = dir / ("ggml-vocab-" + param.vectors + ".gguf.out");
  const auto tok_path = test::tokenizer_json(param.tokenizer);
  if (!std::filesystem::exists(inp) || !std::filesystem::exists(tok_path)) GTEST_SKIP() << "test data absent";
  const auto texts = split_texts(read_file(inp));
  const auto expected = parse_ids(read_file(outp));
  ASSERT_EQ(texts.size(), expected.size()) << inp;
  ASSERT_GT(texts.size(), 10u);
  const auto tok = Tokenizer::from_files(tok_path, std::nullopt);
  for (size_t i = 0; i < texts.size(); ++i) {
    EXPECT_EQ(tok->encode(texts[i], false), expected[i])
        << param.vectors << " text " << i << ": " << nlohmann::json(texts[i]).dump();
  }
  std::printf("[%s] %zu vectors compared\n", param.vectors.c_str(), texts.size());
}

INSTANTIATE_TEST_SUITE_P(Vocabs, GgmlVectors,
                         ::testing::Values(VectorCase{"gpt-2", "gpt2"}, VectorCase{"llama-bpe", "llama3"},
                                           VectorCase{"qwen2", "qwen3"}, VectorCase{"llama-spm", "llama2"}),
                         [](const auto& info) {
                           std::string n = info.param.vectors;
                           for (auto& c : n) c = (c == '-') ? '_' : c;
                           return n;
                         });

}  // namespace
}  // namespace nibble
