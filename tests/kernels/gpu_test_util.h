#pragma once
// Helpers for the kernel tests: a device check that skips cleanly, RAII device
// arrays, fresh random inputs and relative-error reporting.
#include <cuda_runtime_api.h>

#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace nibble::test {

bool cuda_device_present();

#define NIBBLE_SKIP_WITHOUT_GPU() \
  do {                            \
    if (!::nibble::test::cuda_device_present()) GTEST_SKIP() << "no CUDA device"; \
  } while (0)

#define CUDA_OK(expr)                                                                   \
  do {                                                                                  \
    const cudaError_t nibble_err_ = (expr);                                             \
    ASSERT_EQ(nibble_err_, cudaSuccess) << #expr << ": " << cudaGetErrorString(nibble_err_); \
  } while (0)

template <typename T>
class DeviceArray {
 public:
  DeviceArray() = default;
  explicit DeviceArray(size_t n) : n_(n) {
    if (n_ > 0 && cudaMalloc(reinterpret_cast<void**>(&ptr_), n_ * sizeof(T)) != cudaSuccess) ptr_ = nullptr;
  }
  explicit DeviceArray(const std::vector<T>& host) : DeviceArray(host.size()) { upload(host); }
  ~DeviceArray() {
    if (ptr_) cudaFree(ptr_);
  }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;

  void upload(const std::vector<T>& host) { cudaMemcpy(ptr_, host.data(), n_ * sizeof(T), cudaMemcpyHostToDevice); }
  std::vector<T> download() const {
    std::vector<T> host(n_);
    cudaMemcpy(host.data(), ptr_, n_ * sizeof(T), cudaMemcpyDeviceToHost);
    return host;
  }
  T* get() const { return ptr_; }
  template <typename U>
  U* as() const {
    return reinterpret_cast<U*>(ptr_);
  }
  size_t size() const { return n_; }

 private:
  T* ptr_ = nullptr;
  size_t n_ = 0;
};

// Fresh seed per call (from std::random_device), printed on failure by the caller.
uint64_t fresh_seed();
std::vector<uint16_t> random_half(size_t n, std::mt19937_64& rng, float lo = -1.0f, float hi = 1.0f);
std::vector<float> random_float(size_t n, std::mt19937_64& rng, float lo = -1.0f, float hi = 1.0f);

// ||a - b|| / ||b|| over fp16 or fp32 values; counts non-finite values of a.
struct Comparison {
  double rel_error = 0.0;
  size_t count = 0;
  size_t non_finite = 0;
};
Comparison compare_half(const std::vector<uint16_t>& got, const std::vector<uint16_t>& want);
Comparison compare_float(const std::vector<float>& got, const std::vector<float>& want);
void report(const std::string& what, const Comparison& c);

// A GPU test (skipped without a device) with a fresh random generator per test;
// its seed is recorded as the test property "seed" so a failure can be replayed.
class SeededGpuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    NIBBLE_SKIP_WITHOUT_GPU();
    seed_ = fresh_seed();
    rng_.seed(seed_);
    RecordProperty("seed", std::to_string(seed_));
  }
  uint64_t seed_ = 0;
  std::mt19937_64 rng_;
};

}  // namespace nibble::test
