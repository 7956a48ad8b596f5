// The tokenizer of a dummy model without tokenizer files: the demo tokenizer
// padded to the config's vocabulary. Every id decodes (random weights emit any
// id), ASCII text round-trips, and streaming equals whole decoding.
#include <gtest/gtest.h>

#include <random>

#include "nibble/core/error.h"
#include "nibble/tokenizer/demo_tokenizer.h"
#include "nibble/tokenizer/dummy_tokenizer.h"

namespace nibble::test {
namespace {

TEST(DummyTokenizer, EveryIdDecodesAndPaddedIdsArePlaceholders) {
  auto tok = make_dummy_tokenizer(5000);
  ASSERT_EQ(tok->vocab_size(), 5000);
  for (int32_t id = 0; id < 5000; ++id) {
    const std::string text = tok->decode(std::span<const int32_t>(&id, 1), /*skip_special_tokens=*/false);
    ASSERT_FALSE(text.empty()) << id;
    ASSERT_TRUE(tok->id_to_token(id).has_value()) << id;
  }
  const int32_t padded = 4321;
  EXPECT_EQ(tok->decode(std::span<const int32_t>(&padded, 1), true), "<id_4321>");
  EXPECT_EQ(tok->decode(std::span<const int32_t>(&padded, 1), false), "<id_4321>");
  EXPECT_FALSE(tok->is_special(padded));
  EXPECT_EQ(tok->token_to_id("<id_4321>"), 4321);
  EXPECT_EQ(tok->token_to_id("<id_4999>"), 4999);
  EXPECT_FALSE(tok->token_to_id("<id_5000>").has_value());  // past the model's vocabulary
  EXPECT_FALSE(tok->token_to_id("<id_12>").has_value());    // a real id of the base tokenizer
  EXPECT_FALSE(tok->token_to_id("<id_x>").has_value());
  EXPECT_EQ(tok->token_to_id("<|eot_id|>").has_value(), true);
  EXPECT_FALSE(tok->eos_token_ids().empty());
  EXPECT_TRUE(tok->chat_template().has_value());

  // Mixed runs keep the base tokenizer's text around the placeholders.
  std::vector<int32_t> ids = tok->encode("Hello world", false);
  ids.push_back(4000);
  for (int32_t id : tok->encode(" again", false)) ids.push_back(id);
  EXPECT_EQ(tok->decode(ids, false), "Hello world<id_4000> again");
}

TEST(DummyTokenizer, AsciiRoundTrips) {
  auto tok = make_dummy_tokenizer(128256);
  EXPECT_EQ(tok->vocab_size(), 128256);
  const std::string text = "The quick brown fox, 42 times: {\"json\": [1, 2]}\n\ttabs & <tags> ~!@#$%^*()_+";
  std::vector<int32_t> ids = tok->encode(text, false);
  for (int32_t id : ids) EXPECT_LT(id, 2048);
  EXPECT_EQ(tok->decode(ids, false), text);
  std::vector<int32_t> with_bos = tok->encode(text, true);
  EXPECT_EQ(with_bos.size(), ids.size() + 1);
  EXPECT_EQ(tok->decode(with_bos, true), text);
}

TEST(DummyTokenizer, StreamingEqualsWholeDecodeOnRandomIds) {
  auto tok = make_dummy_tokenizer(3000);
  std::mt19937 rng(5);
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<int32_t> prompt = tok->encode("A prompt for the stream", true);
    std::vector<int32_t> generated(40);
    for (auto& id : generated) id = static_cast<int32_t>(rng() % 3000);
    IncrementalDecoder decoder(*tok, /*skip_special_tokens=*/true);
    decoder.set_prefix(prompt);
    std::string streamed;
    for (int32_t id : generated) streamed += decoder.push(id);
    streamed += decoder.finish();
    EXPECT_EQ(streamed, tok->decode(generated, true)) << "trial " << trial;
  }
}

TEST(DummyTokenizer, SmallVocabulariesAndPadding) {
  // A vocabulary the demo tokenizer covers needs no padding.
  auto exact = make_dummy_tokenizer(1000);
  EXPECT_EQ(exact->vocab_size(), 1000);
  EXPECT_THROW(make_dummy_tokenizer(299), Error);
  try {
    make_dummy_tokenizer(100);
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tokenizer.json"), std::string::npos) << e.what();
  }
  // pad_vocabulary leaves a tokenizer that already covers the model alone.
  DemoTokenizerFiles files = make_demo_tokenizer(512);
  auto base = Tokenizer::from_json_text(files.tokenizer_json, files.tokenizer_config_json, "demo");
  const Tokenizer* raw = base.get();
  auto same = pad_vocabulary(std::move(base), 400);
  EXPECT_EQ(same.get(), raw);
  auto padded = pad_vocabulary(std::move(same), 600);
  EXPECT_EQ(padded->vocab_size(), 600);
  EXPECT_EQ(dummy_token_placeholder(599), "<id_599>");
}

}  // namespace
}  // namespace nibble::test
