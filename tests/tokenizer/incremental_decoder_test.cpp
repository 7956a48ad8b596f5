// Streaming detokenization: on random token streams of every reference tokenizer, the
// concatenated pieces equal decode(all ids), and no piece ends inside a UTF-8 sequence.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>

#include "nibble/tokenizer/tokenizer.h"
#include "test_paths.h"

namespace nibble {
namespace {

bool valid_utf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0 || i + len > s.size()) return false;
    for (size_t k = 1; k < len; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    }
    i += len;
  }
  return true;
}

std::string stream(const Tokenizer& tok, const std::vector<int32_t>& ids, bool skip, bool& pieces_valid) {
  IncrementalDecoder dec(tok, skip);
  std::string all;
  for (int32_t id : ids) {
    const std::string piece = dec.push(id);
    pieces_valid = pieces_valid && valid_utf8(piece);
    all += piece;
  }
  all += dec.finish();
  return all;
}

class IncrementalDecoding : public ::testing::TestWithParam<std::string> {};

TEST_P(IncrementalDecoding, PiecesConcatenateToDecodeAndPrefixGivesContext) {
  const auto path = test::tokenizer_json(GetParam());
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " absent";
  const auto tok = Tokenizer::from_files(path, std::nullopt);
  std::mt19937 rng(1234);
  const int vocab = tok->vocab_size();
  int streams = 0;
  auto check = [&](const std::vector<int32_t>& ids, const std::string& what) {
    for (bool skip : {false, true}) {
      bool pieces_valid = true;
      const std::string streamed = stream(*tok, ids, skip, pieces_valid);
      const std::string expected = tok->decode(ids, skip);
      ASSERT_EQ(streamed, expected) << GetParam() << " " << what << " ids " << nlohmann::json(ids).dump()
                                    << " skip=" << skip;
      ASSERT_TRUE(pieces_valid) << GetParam() << " " << what << " emitted incomplete UTF-8";
    }
    ++streams;
  };
  // Uniformly random ids, and ids biased towards byte tokens and specials (the low ids).
  for (int s = 0; s < 150; ++s) {
    std::vector<int32_t> ids(1 + rng() % 40);
    for (auto& id : ids) id = static_cast<int32_t>(rng() % 3 == 0 ? rng() % 400 : rng() % vocab);
    check(ids, "random stream");
  }
  // Real text, including multi-byte characters split over byte tokens.
  for (const std::string text : {"Hello world, how are you?", "  two  spaces\n\nand newlines",
                                 "日本語 and emoji 👩‍👩‍👧‍👦 😀 mixed", "ÄÖÜ äöü ß café", "def f(x):\n    return x * 2\n"}) {
    check(tok->encode(text, true), "text");
  }
  std::printf("[%s] %d streams checked\n", GetParam().c_str(), streams);

  // With the prompt as prefix, the first generated token keeps its leading space.
  const auto prompt = tok->encode("The capital of France is", true);
  const auto full = tok->encode("The capital of France is Paris, of course.", true);
  ASSERT_TRUE(std::equal(prompt.begin(), prompt.end(), full.begin()));
  IncrementalDecoder dec(*tok, true);
  dec.set_prefix(prompt);
  std::string out;
  for (size_t i = prompt.size(); i < full.size(); ++i) out += dec.push(full[i]);
  out += dec.finish();
  EXPECT_EQ(out, " Paris, of course.");
}

INSTANTIATE_TEST_SUITE_P(Tokenizers, IncrementalDecoding,
                         ::testing::Values("llama3", "qwen3", "gemma3", "mistral", "llama2", "gpt2"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace nibble
