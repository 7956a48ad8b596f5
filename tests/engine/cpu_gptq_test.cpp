// The engine's prepared GPTQ weights dequantize to exactly what the model
// module's reference gptq_dequantize_rows gives, with and without act-order.
#include <gtest/gtest.h>

#include <algorithm>

#include "cpu_gptq.h"
#include "nibble/model/gptq.h"
#include "random_model.h"

namespace nibble::test {
namespace {

struct Case {
  int bits, group_size;
  bool desc_act, sym;
  QuantConfig::Format format;
};

TEST(CpuGptq, MatchesReferenceDequantizationBitForBit) {
  const std::vector<Case> cases = {
      {4, 16, false, true, QuantConfig::Format::Gptq},    {4, 32, true, false, QuantConfig::Format::Gptq},
      {4, -1, true, true, QuantConfig::Format::GptqV2},   {8, 16, true, false, QuantConfig::Format::GptqV2},
      {8, 64, false, false, QuantConfig::Format::Gptq},   {8, -1, false, true, QuantConfig::Format::Gptq},
  };
  for (const Case& c : cases) {
    RandomModelSpec spec;
    spec.num_layers = 1;
    QuantConfig q;
    q.quantized = true;
    q.bits = c.bits;
    q.group_size = c.group_size;
    q.desc_act = c.desc_act;
    q.sym = c.sym;
    q.format = c.format;
    spec.quant = q;
    auto model = make_random_model(spec);
    const LayerWeights& layer = model->weights().layers[0];
    for (const LinearWeights* w : {&layer.q_proj, &layer.k_proj, &layer.down_proj}) {
      SCOPED_TRACE(w->qweight.name + " bits " + std::to_string(c.bits) + " group " + std::to_string(c.group_size) +
                   (c.desc_act ? " act-order" : ""));
      CpuGptqWeight prepared(*w);
      EXPECT_EQ(prepared.perm().empty(), !c.desc_act || c.group_size == -1);
      const int in = w->in_features, out = w->out_features;
      std::vector<float> mine(static_cast<size_t>(in) * out), row(out);
      prepared.dequantize_rows(0, in, mine.data());
      for (int k = 0; k < in; ++k) {
        const int source = prepared.perm().empty() ? k : prepared.perm()[k];
        gptq_dequantize_rows(*w, source, source + 1, row.data());
        ASSERT_TRUE(std::equal(row.begin(), row.end(), mine.begin() + static_cast<size_t>(k) * out)) << "row " << k;
      }
      // Tiles that start and end inside a packed word agree with the whole.
      std::vector<float> tile(static_cast<size_t>(5) * out);
      prepared.dequantize_rows(3, 8, tile.data());
      EXPECT_TRUE(std::equal(tile.begin(), tile.end(), mine.begin() + static_cast<size_t>(3) * out));
    }
  }
}

}  // namespace
}  // namespace nibble::test
