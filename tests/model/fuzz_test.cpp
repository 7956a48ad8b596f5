// Mutates a good demo model thousands of times (byte flips, truncations,
// header-length and header-JSON edits, config.json edits, index edits) and
// checks that every load either succeeds, with every tensor view readable, or
// throws nibble::Error with a message. Built twice: plainly, and with
// -fsanitize=address,undefined over the model sources (model_fuzz_asan).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <random>

#include "nibble/core/error.h"
#include "nibble/model/demo_model.h"
#include "nibble/model/gptq.h"
#include "nibble/model/loader.h"
#include "nibble/model/weight_names.h"
#include "temp_dir.h"

// The sanitizer build names its suite differently so ctest names stay unique.
#ifndef NIBBLE_FUZZ_SUITE
#define NIBBLE_FUZZ_SUITE ModelFuzz
#endif

#ifndef NIBBLE_FUZZ_ITERATIONS
#define NIBBLE_FUZZ_ITERATIONS 3000
#endif

#ifdef NIBBLE_FUZZ_SANITIZED
// LeakSanitizer cannot run where ptrace is denied (many CI containers), and it
// would then fail test discovery at build time; out-of-bounds and UB checks stay on.
extern "C" const char* __asan_default_options() { return "detect_leaks=0"; }
#endif

namespace nibble {
namespace {

using json = nlohmann::json;
using testing::TempDir;

int iterations() {
  if (const char* env = std::getenv("NIBBLE_FUZZ_ITERATIONS")) return std::max(1, std::atoi(env));
  return NIBBLE_FUZZ_ITERATIONS;
}

// Reads every byte a loaded model's views point at, the way a backend would.
uint64_t touch_everything(const LoadedModel& model) {
  uint64_t checksum = 0;
  auto touch = [&](const TensorView& v) {
    if (!v.present()) return;
    const auto* p = static_cast<const unsigned char*>(v.data);
    for (size_t i = 0; i < v.nbytes(); ++i) checksum = checksum * 31 + p[i];
  };
  ModelWeights w = model.weights();
  for_each_weight(model.config(), w,
                  {[&](const TensorSpec&, TensorView& v) { touch(v); },
                   [&](const LinearSpec&, LinearWeights& l) {
                     for (const TensorView* v : {&l.weight, &l.qweight, &l.qzeros, &l.scales, &l.g_idx, &l.bias})
                       touch(*v);
                     if (l.quantized) {
                       std::vector<float> out(static_cast<size_t>(l.in_features) * l.out_features);
                       gptq_dequantize_rows(l, 0, l.in_features, out.data());
                       checksum += static_cast<uint64_t>(out.size());
                     }
                   }});
  touch(w.lm_head.weight);
  return checksum;
}

struct Outcome {
  int loaded = 0;
  int rejected = 0;
};

// Loads dir; any exception other than a nibble::Error with a message fails.
void try_load(const std::filesystem::path& dir, Outcome& outcome, const std::string& what) {
  try {
    LoadOptions options;
    options.use_mmap = false;  // heap buffers: the sanitizer sees every out-of-bounds read
    auto model = load_model(dir, options);
    touch_everything(*model);
    ++outcome.loaded;
  } catch (const Error& e) {
    ASSERT_GT(std::strlen(e.what()), 0u) << what;
    ++outcome.rejected;
  } catch (const std::exception& e) {
    FAIL() << what << ": threw a non-nibble exception: " << e.what();
  }
}

class Mutator {
 public:
  Mutator(std::string pristine, uint64_t seed) : pristine_(std::move(pristine)), rng_(seed) {
    std::memcpy(&header_len_, pristine_.data(), 8);
    header_ = json::parse(pristine_.substr(8, header_len_));
    for (auto it = header_.begin(); it != header_.end(); ++it)
      if (it.key() != "__metadata__") names_.push_back(it.key());
  }

  // One mutated file image and a description of the mutation.
  std::pair<std::string, std::string> next() {
    std::string bytes = pristine_;
    switch (pick(6)) {
      case 0: {  // flip bytes in the header
        const int n = 1 + pick(4);
        for (int i = 0; i < n; ++i) bytes[8 + pick(static_cast<int>(header_len_))] ^= static_cast<char>(1 + pick(255));
        return {bytes, "header byte flips"};
      }
      case 1: {  // flip bytes anywhere
        const int n = 1 + pick(16);
        for (int i = 0; i < n; ++i) bytes[pick(static_cast<int>(bytes.size()))] = static_cast<char>(pick(256));
        return {bytes, "byte flips"};
      }
      case 2:  // truncate
        bytes.resize(static_cast<size_t>(pick(static_cast<int>(bytes.size()))));
        return {bytes, "truncated to " + std::to_string(bytes.size())};
      case 3: {  // a different header length
        uint64_t len = header_len_;
        switch (pick(4)) {
          case 0: len += static_cast<uint64_t>(pick(64)) - 32; break;
          case 1: len = rng_(); break;
          case 2: len = bytes.size() - 8 + static_cast<uint64_t>(pick(3)); break;
          default: len = static_cast<uint64_t>(pick(static_cast<int>(bytes.size()))); break;
        }
        std::memcpy(bytes.data(), &len, 8);
        return {bytes, "header length " + std::to_string(len)};
      }
      default:
        return edited_header();
    }
  }

 private:
  int pick(int n) { return n <= 1 ? 0 : static_cast<int>(rng_() % static_cast<uint64_t>(n)); }

  json random_value() {
    switch (pick(9)) {
      case 0: return -1;
      case 1: return static_cast<int64_t>(rng_() >> 1);
      case 2: return pick(200000);
      case 3: return "F32";
      case 4: return json::array({pick(100), pick(100)});
      case 5: return nullptr;
      case 6: return json::object();
      case 7: return 3.5;
      default: return json::array({-5, 1ull << 62});
    }
  }

