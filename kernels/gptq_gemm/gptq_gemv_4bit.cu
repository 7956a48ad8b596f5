// Instantiations of the fused small-M kernel for 4-bit weights (own TU: nvcc time).
#include "gptq_gemm/gptq_gemv.cuh"

namespace nibble::kernels::detail {
template void launch_gemv<4>(const GemvParams&, int, dim3, int, bool, cudaStream_t);
template int gemv_blocks_per_sm<4>(int, int, size_t);
}
