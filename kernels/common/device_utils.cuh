#pragma once
// Small device helpers shared by the kernels: warp and block reductions,
// streaming loads, programmatic dependent launch, the current device's shape.
#include <cuda_fp16.h>
#include <cuda_runtime.h>

namespace nibble::kernels {

// The current device's SM count and compute capability (major), for launch
// choices; zeros when no device answers.
struct DeviceShape {
  int sms = 0;
  int major = 0;
};

inline DeviceShape current_device_shape() {
  DeviceShape shape;
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess) return shape;
  cudaDeviceGetAttribute(&shape.sms, cudaDevAttrMultiProcessorCount, device);
  cudaDeviceGetAttribute(&shape.major, cudaDevAttrComputeCapabilityMajor, device);
  return shape;
}

__device__ __forceinline__ float warp_sum(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

// Sum over the whole block (blockDim.x a multiple of 32, at most 1024); every
// thread gets the result. scratch needs 32 floats of shared memory.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  v = warp_sum(v);
  __syncthreads();  // scratch may still be read by a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  const int warps = blockDim.x >> 5;
  v = lane < warps ? scratch[lane] : 0.0f;
  return warp_sum(v);
}

inline unsigned ceil_div(unsigned a, unsigned b) { return (a + b - 1) / b; }

// silu(gate) * up rounded to fp16: the gated MLP activation, the same bits in
// silu_and_mul and in the GPTQ kernels that fold it into their input.
__device__ __forceinline__ __half silu_mul_one(__half gate, __half up) {
  const float g = __half2float(gate);
  return __float2half(g / (1.0f + __expf(-g)) * __half2float(up));
}

// A 16-byte load of data read once (weights streamed from DRAM): through the
// non-coherent path, not kept in L1.
__device__ __forceinline__ uint4 load_streaming(const void* p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}

// Programmatic dependent launch (compute capability 9.0+; no-ops before it and
// in grids launched without the attribute). A kernel launched with it may start
// while the kernel before it on the stream still runs: it must call
// wait_for_previous_grid() in every thread before it reads what that kernel
// writes or writes anything itself. Calling it at the start also lets the next
// kernel launch early the same way.
__device__ __forceinline__ void wait_for_previous_grid() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// The launch attribute making each (x, y) column of `size` blocks along the
// grid's z one thread-block cluster (compute capability 9.0+).
inline cudaLaunchAttribute cluster_along_z(unsigned size) {
  cudaLaunchAttribute cluster{};
  cluster.id = cudaLaunchAttributeClusterDimension;
  cluster.val.clusterDim.x = 1;
  cluster.val.clusterDim.y = 1;
  cluster.val.clusterDim.z = size;
  return cluster;
}

// Launches kernel<<<grid, block, smem, stream>>>(args...), the grid's z blocks of
// each (x, y) as one thread-block cluster when `cluster` is set, with
// programmatic stream serialization when `programmatic` is set.
template <typename... Params, typename... Args>
cudaError_t launch_maybe_clustered(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                                   bool cluster, bool programmatic, Args... args) {
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = smem;
  config.stream = stream;
  cudaLaunchAttribute attributes[2] = {cluster_along_z(grid.z), {}};
  attributes[1].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attributes[1].val.programmaticStreamSerializationAllowed = 1;
  config.attrs = cluster ? attributes : attributes + 1;
  config.numAttrs = (cluster ? 1 : 0) + (programmatic ? 1 : 0);
  return cudaLaunchKernelEx(&config, kernel, static_cast<Params>(args)...);
}

// The same without clusters.
template <typename... Params, typename... Args>
cudaError_t launch_maybe_programmatic(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem,
                                      cudaStream_t stream, bool programmatic, Args... args) {
  return launch_maybe_clustered(kernel, grid, block, smem, stream, false, programmatic, args...);
}

// How many clusters of cluster_size blocks (grid z) of kernel the device runs at
// once with `smem` bytes of dynamic shared memory each (0 when it cannot).
template <typename... Params>
int max_active_clusters(void (*kernel)(Params...), dim3 block, size_t smem, int cluster_size) {
  cudaLaunchConfig_t config{};
  config.gridDim = dim3(1, 1, static_cast<unsigned>(cluster_size));
  config.blockDim = block;
  config.dynamicSmemBytes = smem;
  cudaLaunchAttribute cluster = cluster_along_z(static_cast<unsigned>(cluster_size));
  config.attrs = &cluster;
  config.numAttrs = 1;
  int clusters = 0;
  if (cudaOccupancyMaxActiveClusters(&clusters, kernel, &config) != cudaSuccess) {
    cudaGetLastError();  // not a sticky error: leave none behind for the next launch check
    return 0;
  }
  return clusters;
}

}  // namespace nibble::kernels
