#include <gtest/gtest.h>

#include "nibble/tokenizer/tokenizer.h"

namespace nibble {
namespace {

TEST(TokenizerUnit, Placeholder) { SUCCEED(); }

}  // namespace
}  // namespace nibble
