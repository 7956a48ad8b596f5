// Every elementwise / gather / GEMM kernel against its CPU reference on odd
// shapes with fresh random inputs; outputs are poisoned first.
#include <cublas_v2.h>

#include <algorithm>
#include <numeric>

#include "activation/activation.h"
#include "activation/activation_ref.h"
#include "embedding/embedding.h"
#include "embedding/embedding_ref.h"
#include "gpu_test_util.h"
#include "gptq_dequant/gptq_dequant.h"
#include "gptq_dequant/gptq_dequant_ref.h"
#include "kv_cache/kv_cache.h"
#include "kv_cache/kv_cache_ref.h"
#include "lm_head/lm_head.h"
#include "lm_head/lm_head_ref.h"
#include "nibble/core/half.h"
#include "norm/rmsnorm.h"
#include "norm/rmsnorm_ref.h"
#include "random_fill/random_fill.h"
#include "random_fill/random_fill_ref.h"
#include "rope/rope_ref.h"
#include "sampling/argmax.h"
#include "sampling/argmax_ref.h"

namespace nibble::test {
namespace {

constexpr uint16_t kHalfNaN = 0x7e00;

using KernelTest = SeededGpuTest;

// Dims that take the vectorized kernel (multiples of 4 up to 8192: 1, 2, 4 and
// 8 groups per thread) and the scalar one (odd multiples of 2, wider rows).
TEST_F(KernelTest, AddRmsNormMatchesReference) {
  for (const int dim : {1000, 1002, 2048, 4096, 5120, 8192, 12288}) {
    for (bool with_delta : {true, false}) {
      SCOPED_TRACE("dim " + std::to_string(dim));
      const int rows = 7;
      auto residual = random_float(static_cast<size_t>(rows) * dim, rng_, -2, 2);
      auto delta = random_half(residual.size(), rng_);
      auto weight = random_half(dim, rng_, 0.5f, 1.5f);
      DeviceArray<float> d_res(residual);
      DeviceArray<uint16_t> d_delta(delta), d_w(weight), d_out(std::vector<uint16_t>(residual.size(), kHalfNaN));
      CUDA_OK(kernels::add_rmsnorm(with_delta ? d_delta.as<__half>() : nullptr, d_res.get(), d_w.as<__half>(),
                                   d_out.as<__half>(), rows, dim, 1e-5f, nullptr));
      CUDA_OK(cudaDeviceSynchronize());
      std::vector<uint16_t> out(residual.size());
      kernels::ref::add_rmsnorm(with_delta ? delta.data() : nullptr, residual.data(), weight.data(), out.data(), rows,
                                dim, 1e-5f);
      auto c = compare_half(d_out.download(), out);
      auto cr = compare_float(d_res.download(), residual);
      report(with_delta ? "add_rmsnorm out (with delta)" : "add_rmsnorm out (no delta)", c);
      report("add_rmsnorm residual", cr);
      EXPECT_EQ(c.non_finite, 0u);
      EXPECT_LT(c.rel_error, 1e-3) << "seed " << seed_;
      EXPECT_LT(cr.rel_error, 1e-6) << "seed " << seed_;
    }
  }
}

// Programmatic dependent launch: a chain of norms, each adding the previous one's
// output into the residual, launched so that each may start before the one
// before it ends, must wait for it (a missed wait reads a stale residual).
TEST_F(KernelTest, ProgrammaticAddRmsNormChainWaitsForItsInput) {
  const int rows = 3, dim = 4096, links = 6;
  auto residual = random_float(static_cast<size_t>(rows) * dim, rng_, -2, 2);
  auto first_delta = random_half(residual.size(), rng_);
  auto weight = random_half(dim, rng_, 0.5f, 1.5f);
  DeviceArray<float> d_res(residual);
  DeviceArray<uint16_t> d_w(weight), a(first_delta), b(std::vector<uint16_t>(residual.size(), kHalfNaN));
  std::vector<uint16_t> delta = first_delta, out(residual.size());
  for (int i = 0; i < links; ++i) {
    DeviceArray<uint16_t>& in = i % 2 == 0 ? a : b;
    DeviceArray<uint16_t>& result = i % 2 == 0 ? b : a;
    CUDA_OK(kernels::add_rmsnorm(in.as<__half>(), d_res.get(), d_w.as<__half>(), result.as<__half>(), rows, dim, 1e-5f,
                                 nullptr, true));
    kernels::ref::add_rmsnorm(delta.data(), residual.data(), weight.data(), out.data(), rows, dim, 1e-5f);
    delta = out;
  }
  CUDA_OK(cudaDeviceSynchronize());
  auto c = compare_half((links % 2 == 0 ? a : b).download(), out);
  report("programmatic add_rmsnorm chain", c);
  EXPECT_EQ(c.non_finite, 0u);
  EXPECT_LT(c.rel_error, 2e-3) << "seed " << seed_;
  EXPECT_LT(compare_float(d_res.download(), residual).rel_error, 1e-4) << "seed " << seed_;
}

// RoPE on q and k with every scaling, K and V into shuffled cache slots (one
// padding token skipped), from three separate matrices and from the column
// ranges of one fused [q | k | v] product: against the references of the two
// steps (rotate, then write).
TEST_F(KernelTest, RopeAndKvWriteMatchReferenceForEveryScaling) {
  RopeScaling llama3;
  llama3.type = RopeScaling::Type::Llama3;
  llama3.factor = 8.0;
  RopeScaling linear;
  linear.type = RopeScaling::Type::Linear;
  linear.factor = 4.0;
  const std::vector<std::pair<std::string, RopeScaling>> scalings = {
      {"default", RopeScaling{}}, {"linear", linear}, {"llama3", llama3}};
  for (int head_dim : {16, 64, 128}) {
    for (const auto& [name, scaling] : scalings) {
      for (bool fused : {false, true}) {
        const int tokens = 9, qh = 6, kh = 2, block_size = 16, blocks = 5;
        const int qd = qh * head_dim, kd = kh * head_dim, width = qd + 2 * kd;
        auto inv_freq = kernels::ref::rope_inv_freq(head_dim, 500000.0, scaling);
        std::vector<int32_t> positions(tokens);
        std::uniform_int_distribution<int> pos(0, 6000);
        for (auto& p : positions) p = pos(rng_);
        std::vector<int32_t> slots(blocks * block_size);
        std::iota(slots.begin(), slots.end(), 0);
        std::shuffle(slots.begin(), slots.end(), rng_);
        slots.resize(tokens);
        slots[4] = -1;  // padding: its K/V are not written
        // The products as the backend lays them out: [tokens, q | k | v] or three matrices.
        auto qkv = random_half(static_cast<size_t>(tokens) * width, rng_);
        std::vector<uint16_t> q(static_cast<size_t>(tokens) * qd), k(static_cast<size_t>(tokens) * kd),
            v(static_cast<size_t>(tokens) * kd);
        for (int t = 0; t < tokens; ++t) {
          const auto row = qkv.begin() + static_cast<ptrdiff_t>(t) * width;
          std::copy(row, row + qd, q.begin() + static_cast<ptrdiff_t>(t) * qd);
          std::copy(row + qd, row + qd + kd, k.begin() + static_cast<ptrdiff_t>(t) * kd);
          std::copy(row + qd + kd, row + width, v.begin() + static_cast<ptrdiff_t>(t) * kd);
        }
        const size_t cache_n = static_cast<size_t>(blocks) * kh * block_size * head_dim;
        auto k_cache = random_half(cache_n, rng_), v_cache = random_half(cache_n, rng_);
        DeviceArray<uint16_t> d_qkv(qkv), d_q(q), d_k(k), d_v(v), d_kc(k_cache), d_vc(v_cache),
            d_qout(std::vector<uint16_t>(q.size(), kHalfNaN));
        DeviceArray<int32_t> d_pos(positions), d_slots(slots);
        DeviceArray<float> d_freq(inv_freq);
        kernels::RopeKvParams p;
        if (fused) {
          p.q = d_qkv.as<__half>(), p.k = p.q + qd, p.v = p.q + qd + kd;
          p.ldq = p.ldk = p.ldv = width;
        } else {
          p.q = d_q.as<__half>(), p.k = d_k.as<__half>(), p.v = d_v.as<__half>();
          p.ldq = qd, p.ldk = p.ldv = kd;
        }
        p.positions = d_pos.get();
        p.inv_freq = d_freq.get();
        p.slot_mapping = d_slots.get();
        p.q_out = d_qout.as<__half>();
        p.k_cache = d_kc.as<__half>();
        p.v_cache = d_vc.as<__half>();
        p.tokens = tokens, p.num_q_heads = qh, p.num_kv_heads = kh, p.head_dim = head_dim, p.block_size = block_size;
        CUDA_OK(kernels::rope_and_write_kv(p, nullptr));
        CUDA_OK(cudaDeviceSynchronize());
        kernels::ref::apply_rope(q.data(), k.data(), positions.data(), inv_freq.data(), tokens, qh, kh, head_dim);
        kernels::ref::write_kv_cache(k.data(), v.data(), slots.data(), k_cache.data(), v_cache.data(), tokens, kh,
                                     head_dim, block_size);
        const std::string what = name + " d" + std::to_string(head_dim) + (fused ? " fused" : " separate");
        auto cq = compare_half(d_qout.download(), q);
        auto ck = compare_half(d_kc.download(), k_cache);
        report("rope q " + what, cq);
        report("rope k cache " + what, ck);
        EXPECT_EQ(cq.non_finite, 0u) << what;
        EXPECT_LT(cq.rel_error, 2e-3) << what << " seed " << seed_;
        EXPECT_LT(ck.rel_error, 2e-3) << what << " seed " << seed_;
        EXPECT_EQ(d_vc.download(), v_cache) << what;
      }
    }
  }
  kernels::RopeKvParams odd;
  odd.tokens = 1, odd.head_dim = 12;
  EXPECT_EQ(kernels::rope_and_write_kv(odd, nullptr), cudaErrorInvalidValue);
}

TEST_F(KernelTest, SiluAndMulAndBiasMatchReference) {
  const int rows = 3, dim = 777;
  const size_t n = static_cast<size_t>(rows) * dim;
  auto gate = random_half(n, rng_, -6, 6), up = random_half(n, rng_, -2, 2);
  // Also from the two halves of one fused [gate | up] product (rows 2 dim apart).
  std::vector<uint16_t> gate_up(2 * n);
  for (int r = 0; r < rows; ++r) {
    std::copy_n(gate.begin() + static_cast<ptrdiff_t>(r) * dim, dim, gate_up.begin() + static_cast<ptrdiff_t>(r) * 2 * dim);
    std::copy_n(up.begin() + static_cast<ptrdiff_t>(r) * dim, dim, gate_up.begin() + static_cast<ptrdiff_t>(r) * 2 * dim + dim);
  }
  DeviceArray<uint16_t> d_gate(gate), d_up(up), d_gate_up(gate_up), d_out(std::vector<uint16_t>(n, kHalfNaN)),
      d_out_fused(std::vector<uint16_t>(n, kHalfNaN));
  CUDA_OK(kernels::silu_and_mul(d_gate.as<__half>(), d_up.as<__half>(), dim, d_out.as<__half>(), rows, dim, nullptr));
  CUDA_OK(kernels::silu_and_mul(d_gate_up.as<__half>(), d_gate_up.as<__half>() + dim, 2 * dim,
                                d_out_fused.as<__half>(), rows, dim, nullptr));
  EXPECT_EQ(kernels::silu_and_mul(d_gate.as<__half>(), d_up.as<__half>(), dim - 1, d_out.as<__half>(), rows, dim,
                                  nullptr),
            cudaErrorInvalidValue);
  auto bias = random_half(dim, rng_);
  DeviceArray<uint16_t> d_bias(bias);
  CUDA_OK(kernels::add_bias(d_up.as<__half>(), d_bias.as<__half>(), rows, dim, nullptr));
  CUDA_OK(cudaDeviceSynchronize());
  std::vector<uint16_t> out(n);
  kernels::ref::silu_and_mul(gate.data(), up.data(), out.data(), rows, dim);
  kernels::ref::add_bias(up.data(), bias.data(), rows, dim);
  auto c = compare_half(d_out.download(), out);
  auto cb = compare_half(d_up.download(), up);
  report("silu_and_mul", c);
  report("add_bias", cb);
  EXPECT_EQ(d_out_fused.download(), d_out.download());
  EXPECT_EQ(c.non_finite, 0u);
  EXPECT_LT(c.rel_error, 1e-3);
  EXPECT_LT(cb.rel_error, 1e-3);
}

// Rows of a multiple of 8 with 16-byte aligned pointers take the 16-byte kernel;
// a 2-byte aligned output takes the scalar one: both must give the same bits.
TEST_F(KernelTest, VectorizedSiluAndMulMatchesScalarKernel) {
  for (int dim : {8, 1032, 14336}) {
    const int rows = 5;
    const size_t n = static_cast<size_t>(rows) * dim;
    auto gate = random_half(n, rng_, -8, 8), up = random_half(n, rng_, -3, 3);
    std::vector<uint16_t> gate_up(2 * n);
    for (int r = 0; r < rows; ++r) {
      std::copy_n(gate.begin() + static_cast<ptrdiff_t>(r) * dim, dim,
                  gate_up.begin() + static_cast<ptrdiff_t>(r) * 2 * dim);
      std::copy_n(up.begin() + static_cast<ptrdiff_t>(r) * dim, dim,
                  gate_up.begin() + static_cast<ptrdiff_t>(r) * 2 * dim + dim);
    }
    DeviceArray<uint16_t> d_gate_up(gate_up), d_vec(std::vector<uint16_t>(n, kHalfNaN)),
        d_scalar(std::vector<uint16_t>(n + 1, kHalfNaN));
    CUDA_OK(kernels::silu_and_mul(d_gate_up.as<__half>(), d_gate_up.as<__half>() + dim, 2 * dim, d_vec.as<__half>(),
                                  rows, dim, nullptr));
    CUDA_OK(kernels::silu_and_mul(d_gate_up.as<__half>(), d_gate_up.as<__half>() + dim, 2 * dim,
                                  d_scalar.as<__half>() + 1, rows, dim, nullptr));
    CUDA_OK(cudaDeviceSynchronize());
    std::vector<uint16_t> expect(n);
    kernels::ref::silu_and_mul(gate.data(), up.data(), expect.data(), rows, dim);
    const auto vec = d_vec.download();
    auto scalar = d_scalar.download();
    scalar.erase(scalar.begin());
    EXPECT_EQ(vec, scalar) << "dim " << dim;
    auto c = compare_half(vec, expect);
    report("silu_and_mul 16-byte dim " + std::to_string(dim), c);
    EXPECT_EQ(c.non_finite, 0u);
    EXPECT_LT(c.rel_error, 1e-3);
  }
}

TEST_F(KernelTest, EmbeddingAndGatherMatchReference) {
  // 200: the scalar kernels; 4096: the 16-byte vector kernels.
  for (const int dim : {200, 4096}) {
    SCOPED_TRACE(dim);
    const int vocab = 1001, tokens = 9;
    auto table = random_half(static_cast<size_t>(vocab) * dim, rng_);
    std::vector<int32_t> ids(tokens);
    std::uniform_int_distribution<int> id(0, vocab - 1);
    for (auto& x : ids) x = id(rng_);
    ids[0] = vocab - 1;
    DeviceArray<uint16_t> d_table(table);
    DeviceArray<int32_t> d_ids(ids);
    DeviceArray<float> d_out(std::vector<float>(static_cast<size_t>(tokens) * dim, NAN));
    CUDA_OK(kernels::embedding_lookup(d_table.as<__half>(), d_ids.get(), d_out.get(), tokens, dim, nullptr));
    std::vector<int32_t> rows = {3, 0, 3, 8};
    DeviceArray<int32_t> d_rows(rows);
    DeviceArray<uint16_t> d_gathered(std::vector<uint16_t>(rows.size() * dim, kHalfNaN));
    CUDA_OK(kernels::gather_rows(d_table.as<__half>(), d_rows.get(), d_gathered.as<__half>(), 4, dim, nullptr));
    CUDA_OK(cudaDeviceSynchronize());
    std::vector<float> out(static_cast<size_t>(tokens) * dim);
    kernels::ref::embedding_lookup(table.data(), ids.data(), out.data(), tokens, dim);
    std::vector<uint16_t> gathered(rows.size() * dim);
    kernels::ref::gather_rows(table.data(), rows.data(), gathered.data(), 4, dim);
    EXPECT_EQ(d_out.download(), out);
    EXPECT_EQ(d_gathered.download(), gathered);
  }
}

TEST_F(KernelTest, CublasProductsMatchReference) {
  const int rows = 3, hidden = 264, vocab = 1003;
  auto x = random_half(static_cast<size_t>(rows) * hidden, rng_);
  auto w = random_half(static_cast<size_t>(vocab) * hidden, rng_, -0.1f, 0.1f);
  DeviceArray<uint16_t> d_x(x), d_w(w);
  DeviceArray<float> d_logits(std::vector<float>(static_cast<size_t>(rows) * vocab, NAN));
  DeviceArray<uint16_t> d_y(std::vector<uint16_t>(static_cast<size_t>(rows) * vocab, kHalfNaN));
  DeviceArray<uint16_t> d_y_kn(std::vector<uint16_t>(static_cast<size_t>(rows) * vocab, kHalfNaN));
  // w_t is w transposed: [hidden, vocab]
  std::vector<uint16_t> w_t(w.size());
  for (int v = 0; v < vocab; ++v)
    for (int k = 0; k < hidden; ++k) w_t[static_cast<size_t>(k) * vocab + v] = w[static_cast<size_t>(v) * hidden + k];
  DeviceArray<uint16_t> d_w_t(w_t);
  cublasHandle_t handle;
  ASSERT_EQ(cublasCreate(&handle), CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(kernels::lm_head_logits(handle, d_x.as<__half>(), d_w.as<__half>(), d_logits.get(), rows, hidden, vocab),
            CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(kernels::dense_linear(handle, d_x.as<__half>(), d_w.as<__half>(), d_y.as<__half>(), rows, hidden, vocab),
            CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(
      kernels::dense_linear_kn(handle, d_x.as<__half>(), d_w_t.as<__half>(), d_y_kn.as<__half>(), rows, hidden, vocab),
      CUBLAS_STATUS_SUCCESS);
  CUDA_OK(cudaDeviceSynchronize());
  cublasDestroy(handle);
  std::vector<float> logits(static_cast<size_t>(rows) * vocab);
  kernels::ref::lm_head_logits(x.data(), w.data(), logits.data(), rows, hidden, vocab);
  std::vector<uint16_t> y(logits.size());
  for (size_t i = 0; i < y.size(); ++i) y[i] = float_to_fp16(logits[i]);
  auto c = compare_float(d_logits.download(), logits);
  auto cy = compare_half(d_y.download(), y);
  auto ckn = compare_half(d_y_kn.download(), y);
  report("lm_head_logits (fp32 out)", c);
  report("dense_linear", cy);
  report("dense_linear_kn", ckn);
  EXPECT_EQ(c.non_finite, 0u);
  EXPECT_LT(c.rel_error, 1e-4);
  EXPECT_LT(cy.rel_error, 1e-3);
  EXPECT_LT(ckn.rel_error, 1e-3);
}

TEST_F(KernelTest, ArgmaxMatchesReference) {
  // 32001: the scalar kernel; 128256 (Llama 3): the 16-byte vector kernel.
  for (const int vocab : {32001, 128256}) {
    SCOPED_TRACE(vocab);
    const int rows = 6;
    auto logits = random_float(static_cast<size_t>(rows) * vocab, rng_, -10, 10);
    logits[1 * vocab + 17] = 50.0f;  // a tie: the lower index wins
    logits[1 * vocab + 31000] = 50.0f;
    logits[2 * vocab + 5] = NAN;  // NaN never wins
    logits[3 * vocab + vocab - 1] = 99.0f;
    logits[4 * vocab + 4098] = 60.0f;  // a tie inside one thread's vector and across threads
    logits[4 * vocab + 4099] = 60.0f;
    logits[4 * vocab + 4097] = 60.0f;
    logits[4 * vocab + 2] = 60.0f;
    for (int i = 0; i < vocab; ++i) logits[5 * static_cast<size_t>(vocab) + i] = -1e30f;  // all equal: index 0
    DeviceArray<float> d_logits(logits);
    DeviceArray<int32_t> d_out(std::vector<int32_t>(rows, -1));
    CUDA_OK(kernels::argmax_rows(d_logits.get(), d_out.get(), rows, vocab, nullptr));
    CUDA_OK(cudaDeviceSynchronize());
    std::vector<int32_t> want(rows);
    kernels::ref::argmax_rows(logits.data(), want.data(), rows, vocab);
    EXPECT_EQ(d_out.download(), want);
    EXPECT_EQ(want[1], 17);
    EXPECT_EQ(want[3], vocab - 1);
    EXPECT_EQ(want[4], 2);
    EXPECT_EQ(want[5], 0);
  }
}

TEST_F(KernelTest, GptqDequantizeMatchesReference) {
  struct Case {
    int bits, group_size;
    bool act_order, zero_plus_one;
  };
  for (const Case& cs : {Case{4, 32, false, true}, Case{4, 64, true, true}, Case{4, -1, false, false},
                         Case{8, 32, true, false}, Case{8, 128, false, true}}) {
    const int in = 256, out = 72, pack = 32 / cs.bits;
    const int groups = cs.group_size > 0 ? in / cs.group_size : 1;
    std::uniform_int_distribution<uint32_t> bits32;
    std::vector<int32_t> qweight(static_cast<size_t>(in / pack) * out), qzeros(static_cast<size_t>(groups) * out / pack);
    for (auto& w : qweight) w = static_cast<int32_t>(bits32(rng_));
    for (auto& w : qzeros) w = static_cast<int32_t>(bits32(rng_));
    auto scales = random_half(static_cast<size_t>(groups) * out, rng_, 0.001f, 0.02f);
    std::vector<int32_t> g_idx(in);
    for (int k = 0; k < in; ++k) g_idx[k] = cs.group_size > 0 ? k / cs.group_size : 0;
    if (cs.act_order) std::shuffle(g_idx.begin(), g_idx.end(), rng_);
    DeviceArray<int32_t> d_qw(qweight), d_qz(qzeros), d_g(g_idx);
    DeviceArray<uint16_t> d_s(scales), d_w(std::vector<uint16_t>(static_cast<size_t>(in) * out, kHalfNaN));
    kernels::GptqDequantParams p;
    p.qweight = d_qw.get();
    p.qzeros = d_qz.get();
    p.scales = d_s.as<__half>();
    p.g_idx = cs.act_order ? d_g.get() : nullptr;
    p.in_features = in;
    p.out_features = out;
    p.bits = cs.bits;
    p.group_size = cs.group_size;
    p.zero_plus_one = cs.zero_plus_one;
    CUDA_OK(kernels::gptq_dequantize(p, d_w.as<__half>(), nullptr));
    CUDA_OK(cudaDeviceSynchronize());
    std::vector<uint16_t> w(static_cast<size_t>(in) * out);
    kernels::ref::gptq_dequantize(qweight.data(), qzeros.data(), scales.data(), cs.act_order ? g_idx.data() : nullptr,
                                  in, out, cs.bits, cs.group_size, cs.zero_plus_one, w.data());
    EXPECT_EQ(d_w.download(), w) << "bits " << cs.bits << " group " << cs.group_size;
  }
}

TEST_F(KernelTest, RandomFillMatchesHash) {
  const size_t n = 4099;
  DeviceArray<uint32_t> d_bits(n);
  DeviceArray<uint16_t> d_half(n);
  CUDA_OK(kernels::fill_random_bits(d_bits.get(), n, seed_, nullptr));
  CUDA_OK(kernels::fill_random_half(d_half.as<__half>(), n, seed_ + 1, 0.5f, 1.0f, nullptr));
  CUDA_OK(cudaDeviceSynchronize());
  auto bits = d_bits.download();
  auto halfs = d_half.download();
  for (size_t i = 0; i < n; ++i) {
    ASSERT_EQ(bits[i], static_cast<uint32_t>(kernels::ref::random_hash(seed_, i) >> 32));
    ASSERT_EQ(halfs[i], float_to_fp16(1.0f + 0.5f * kernels::ref::random_uniform(seed_ + 1, i)));
  }
}

}  // namespace
}  // namespace nibble::test
