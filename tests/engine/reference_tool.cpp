// Helper for tests/engine/reference_forward.py:
//   engine_reference_tool write-demo DIR [--arch A] [--preset P] [--seed N] [--dense]
//                                       [--dense-dtype f16|bf16|f32] [--quant bits,group,desc_act,sym,format]
//   engine_reference_tool logits DIR OUT --tokens 1,2,3 [--chunks 7,16,1]
// `logits` runs the prompt through the CPU backend in the given chunk sizes
// (the last repeating) over shuffled KV blocks of 4 tokens and writes every
// position's logits as raw float32 [tokens][vocab].
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <numeric>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "nibble/core/error.h"
#include "nibble/engine/cpu_backend.h"
#include "nibble/model/demo_model.h"
#include "nibble/model/loader.h"
#include "sequence_driver.h"

namespace {

using namespace nibble;

std::vector<int> parse_ints(const std::string& s) {
  std::vector<int> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) out.push_back(std::stoi(item));
  return out;
}

std::string option(const std::vector<std::string>& args, const std::string& name, const std::string& fallback) {
  auto it = std::find(args.begin(), args.end(), name);
  if (it == args.end()) return fallback;
  if (it + 1 == args.end()) throw Error("missing value after " + name);
  return *(it + 1);
}

bool flag(const std::vector<std::string>& args, const std::string& name) {
  return std::find(args.begin(), args.end(), name) != args.end();
}

Architecture parse_architecture(const std::string& s) {
  if (s == "llama") return Architecture::Llama;
  if (s == "mistral") return Architecture::Mistral;
  if (s == "qwen2") return Architecture::Qwen2;
  throw Error("unknown architecture " + s);
}

int write_demo(const std::string& dir, const std::vector<std::string>& args) {
  DemoModelOptions o;
  o.architecture = parse_architecture(option(args, "--arch", "llama"));
  o.preset = option(args, "--preset", "tiny");
  o.seed = std::stoull(option(args, "--seed", "0"));
  o.quantized = !flag(args, "--dense");
  const std::string dense_dtype = option(args, "--dense-dtype", "f16");
  if (dense_dtype == "bf16")
    o.dense_dtype = DType::BF16;
  else if (dense_dtype == "f32")
    o.dense_dtype = DType::F32;
  else if (dense_dtype != "f16")
    throw Error("--dense-dtype must be f16, bf16 or f32");
  const std::string quant = option(args, "--quant", "");
  if (!quant.empty()) {
    std::vector<std::string> parts;
    std::stringstream in(quant);
    std::string item;
    while (std::getline(in, item, ',')) parts.push_back(item);
    if (parts.size() != 5) throw Error("--quant wants bits,group_size,desc_act,sym,format");
    QuantConfig q;
    q.quantized = true;
    q.bits = std::stoi(parts[0]);
    q.group_size = std::stoi(parts[1]);
    q.desc_act = parts[2] == "1";
    q.sym = parts[3] == "1";
    q.format = parts[4] == "gptq_v2" ? QuantConfig::Format::GptqV2 : QuantConfig::Format::Gptq;
    o.quant_override = q;
  }
  write_demo_model_weights(dir, o);
  return 0;
}

int dump_logits(const std::string& dir, const std::string& out_path, const std::vector<std::string>& args) {
  const std::vector<int> tokens = parse_ints(option(args, "--tokens", ""));
  std::vector<int> chunks = parse_ints(option(args, "--chunks", "1"));
  if (tokens.empty() || chunks.empty()) throw Error("logits: --tokens and --chunks must not be empty");
  auto model = load_model(dir);
  const int block_size = 4;
  const int blocks = static_cast<int>(tokens.size()) / block_size + 1;
  auto backend = make_cpu_backend(*model, {.kv_cache_blocks = blocks * 2, .block_size = block_size});
  std::vector<int32_t> free_blocks(blocks * 2);
  std::iota(free_blocks.begin(), free_blocks.end(), 0);
  std::shuffle(free_blocks.begin(), free_blocks.end(), std::mt19937(42));
  test::SequenceDriver driver(*backend, free_blocks);
  const int seq = driver.add(std::vector<int32_t>(tokens.begin(), tokens.end()));
  for (size_t i = 0; driver.computed(seq) < static_cast<int>(tokens.size()); ++i) {
    const int chunk = chunks[std::min(i, chunks.size() - 1)];
    driver.step({{seq, std::min(chunk, static_cast<int>(tokens.size()) - driver.computed(seq))}});
  }
  std::ofstream out(out_path, std::ios::binary);
  for (size_t p = 0; p < tokens.size(); ++p) {
    const auto& row = driver.logits(seq, static_cast<int>(p));
    out.write(reinterpret_cast<const char*>(row.data()), static_cast<std::streamsize>(row.size() * sizeof(float)));
  }
  if (!out) throw Error("cannot write " + out_path);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  try {
    if (args.size() >= 2 && args[0] == "write-demo") return write_demo(args[1], args);
    if (args.size() >= 3 && args[0] == "logits") return dump_logits(args[1], args[2], args);
    std::cerr << "usage: engine_reference_tool write-demo DIR [options] | logits DIR OUT --tokens ... [--chunks ...]\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