  std::pair<std::string, std::string> edited_header() {
    json h = header_;
    const std::string name = names_[static_cast<size_t>(pick(static_cast<int>(names_.size())))];
    json& t = h[name];
    std::string what = "header edit of " + name + ": ";
    static const char* dtypes[] = {"F16", "BF16", "F32", "I32", "I8", "U8", "F64", "I64", "BOOL", "F8_E4M3", ""};
    switch (pick(10)) {
      case 0: t["dtype"] = dtypes[pick(11)]; what += "dtype"; break;
      case 1: {
        json shape = t["shape"];
        if (!shape.empty()) shape[static_cast<size_t>(pick(static_cast<int>(shape.size())))] = random_value();
        if (pick(3) == 0) shape.push_back(1 + pick(3));
        t["shape"] = shape;
        what += "shape";
        break;
      }
      case 2: t["data_offsets"][pick(2)] = random_value(); what += "offset"; break;
      case 3: {  // point at another tensor's bytes (overlap)
        const std::string other = names_[static_cast<size_t>(pick(static_cast<int>(names_.size())))];
        t["data_offsets"] = header_[other]["data_offsets"];
        what += "offsets of " + other;
        break;
      }
      case 4: h.erase(name); what += "deleted"; break;
      case 5: h[name + "x"] = t; h.erase(name); what += "renamed"; break;
      case 6: t[std::string("dtype shape data_offsets").substr(6 * pick(3), 5)] = random_value(); what += "field"; break;
      case 7: h["__metadata__"] = pick(2) ? json(5) : json({{"format", pick(2) ? json("pt") : json(1)}}); what += "metadata"; break;
      case 8: h = pick(2) ? json::array() : json(name); what += "not an object"; break;
      default: t = random_value(); what += "entry replaced"; break;
    }
    std::string text = h.dump();
    text.append(static_cast<size_t>(pick(8)), ' ');
    std::string bytes(8, '\0');
    const uint64_t len = text.size();
    std::memcpy(bytes.data(), &len, 8);
    return {bytes + text + pristine_.substr(8 + header_len_), what};
  }

  std::string pristine_;
  std::mt19937_64 rng_;
  uint64_t header_len_ = 0;
  json header_;
  std::vector<std::string> names_;
};

DemoModelOptions fuzz_model_options() {
  DemoModelOptions o;
  o.vocab_size = 64;
  o.architecture = Architecture::Qwen2;  // biases and tied embeddings too
  return o;
}

TEST(NIBBLE_FUZZ_SUITE, MutatedSafetensorsLoadOrFailCleanly) {
  TempDir dir;
  write_demo_model_weights(dir.path(), fuzz_model_options());
  const auto weights = dir / "model.safetensors";
  Mutator mutator(testing::read_file(weights), 20261128);
  Outcome outcome;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  const int n = iterations();
  int done = 0;
  for (; done < n && std::chrono::steady_clock::now() < deadline; ++done) {
    auto [bytes, what] = mutator.next();
    testing::write_file(weights, bytes);
    try_load(dir.path(), outcome, "iteration " + std::to_string(done) + " (" + what + ")");
    if (::testing::Test::HasFatalFailure()) return;
  }
  std::cout << done << " mutations: " << outcome.loaded << " loaded, " << outcome.rejected << " rejected\n";
  EXPECT_GT(outcome.rejected, done / 2);
  EXPECT_GT(outcome.loaded, 0);  // data-only flips still load
}

TEST(NIBBLE_FUZZ_SUITE, MutatedConfigAndIndexLoadOrFailCleanly) {
  TempDir dir;
  DemoModelOptions o = fuzz_model_options();
  o.shards = 3;
  write_demo_model_weights(dir.path(), o);
  const json config = json::parse(testing::read_file(dir / "config.json"));
  const json index = json::parse(testing::read_file(dir / "model.safetensors.index.json"));
  std::mt19937_64 rng(7);
  auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };
  const std::vector<json> values = {-1, 0, 1, 7, 64, 100000, 1ll << 40, 2.5, "16", nullptr, json::array(), true,
                                    json::object(), json::array({1, 2}), "model-00001-of-00003.safetensors",
                                    "../x.safetensors"};
  Outcome outcome;
  const int n = std::max(1, iterations() / 5);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(8);
  for (int i = 0; i < n && std::chrono::steady_clock::now() < deadline; ++i) {
    json c = config, x = index;
    std::string what;
    if (i % 2 == 0) {
      auto it = std::next(c.begin(), static_cast<long>(pick(c.size())));
      what = "config.json " + it.key();
      if (it->is_object() && !it->empty()) {
        auto inner = std::next(it->begin(), static_cast<long>(pick(it->size())));
        what += "." + inner.key();
        *inner = values[pick(values.size())];
      } else {
        *it = values[pick(values.size())];
      }
    } else {
      json& map = x["weight_map"];
      auto it = std::next(map.begin(), static_cast<long>(pick(map.size())));
      what = "index entry " + it.key();
      if (pick(4) == 0) {
        map.erase(it);
      } else {
        *it = values[pick(values.size())];
      }
    }
    testing::write_file(dir / "config.json", c.dump());
    testing::write_file(dir / "model.safetensors.index.json", x.dump());
    try_load(dir.path(), outcome, "iteration " + std::to_string(i) + " (" + what + ")");
    if (::testing::Test::HasFatalFailure()) return;
  }
  EXPECT_GT(outcome.rejected, 0);
}

}  // namespace
}  // namespace nibble
