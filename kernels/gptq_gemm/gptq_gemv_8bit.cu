// Instantiations of the fused small-M kernel for 8-bit weights (own TU: nvcc time).
#include "gptq_gemm/gptq_gemv.cuh"

namespace nibble::kernels::detail {
template void launch_gemv<8>(const GemvParams&, int, dim3, int, cudaStream_t);
}
