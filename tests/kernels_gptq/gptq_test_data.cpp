#include "gptq_test_data.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "nibble/core/half.h"

namespace nibble::kernels::testing {

std::string CheckpointSpec::name() const {
  std::string out = "K";  // appended piecewise: GCC 12 warns (-Wrestrict) on long literal + string chains
  out += std::to_string(K);
  out += "_N" + std::to_string(N);
  out += "_b" + std::to_string(bits);
  out += "_g" + std::to_string(group_size);
  out += sym ? "_sym" : "_asym";
  out += v2 ? "_v2" : "_v1";
  if (act_order) out += "_act";
  if (!with_g_idx) out += "_nogidx";
  return out;
}

std::vector<uint16_t> random_halves(size_t count, std::mt19937& rng, float lo, float hi) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<uint16_t> out(count);
  for (auto& v : out) v = float_to_fp16(dist(rng));
  return out;
}

Checkpoint make_checkpoint(const CheckpointSpec& spec, std::mt19937& rng) {
  Checkpoint c;
  c.spec = spec;
  const int64_t K = spec.K, N = spec.N;
  const int bits = spec.bits, pack = 32 / bits, levels = 1 << bits;
  const int64_t gs = spec.group_size <= 0 ? K : spec.group_size;
  c.groups = (K + gs - 1) / gs;

  std::uniform_int_distribution<int> qdist(0, levels - 1);
  c.q.resize(static_cast<size_t>(K * N));
  for (auto& v : c.q) v = qdist(rng);

  // v1 stores zero - 1, so its zeros run 1..levels; v2 stores them as is, 0..levels-1.
  std::uniform_int_distribution<int> zdist(spec.v2 ? 0 : 1, spec.v2 ? levels - 1 : levels);
  c.zero.resize(static_cast<size_t>(c.groups * N));
  for (auto& z : c.zero) z = spec.sym ? levels / 2 : zdist(rng);
  c.scales = random_halves(static_cast<size_t>(c.groups * N), rng, 0.002f, 0.02f);

  c.g_idx.resize(static_cast<size_t>(K));
  std::vector<int32_t> order(static_cast<size_t>(K));
  std::iota(order.begin(), order.end(), 0);
  if (spec.act_order) std::shuffle(order.begin(), order.end(), rng);
  for (int64_t k = 0; k < K; ++k) c.g_idx[static_cast<size_t>(order[static_cast<size_t>(k)])] = static_cast<int32_t>(k / gs);

  c.qweight.assign(static_cast<size_t>(K / pack * N), 0);
  for (int64_t k = 0; k < K; ++k)
    for (int64_t n = 0; n < N; ++n) {
      uint32_t& word = reinterpret_cast<uint32_t&>(c.qweight[static_cast<size_t>(k / pack * N + n)]);
      word |= static_cast<uint32_t>(c.q[static_cast<size_t>(k * N + n)]) << (bits * (k % pack));
    }
  c.qzeros.assign(static_cast<size_t>(c.groups * (N / pack)), 0);
  for (int64_t g = 0; g < c.groups; ++g)
    for (int64_t n = 0; n < N; ++n) {
      const uint32_t stored = static_cast<uint32_t>(c.zero[static_cast<size_t>(g * N + n)] - (spec.v2 ? 0 : 1));
      uint32_t& word = reinterpret_cast<uint32_t&>(c.qzeros[static_cast<size_t>(g * (N / pack) + n / pack)]);
      word |= stored << (bits * (n % pack));
    }
  return c;
}

GptqCheckpointView Checkpoint::view() const {
  GptqCheckpointView v;
  v.K = spec.K;
  v.N = spec.N;
  v.bits = spec.bits;
  v.group_size = spec.group_size;
  v.zero_minus_one = !spec.v2;
  v.qweight = qweight.data();
  v.qzeros = qzeros.data();
  v.scales = scales.data();
  v.g_idx = spec.with_g_idx ? g_idx.data() : nullptr;
  return v;
}

std::vector<double> dense_product(const Checkpoint& c, const std::vector<uint16_t>& x, int64_t M,
                                  const uint16_t* bias) {
  const int64_t K = c.spec.K, N = c.spec.N;
  std::vector<double> w(static_cast<size_t>(K * N));
  for (int64_t k = 0; k < K; ++k) {
    const int64_t g = c.group_of(k);
    for (int64_t n = 0; n < N; ++n)
      w[static_cast<size_t>(k * N + n)] =
          static_cast<double>(c.q[static_cast<size_t>(k * N + n)] - c.zero[static_cast<size_t>(g * N + n)]) *
          fp16_to_float(c.scales[static_cast<size_t>(g * N + n)]);
  }
  std::vector<double> y(static_cast<size_t>(M * N), 0.0);
  for (int64_t m = 0; m < M; ++m) {
    double* row = y.data() + m * N;
    if (bias)
      for (int64_t n = 0; n < N; ++n) row[n] = fp16_to_float(bias[n]);
    for (int64_t k = 0; k < K; ++k) {
      const double xv = fp16_to_float(x[static_cast<size_t>(m * K + k)]);
      const double* wk = w.data() + k * N;
      for (int64_t n = 0; n < N; ++n) row[n] += xv * wk[n];
    }
  }
  return y;
}

double relative_error(const float* a, const double* b, size_t count) {
  double diff = 0.0, norm = 0.0;
  for (size_t i = 0; i < count; ++i) {
    const double d = static_cast<double>(a[i]) - b[i];
    diff += d * d;
    norm += b[i] * b[i];
  }
  if (!std::isfinite(diff)) return INFINITY;
  return std::sqrt(diff / (norm > 0 ? norm : 1e-300));
}

std::vector<CheckpointSpec> all_specs(int64_t K, int64_t N) {
  std::vector<CheckpointSpec> specs;
  for (int bits : {4, 8})
    for (bool sym : {true, false})
      for (bool v2 : {false, true})
        for (int group : {32, 64, 128, -1})
          for (bool act : {false, true}) {
            CheckpointSpec s;
            s.K = K;
            s.N = N;
            s.bits = bits;
            s.group_size = group;
            s.sym = sym;
            s.v2 = v2;
            s.act_order = act;
            specs.push_back(s);
          }
  return specs;
}

}  // namespace nibble::kernels::testing
