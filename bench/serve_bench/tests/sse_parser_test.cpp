#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "sse_parser.h"

using nibble::serve_bench::SseParser;

namespace {
std::vector<std::string> parse_in_pieces(const std::string& stream, std::size_t piece) {
  std::vector<std::string> events;
  SseParser parser([&](std::string_view data) { events.emplace_back(data); });
  for (std::size_t i = 0; i < stream.size(); i += piece)
    EXPECT_TRUE(parser.feed(std::string_view(stream).substr(i, piece)));
  parser.finish();
  return events;
}
}  // namespace

TEST(SseParser, SplitsEventsWhateverTheReadSizes) {
  const std::string stream =
      "data: {\"a\":1}\n\n: keep-alive comment\n\ndata: {\"b\":2}\r\n\r\nevent: x\nid: 7\ndata: [DONE]\n\n";
  for (std::size_t piece : {1u, 2u, 3u, 7u, 1000u}) {
    const auto events = parse_in_pieces(stream, piece);
    ASSERT_EQ(events.size(), 3u) << "piece " << piece;
    EXPECT_EQ(events[0], "{\"a\":1}");
    EXPECT_EQ(events[1], "{\"b\":2}");
    EXPECT_EQ(events[2], "[DONE]");
  }
}

TEST(SseParser, JoinsMultiLineDataAndKeepsValueWithoutSpace) {
  const auto events = parse_in_pieces("data:first\ndata: second\n\n", 4);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0], "first\nsecond");
}

TEST(SseParser, FinishDispatchesAnUnterminatedEvent) {
  const auto events = parse_in_pieces("data: {\"x\":1}\n\ndata: [DONE]", 5);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1], "[DONE]");
}

TEST(SseParser, BlankLinesAloneProduceNoEvents) {
  EXPECT_TRUE(parse_in_pieces("\n\n\r\n: only a comment\n\n", 3).empty());
}

TEST(SseParser, RefusesAnEndlessLine) {
  SseParser parser([](std::string_view) {}, 64);
  EXPECT_TRUE(parser.feed(std::string(60, 'x')));
  EXPECT_FALSE(parser.feed(std::string(10, 'x')));
}
