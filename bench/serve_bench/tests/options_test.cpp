#include <gtest/gtest.h>

#include "nibble/core/error.h"
#include "options.h"

using namespace nibble::serve_bench;

TEST(Options, LoopbackUrlsAreAccepted) {
  Target t = parse_target("http://127.0.0.1:8011");
  EXPECT_EQ(t.host, "127.0.0.1");
  EXPECT_EQ(t.port, 8011);
  EXPECT_EQ(t.base_path, "");
  t = parse_target("http://localhost:9000/v1/");
  EXPECT_EQ(t.host, "localhost");
  EXPECT_EQ(t.port, 9000);
  EXPECT_EQ(t.base_path, "");
  t = parse_target("http://[::1]:8000/proxy/v1");
  EXPECT_EQ(t.host, "::1");
  EXPECT_EQ(t.base_path, "/proxy");
  EXPECT_EQ(parse_target("http://localhost").port, 80);
}

TEST(Options, NonLoopbackAndOddUrlsAreRefused) {
  for (const char* url : {"http://example.com:8000", "http://10.0.0.1:8000", "https://127.0.0.1:8000",
                          "127.0.0.1:8000", "http://127.0.0.1:0", "http://127.0.0.1:99999",
                          "http://127.0.0.1:80x", "http://127.0.0.1.evil.com", "http://[::1"}) {
    EXPECT_THROW(parse_target(url), nibble::Error) << url;
  }
}

TEST(Options, IntListsAreCheckedItemByItem) {
  EXPECT_EQ(parse_int_list("1,8,32,128", "--concurrency", 1, 4096), (std::vector<int>{1, 8, 32, 128}));
  EXPECT_THROW(parse_int_list("1,,8", "--concurrency", 1, 4096), nibble::Error);
  EXPECT_THROW(parse_int_list("1,0", "--concurrency", 1, 4096), nibble::Error);
  EXPECT_THROW(parse_int_list("4", "--concurrency", 1, 3), nibble::Error);
  EXPECT_THROW(parse_int_list("two", "--concurrency", 1, 4096), nibble::Error);
  EXPECT_THROW(parse_int_list("", "--concurrency", 1, 4096), nibble::Error);
}

TEST(Options, CommandLineParses) {
  const char* argv[] = {"serve_bench", "--url", "http://localhost:8011", "--concurrency", "2,4",
                        "--prompt-tokens", "16,32", "--max-tokens", "8", "--endpoint", "chat",
                        "--duration", "1.5"};
  const auto o = parse_options(static_cast<int>(std::size(argv)), const_cast<char**>(argv));
  ASSERT_TRUE(o.has_value());
  EXPECT_EQ(o->target.port, 8011);
  EXPECT_EQ(o->concurrency, (std::vector<int>{2, 4}));
  EXPECT_EQ(o->prompt_tokens, (std::vector<int>{16, 32}));
  EXPECT_EQ(o->max_tokens, 8);
  EXPECT_EQ(o->endpoint, Endpoint::chat);
  ASSERT_TRUE(o->duration_s.has_value());
  EXPECT_DOUBLE_EQ(*o->duration_s, 1.5);
}

TEST(Options, BadCommandLinesThrow) {
  const char* remote[] = {"serve_bench", "--url", "http://8.8.8.8:80"};
  EXPECT_THROW(parse_options(3, const_cast<char**>(remote)), nibble::Error);
  const char* zero[] = {"serve_bench", "--max-tokens", "0"};
  EXPECT_THROW(parse_options(3, const_cast<char**>(zero)), nibble::Error);
  const char* both[] = {"serve_bench", "--duration", "2", "--requests-per-client", "3"};
  EXPECT_THROW(parse_options(5, const_cast<char**>(both)), nibble::Error);
}
