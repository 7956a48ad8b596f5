#include "nibble/model/loader.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "model_files.h"
#include "nibble/core/error.h"
#include "nibble/core/half.h"
#include "nibble/model/demo_model.h"
#include "nibble/model/gptq.h"
#include "nibble/model/weight_names.h"
#include "temp_dir.h"

namespace nibble {
namespace {

using testing::TempDir;

std::string load_error(const std::filesystem::path& dir) {
  try {
    load_model(dir);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

void expect_contains(const std::string& message, const std::vector<std::string>& parts) {
  ASSERT_FALSE(message.empty()) << "the model loaded";
  for (const auto& p : parts) EXPECT_NE(message.find(p), std::string::npos) << "'" << p << "' not in: " << message;
}

float read_float(const TensorView& t, size_t i) {
  const auto* p = static_cast<const std::byte*>(t.data);
  if (t.dtype == DType::F32) {
    float f;
    std::memcpy(&f, p + 4 * i, 4);
    return f;
  }
  uint16_t h;
  std::memcpy(&h, p + 2 * i, 2);
  return t.dtype == DType::BF16 ? bf16_to_float(h) : fp16_to_float(h);
}

std::vector<float> dequantize(const LinearWeights& w) {
  std::vector<float> out(static_cast<size_t>(w.in_features) * w.out_features);
  gptq_dequantize_rows(w, 0, w.in_features, out.data());
  return out;
}

TEST(LoadModel, TinyLlamaDemoModel) {
  TempDir dir;
  write_demo_model_weights(dir.path(), {});
  std::vector<LoadProgress> progress;
  LoadOptions options;
  options.on_progress = [&](const LoadProgress& p) { progress.push_back(p); };
  auto model = load_model(dir.path(), options);

  const ModelConfig& c = model->config();
  EXPECT_EQ(c.architecture, Architecture::Llama);
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.num_hidden_layers, 2);
  EXPECT_EQ(c.num_attention_heads, 4);
  EXPECT_EQ(c.num_key_value_heads, 2);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.intermediate_size, 192);
  EXPECT_EQ(c.max_position_embeddings, 2048);
  EXPECT_TRUE(c.quant.quantized);
  EXPECT_EQ(c.quant.group_size, 32);
  EXPECT_FALSE(c.quant.desc_act);
  EXPECT_EQ(model->generation_config().eos_token_ids, std::vector<int>{2});
  EXPECT_EQ(model->generation_config().bos_token_id, 1);

  // 1 embedding + 2 layers x (2 norms + 7 linears) + final norm + lm_head.
  ASSERT_EQ(progress.size(), 21u);
  for (size_t i = 0; i < progress.size(); ++i) {
    EXPECT_EQ(progress[i].done, i + 1);
    EXPECT_EQ(progress[i].total, 21u);
  }

  const ModelWeights& w = model->weights();
  EXPECT_EQ(w.config.hidden_size, 64);
  EXPECT_EQ(w.embed_tokens.shape, (std::vector<int64_t>{512, 64}));
  EXPECT_EQ(w.embed_tokens.dtype, DType::F16);
  ASSERT_EQ(w.layers.size(), 2u);
  const LinearWeights& q = w.layers[1].q_proj;
  EXPECT_TRUE(q.quantized);
  EXPECT_EQ(q.in_features, 64);
  EXPECT_EQ(q.out_features, 64);
  EXPECT_EQ(q.qweight.name, "model.layers.1.self_attn.q_proj.qweight");
  EXPECT_EQ(q.qweight.shape, (std::vector<int64_t>{8, 64}));
  EXPECT_EQ(q.qzeros.shape, (std::vector<int64_t>{2, 8}));
  EXPECT_EQ(q.scales.shape, (std::vector<int64_t>{2, 64}));
  EXPECT_TRUE(q.g_idx.present());
  EXPECT_FALSE(q.bias.present());
  EXPECT_EQ(w.layers[0].k_proj.out_features, 32);
  EXPECT_EQ(w.layers[0].down_proj.in_features, 192);
  EXPECT_EQ(w.layers[0].down_proj.qzeros.shape, (std::vector<int64_t>{6, 8}));
  EXPECT_FALSE(w.lm_head.quantized);
  EXPECT_EQ(w.lm_head.weight.name, "lm_head.weight");
  EXPECT_EQ(w.lm_head.weight.dtype, DType::F16);
  EXPECT_EQ(w.lm_head.weight.shape, (std::vector<int64_t>{512, 64}));

  // Every byte of the file's data is a weight the model reads.
  const std::string bytes = testing::read_file(dir / "model.safetensors");
  uint64_t header_len = 0;
  std::memcpy(&header_len, bytes.data(), 8);
  EXPECT_EQ(total_weight_bytes(c, w), bytes.size() - 8 - header_len);

  // Well-conditioned random weights: embeddings ~N(0,1), norms near 1.
  double sum = 0, sum_sq = 0;
  for (size_t i = 0; i < 512 * 64; ++i) {
    const float v = read_float(w.embed_tokens, i);
    sum += v;
    sum_sq += v * v;
  }
  EXPECT_NEAR(sum / (512 * 64), 0.0, 0.05);
  EXPECT_NEAR(std::sqrt(sum_sq / (512 * 64)), 1.0, 0.05);
  for (size_t i = 0; i < 64; ++i) EXPECT_NEAR(read_float(w.norm, i), 1.0f, 0.3f);
  // Linear weights have std about 1/sqrt(in).
  std::vector<float> dq = dequantize(w.layers[0].gate_proj);
  double s2 = 0;
  for (float v : dq) s2 += v * v;
  EXPECT_NEAR(std::sqrt(s2 / dq.size()), 1.0 / 8.0, 0.02);
}

TEST(LoadModel, Qwen2TiesEmbeddingsAndHasQkvBias) {
  TempDir dir;
  DemoModelOptions o;
  o.architecture = Architecture::Qwen2;
  write_demo_model_weights(dir.path(), o);
  auto model = load_model(dir.path());
  const ModelWeights& w = model->weights();
  EXPECT_TRUE(model->config().tie_word_embeddings);
  EXPECT_EQ(w.lm_head.weight.data, w.embed_tokens.data);
  EXPECT_EQ(w.lm_head.out_features, 512);
  for (const auto& l : w.layers) {
    EXPECT_TRUE(l.q_proj.bias.present());
    EXPECT_TRUE(l.k_proj.bias.present());
    EXPECT_TRUE(l.v_proj.bias.present());
    EXPECT_EQ(l.k_proj.bias.shape, std::vector<int64_t>{32});
    EXPECT_FALSE(l.o_proj.bias.present());
  }
  // A config that promises q/k/v bias needs the bias tensors.
  testing::edit_tensors(dir / "model.safetensors", [](auto& list) {
    std::erase_if(list, [](const auto& t) { return t.name == "model.layers.0.self_attn.k_proj.bias"; });
  });
  expect_contains(load_error(dir.path()), {"model.layers.0.self_attn.k_proj.bias", "model.safetensors"});
}

TEST(LoadModel, SmallPresetsForEveryArchitecture) {
  for (Architecture a : {Architecture::Llama, Architecture::Mistral, Architecture::Qwen2}) {
    TempDir dir;
    DemoModelOptions o;
    o.preset = "small";
    o.architecture = a;
    o.vocab_size = 1000;
    o.eos_token_ids = {2, 3};
    write_demo_model_weights(dir.path(), o);
    auto model = load_model(dir.path());
    const ModelConfig& c = model->config();
    EXPECT_EQ(c.architecture, a);
    EXPECT_EQ(c.hidden_size, 256);
    EXPECT_EQ(c.num_hidden_layers, 4);
    EXPECT_EQ(c.num_attention_heads, 8);
    EXPECT_EQ(c.num_key_value_heads, 2);
    EXPECT_EQ(c.intermediate_size, 768);
    EXPECT_EQ(c.vocab_size, 1000);
    EXPECT_EQ(c.max_position_embeddings, 4096);
    EXPECT_EQ(c.quant.group_size, 128);
    EXPECT_TRUE(c.quant.desc_act);
    EXPECT_EQ(c.eos_token_ids, (std::vector<int>{2, 3}));
    EXPECT_EQ(model->generation_config().eos_token_ids, (std::vector<int>{2, 3}));
    EXPECT_EQ(c.rope_scaling.type, a == Architecture::Llama ? RopeScaling::Type::Llama3 : RopeScaling::Type::None);
    // Act-order: g_idx is a scattered assignment with 128 rows per group.
    const LinearWeights& up = model->weights().layers[2].up_proj;
    const auto* g = static_cast<const int32_t*>(up.g_idx.data);
    bool sequential = true;
    std::vector<int> counts(2, 0);
    for (int k = 0; k < 256; ++k) {
      sequential = sequential && g[k] == k / 128;
      ++counts[static_cast<size_t>(g[k])];
    }
    EXPECT_FALSE(sequential);
    EXPECT_EQ(counts, (std::vector<int>{128, 128}));
  }
}

TEST(LoadModel, DemoModelIsDeterministicPerSeed) {
  TempDir a, b, c;
  DemoModelOptions o;
  o.seed = 42;
  write_demo_model_weights(a.path(), o);
  write_demo_model_weights(b.path(), o);
  o.seed = 43;
  write_demo_model_weights(c.path(), o);
  const std::string bytes_a = testing::read_file(a / "model.safetensors");
  EXPECT_EQ(bytes_a, testing::read_file(b / "model.safetensors"));
  EXPECT_NE(bytes_a, testing::read_file(c / "model.safetensors"));
  EXPECT_EQ(testing::read_file(a / "config.json"), testing::read_file(c / "config.json"));
}

TEST(LoadModel, ShardedEqualsSingleFile) {
  TempDir single, sharded;
  DemoModelOptions o;
  o.seed = 5;
  write_demo_model_weights(single.path(), o);
  o.shards = 3;
  write_demo_model_weights(sharded.path(), o);
  EXPECT_FALSE(std::filesystem::exists(sharded / "model.safetensors"));
  EXPECT_TRUE(std::filesystem::exists(sharded / "model.safetensors.index.json"));
  auto m1 = load_model(single.path());
  auto m2 = load_model(sharded.path());
  ModelWeights w1 = m1->weights(), w2 = m2->weights();
  size_t compared = 0;
  std::map<std::string, const TensorView*> by_name;
  for_each_weight(m2->config(), w2,
                  {[&](const TensorSpec&, TensorView& v) { by_name[v.name] = &v; },
                   [&](const LinearSpec&, LinearWeights& l) {
                     for (const TensorView* v : {&l.weight, &l.qweight, &l.qzeros, &l.scales, &l.g_idx, &l.bias})
                       if (v->present()) by_name[v->name] = v;
                   }});
  auto compare = [&](const TensorView& v) {
    if (!v.present()) return;
    ASSERT_TRUE(by_name.count(v.name)) << v.name;
    const TensorView& other = *by_name[v.name];
    ASSERT_EQ(v.nbytes(), other.nbytes()) << v.name;
    EXPECT_EQ(std::memcmp(v.data, other.data, v.nbytes()), 0) << v.name;
    ++compared;
  };
  for_each_weight(m1->config(), w1,
                  {[&](const TensorSpec&, TensorView& v) { compare(v); },
                   [&](const LinearSpec&, LinearWeights& l) {
                     for (const TensorView* v : {&l.weight, &l.qweight, &l.qzeros, &l.scales, &l.g_idx, &l.bias})
                       compare(*v);
                   }});
  EXPECT_EQ(compared, 1u + 2u * (2u + 7u * 4u) + 1u + 1u);

  // Rewriting a folder replaces its weights: no stale file shadows the new ones.
  o.shards = 1;
  o.seed = 6;
  write_demo_model_weights(sharded.path(), o);
  EXPECT_FALSE(std::filesystem::exists(sharded / "model.safetensors.index.json"));
  EXPECT_FALSE(std::filesystem::exists(sharded / "model-00001-of-00003.safetensors"));
  EXPECT_NO_THROW(load_model(sharded.path()));
}

TEST(LoadModel, UnquantizedModelsInEveryFloatDtype) {
  for (DType dt : {DType::F16, DType::BF16, DType::F32}) {
    TempDir dir;
    DemoModelOptions o;
    o.quantized = false;
    o.dense_dtype = dt;
    write_demo_model_weights(dir.path(), o);
    auto model = load_model(dir.path());
    EXPECT_FALSE(model->config().quant.quantized);
    const LinearWeights& v = model->weights().layers[0].v_proj;
    EXPECT_FALSE(v.quantized);
    EXPECT_EQ(v.weight.dtype, dt);
    EXPECT_EQ(v.weight.shape, (std::vector<int64_t>{32, 64}));
    EXPECT_EQ(model->weights().norm.dtype, dt);
  }
}

// The dequantized copy holds exactly the dense equivalent of each GPTQ linear.
TEST(LoadModel, DequantizedCopyMatchesGptqWeights) {
  struct Case {
    std::string preset;
    QuantConfig quant;
    int shards;
  };
  QuantConfig asym8;
  asym8.quantized = true;
  asym8.bits = 8;
  asym8.sym = false;
  asym8.group_size = 64;
  asym8.desc_act = true;
  asym8.format = QuantConfig::Format::GptqV2;
  QuantConfig sym4 = asym8;
  sym4.bits = 4;
  sym4.sym = true;
  sym4.group_size = -1;
  sym4.desc_act = false;
  sym4.format = QuantConfig::Format::Gptq;
  for (const Case& c : {Case{"tiny", asym8, 1}, Case{"tiny", sym4, 2}}) {
    TempDir src, dst;
    DemoModelOptions o;
    o.preset = c.preset;
    o.quant_override = c.quant;
    o.architecture = Architecture::Qwen2;
    write_demo_model_weights(src.path(), o);
    testing::write_file(src / "tokenizer.json", "{}");
    write_dequantized_copy(src.path(), dst.path(), c.shards);
    EXPECT_TRUE(std::filesystem::exists(dst / "tokenizer.json"));
    EXPECT_TRUE(std::filesystem::exists(dst / "generation_config.json"));
    EXPECT_FALSE(nlohmann::json::parse(testing::read_file(dst / "config.json")).contains("quantization_config"));
    EXPECT_EQ(std::filesystem::exists(dst / "model.safetensors.index.json"), c.shards > 1);

    auto gptq = load_model(src.path());
    auto dense = load_model(dst.path());
    EXPECT_FALSE(dense->config().quant.quantized);
    for (size_t i = 0; i < gptq->weights().layers.size(); ++i) {
      const LayerWeights& lq = gptq->weights().layers[i];
      const LayerWeights& ld = dense->weights().layers[i];
      for (auto member : {&LayerWeights::q_proj, &LayerWeights::k_proj, &LayerWeights::v_proj, &LayerWeights::o_proj,
                          &LayerWeights::gate_proj, &LayerWeights::up_proj, &LayerWeights::down_proj}) {
        const LinearWeights& q = lq.*member;
        const LinearWeights& d = ld.*member;
        ASSERT_TRUE(q.quantized);
        ASSERT_FALSE(d.quantized);
        ASSERT_EQ(d.weight.dtype, DType::F32);
        const std::vector<float> w_t = dequantize(q);  // [in, out]
        const int in = q.in_features, out = q.out_features;
        for (int k = 0; k < in; ++k)
          for (int n = 0; n < out; ++n)
            ASSERT_EQ(read_float(d.weight, static_cast<size_t>(n) * in + k), w_t[static_cast<size_t>(k) * out + n])
                << d.weight.name << " [" << n << ", " << k << "]";
        EXPECT_EQ(q.bias.present(), d.bias.present());
        if (q.bias.present()) {
          EXPECT_EQ(std::memcmp(q.bias.data, d.bias.data, q.bias.nbytes()), 0);
        }
      }
    }
    EXPECT_EQ(std::memcmp(gptq->weights().embed_tokens.data, dense->weights().embed_tokens.data,
                          gptq->weights().embed_tokens.nbytes()),
              0);
  }
}

TEST(LoadModel, MissingGIdxIsSequential) {
  TempDir dir;
  write_demo_model_weights(dir.path(), {});
  auto before = load_model(dir.path());
  const std::vector<float> expected = dequantize(before->weights().layers[0].down_proj);
  testing::edit_tensors(dir / "model.safetensors", [](auto& list) {
    std::erase_if(list, [](const auto& t) { return t.name.ends_with(".g_idx"); });
  });
  auto after = load_model(dir.path());
  const LinearWeights& down = after->weights().layers[0].down_proj;
  ASSERT_TRUE(down.g_idx.present());
  const auto* g = static_cast<const int32_t*>(down.g_idx.data);
  for (int k = 0; k < 192; ++k) EXPECT_EQ(g[k], k / 32);
  EXPECT_EQ(dequantize(down), expected);
}

TEST(LoadModel, MisalignedTensorsAreCopiedAligned) {
  TempDir dir;
  write_demo_model_weights(dir.path(), {});
  auto reference = load_model(dir.path());
  const std::vector<float> expected = dequantize(reference->weights().layers[1].o_proj);
  testing::edit_tensors(dir / "model.safetensors", [](auto& list) {
    list.insert(list.begin(), testing::EditableTensor{"odd", DType::U8, {3}, std::vector<std::byte>(3)});
  });
  auto model = load_model(dir.path());
  const LinearWeights& o = model->weights().layers[1].o_proj;
  EXPECT_EQ(reinterpret_cast<uintptr_t>(o.qweight.data) % 4, 0u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(o.scales.data) % 2, 0u);
  EXPECT_EQ(dequantize(o), expected);
}

TEST(LoadModel, ErrorsNameFileAndTensor) {
  TempDir dir;
  write_demo_model_weights(dir.path(), {});
  const auto file = (dir / "model.safetensors").string();
  const auto pristine = testing::read_file(dir / "model.safetensors");
  const auto pristine_config = testing::read_file(dir / "config.json");
  auto restore = [&] {
    testing::write_file(dir / "model.safetensors", pristine);
    testing::write_file(dir / "config.json", pristine_config);
  };

  testing::edit_tensors(file, [](auto& list) {
    std::erase_if(list, [](const auto& t) { return t.name == "model.layers.1.post_attention_layernorm.weight"; });
  });
  expect_contains(load_error(dir.path()), {"missing tensor", "model.layers.1.post_attention_layernorm.weight", file});
  restore();

  testing::edit_tensors(file, [](auto& list) {
    std::erase_if(list, [](const auto& t) { return t.name.starts_with("model.layers.0.mlp.up_proj."); });
  });
  expect_contains(load_error(dir.path()), {"model.layers.0.mlp.up_proj.qweight", "model.layers.0.mlp.up_proj.weight", file});
  restore();

  testing::edit_tensors(file, [](auto& list) {
    auto* t = testing::find_tensor(list, "model.norm.weight");
    t->shape = {32};
    t->bytes.resize(64);
  });
  expect_contains(load_error(dir.path()), {file, "model.norm.weight", "[32]", "[64]"});
  restore();

  testing::edit_tensors(file, [](auto& list) {
    auto* t = testing::find_tensor(list, "model.layers.0.self_attn.q_proj.scales");
    t->dtype = DType::BF16;
  });
  expect_contains(load_error(dir.path()), {file, "model.layers.0.self_attn.q_proj.scales", "BF16", "F16"});
  restore();

  testing::edit_tensors(file, [](auto& list) {
    auto* t = testing::find_tensor(list, "model.layers.1.mlp.down_proj.g_idx");
    int32_t bad = 6;  // 192 rows / group 32 = groups 0..5
    std::memcpy(t->bytes.data() + 4 * 100, &bad, 4);
  });
  expect_contains(load_error(dir.path()), {file, "model.layers.1.mlp.down_proj.g_idx", "100", "6"});
  restore();

  // A quantized checkpoint whose config forgot quantization_config.
  auto config = nlohmann::json::parse(pristine_config);
  config.erase("quantization_config");
  testing::write_file(dir / "config.json", config.dump());
  expect_contains(load_error(dir.path()), {file, "qweight", "quantization_config"});
  restore();

  // config.json says 8 bits, the tensors are packed 4-bit.
  config = nlohmann::json::parse(pristine_config);
  config["quantization_config"]["bits"] = 8;
  testing::write_file(dir / "config.json", config.dump());
  expect_contains(load_error(dir.path()), {file, "model.layers.0.self_attn.q_proj.qweight", "[8, 64]", "[16, 64]"});
  restore();

  // config.json with a different width than the weights.
  config = nlohmann::json::parse(pristine_config);
  config["vocab_size"] = 500;
  testing::write_file(dir / "config.json", config.dump());
  expect_contains(load_error(dir.path()), {file, "model.embed_tokens.weight", "[512, 64]", "[500, 64]"});
  restore();

  std::filesystem::remove(dir / "model.safetensors");
  expect_contains(load_error(dir.path()), {dir.path().string(), "safetensors"});
  expect_contains(load_error(dir / "nothing-here"), {"nothing-here"});
}

}  // namespace
}  // namespace nibble
