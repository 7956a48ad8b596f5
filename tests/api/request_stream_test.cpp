#include <gtest/gtest.h>

#include "fake_codec.h"
#include "nibble/api/request_stream.h"

using namespace nibble;
using nibble::fakes::ByteCodec;
using nibble::fakes::kByteEos;

namespace {

std::vector<int32_t> bytes(const std::string& s) {
  std::vector<int32_t> ids;
  for (unsigned char c : s) ids.push_back(c);
  return ids;
}

RequestOutput delivery(std::vector<int32_t> tokens, std::optional<FinishReason> finish = std::nullopt) {
  RequestOutput out;
  out.new_tokens = std::move(tokens);
  out.finish = finish;
  return out;
}

api::RequestStream make_stream(std::vector<std::string> stops, bool include = false) {
  static const ByteCodec codec;
  return api::RequestStream(codec.stream_decoder({}, true), {std::move(stops), include});
}

// Feeds text one token per delivery and returns every emitted piece.
std::vector<std::string> feed_one_by_one(api::RequestStream& stream, const std::string& text,
                                         std::optional<FinishReason> last_finish) {
  std::vector<std::string> pieces;
  auto ids = bytes(text);
  for (size_t i = 0; i < ids.size() && !stream.finished(); ++i) {
    auto finish = i + 1 == ids.size() ? last_finish : std::nullopt;
    pieces.push_back(stream.push(delivery({ids[i]}, finish)).text);
  }
  return pieces;
}

}  // namespace

TEST(RequestStream, PassesTextThroughWithoutStops) {
  auto s = make_stream({});
  auto u1 = s.push(delivery(bytes("Hello ")));
  EXPECT_EQ(u1.text, "Hello ");
  auto u2 = s.push(delivery(bytes("world"), FinishReason::Length));
  EXPECT_EQ(u2.text, "world");
  EXPECT_EQ(u2.finish_reason, "length");
  EXPECT_EQ(s.text(), "Hello world");
  EXPECT_EQ(s.completion_tokens(), 11);
  EXPECT_TRUE(s.finished());
}

TEST(RequestStream, MultiByteCharactersAreNeverSplit) {
  auto s = make_stream({});
  std::string text = "a\xC3\xA9\xE6\x97\xA5\xF0\x9F\x98\x80z";  // a é 日 😀 z
  auto pieces = feed_one_by_one(s, text, FinishReason::Length);
  for (const auto& p : pieces) EXPECT_TRUE(p.empty() || nlohmann::json(p).dump().size() > 0);
  EXPECT_EQ(pieces[1], "");            // first byte of é held
  EXPECT_EQ(pieces[2], "\xC3\xA9");    // é complete
  EXPECT_EQ(s.text(), text);
}

TEST(RequestStream, StopStringAcrossTokensIsHeldBackAndNeverEmitted) {
  auto s = make_stream({"STOP"});
  std::string streamed;
  auto ids = bytes("abc STxSTOP more");
  bool stopped = false;
  for (int32_t id : ids) {
    auto u = s.push(delivery({id}));
    streamed += u.text;
    EXPECT_EQ(streamed.find("ST", 4 + 1), std::string::npos) << "held-back text leaked: " << streamed;
    if (u.finish_reason) {
      EXPECT_EQ(*u.finish_reason, "stop");
      stopped = true;
      break;
    }
  }
  EXPECT_TRUE(stopped);
  EXPECT_TRUE(s.stop_string_matched());
  EXPECT_EQ(streamed, "abc STx");
  EXPECT_EQ(s.text(), "abc STx");
  EXPECT_EQ(s.completion_tokens(), 11);  // up to and including the token completing STOP
}

