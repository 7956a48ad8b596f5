#pragma once
// Byte counts as users write them in options: "24GiB", "512MiB", "80GB".
#include <cstdint>
#include <string>

namespace nibble {

// Parses a byte count: "24GiB", "512MiB", "80GB", "1.5G", "1000000". Binary
// suffixes (KiB, MiB, GiB, TiB, and K/M/G/T) are powers of 1024, KB/MB/GB/TB
// powers of 1000. Throws nibble::Error naming the text.
uint64_t parse_memory_size(const std::string& text);

}  // namespace nibble
