#pragma once
// Full sampling on the GPU, with the order of operations, RNG and draw of the
// CPU Sampler (include/nibble/engine/sampler.h): logit_bias, suppression,
// repetition/frequency/presence penalties, greedy, temperature, top_k, top_p,
// min_p, typical_p, the counter-based draw walking kept ids in id order, and
// the raw logprobs. One thread block per sample; several samples may read the
// same logits row (n > 1), which is never written. No full sort: top_k, top_p
// and typical_p cut points come from radix selection over (key, weight)
// histograms, the draw from a block-wide prefix sum in double.
#include <cstddef>
#include <cstdint>

#include <cuda_runtime_api.h>

#include "sampling/sample_job.h"

namespace nibble::kernels {

// Draws jobs[j] from row jobs[j].logits_row of logits ([rows, vocab] fp32,
// read only) into out[j]. entries: every job's SampleEntry ranges.
cudaError_t sample_rows(const float* logits, int vocab, const SampleJob* jobs, int num_jobs,
                        const SampleEntry* entries, SampleOutput* out, cudaStream_t stream);

}  // namespace nibble::kernels