TEST(RequestStream, HeldTextIsReleasedWhenItCannotBeAStop) {
  auto s = make_stream({"<end>"});
  EXPECT_EQ(s.push(delivery(bytes("x<en"))).text, "x");
  EXPECT_EQ(s.push(delivery(bytes("d"))).text, "");
  EXPECT_EQ(s.push(delivery(bytes("!"))).text, "<end!");
  auto last = s.push(delivery(bytes("<e"), FinishReason::Length));
  EXPECT_EQ(last.text, "<e");  // flushed at the finish
  EXPECT_EQ(last.finish_reason, "length");
}

TEST(RequestStream, IncludeStopStringInOutput) {
  auto s = make_stream({"\xE6\x97\xA5"}, true);  // 日, three tokens
  std::string out;
  for (const auto& p : feed_one_by_one(s, "ab\xE6\x97\xA5zz", std::nullopt)) out += p;
  EXPECT_TRUE(s.stop_string_matched());
  EXPECT_EQ(out, "ab\xE6\x97\xA5");
}

TEST(RequestStream, EarliestOfSeveralStopsWins) {
  auto s = make_stream({"bb", "a"});
  auto u = s.push(delivery(bytes("xxbbya"), FinishReason::Length));
  EXPECT_EQ(u.text, "xx");
  EXPECT_EQ(u.finish_reason, "stop");
}

TEST(RequestStream, StopTokenTextIsNotOutputUnlessAsked) {
  auto s = make_stream({});
  RequestOutput out = delivery({'h', 'i', '!'}, FinishReason::Stop);
  out.finished_by_stop_token = true;
  auto u = s.push(out);
  EXPECT_EQ(u.text, "hi");
  EXPECT_EQ(u.finish_reason, "stop");
  EXPECT_EQ(s.completion_tokens(), 3);

  auto t = make_stream({}, true);
  EXPECT_EQ(t.push(out).text, "hi!");

  auto e = make_stream({});
  RequestOutput eos = delivery({'o', 'k', kByteEos}, FinishReason::Stop);
  eos.finished_by_stop_token = true;
  EXPECT_EQ(e.push(eos).text, "ok");
}

TEST(RequestStream, DeliveriesAfterTheFinishAreIgnored) {
  auto s = make_stream({"x"});
  EXPECT_EQ(s.push(delivery(bytes("ax"))).finish_reason, "stop");
  auto later = s.push(delivery(bytes("more"), FinishReason::Abort));
  EXPECT_EQ(later.text, "");
  EXPECT_FALSE(later.finish_reason.has_value());
  EXPECT_EQ(s.text(), "a");
}

TEST(RequestStream, StopMatchesInTheFinalFlush) {
  auto s = make_stream({"end"});
  EXPECT_EQ(s.push(delivery(bytes("the en"))).text, "the ");
  auto u = s.push(delivery(bytes("d"), FinishReason::Length));
  EXPECT_EQ(u.text, "");
  EXPECT_EQ(u.finish_reason, "stop");
}

TEST(RequestStream, AbortAndErrorMapToTheirReasons) {
  auto a = make_stream({});
  EXPECT_EQ(a.push(delivery({}, FinishReason::Abort)).finish_reason, "abort");
  auto e = make_stream({});
  RequestOutput err = delivery({}, FinishReason::Error);
  err.error = "boom";
  auto u = e.push(err);
  EXPECT_EQ(u.finish_reason, "error");
  EXPECT_EQ(u.error, "boom");
}

TEST(RequestStream, LogprobsAndTextOffsetsFollowTheTokens) {
  auto s = make_stream({});
  RequestOutput out = delivery({'a', 'b'});
  out.logprobs = {{'a', -0.5f, {{'a', -0.5f}}}, {'b', -1.5f, {{'b', -1.5f}}}};
  auto u = s.push(out);
  ASSERT_EQ(u.logprobs.size(), 2u);
  EXPECT_EQ(u.text_offsets, (std::vector<size_t>{0, 1}));
  RequestOutput next = delivery({'c'}, FinishReason::Length);
  next.logprobs = {{'c', -0.1f, {}}};
  auto v = s.push(next);
  EXPECT_EQ(v.text_offsets, (std::vector<size_t>{2}));
}
