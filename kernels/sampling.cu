// Per row of logits: the argmax (lowest index on ties, NaN ignored) and its softmax probability 1 / Σ e^(l − max), so a
// draft's confidence check copies back 8 bytes per row instead of the logits.
#include "common.cuh"

#define ARGMAX_THREADS 256

extern "C" __global__ void __launch_bounds__(ARGMAX_THREADS) argmax_probability(const float* logits, int vocab, int* tokens, float* probabilities)
{
    __shared__ float best_values[32];
    __shared__ int best_indices[32];
    __shared__ float scratch[32];
    const float* row = logits + (long long)blockIdx.x * vocab;

    float best = negative_infinity();
    int index = 0x7fffffff;
    for (int i = threadIdx.x; i < vocab; i += blockDim.x)
    {
        float v = row[i];
        if (v > best) { best = v; index = i; }   // ascending i: the first of equal values stays
    }
    for (int offset = WARP_SIZE / 2; offset > 0; offset >>= 1)
    {
        float other = __shfl_xor_sync(FULL_MASK, best, offset);
        int other_index = __shfl_xor_sync(FULL_MASK, index, offset);
        if (other > best || (other == best && other_index < index)) { best = other; index = other_index; }
    }
    int lane = threadIdx.x % WARP_SIZE, warp = threadIdx.x / WARP_SIZE, warps = blockDim.x / WARP_SIZE;
    if (lane == 0) { best_values[warp] = best; best_indices[warp] = index; }
    __syncthreads();
    best = lane < warps ? best_values[lane] : negative_infinity();
    index = lane < warps ? best_indices[lane] : 0x7fffffff;
    for (int offset = WARP_SIZE / 2; offset > 0; offset >>= 1)
    {
        float other = __shfl_xor_sync(FULL_MASK, best, offset);
        int other_index = __shfl_xor_sync(FULL_MASK, index, offset);
        if (other > best || (other == best && other_index < index)) { best = other; index = other_index; }
    }
    if (index == 0x7fffffff) index = 0;   // every logit NaN: report id 0 rather than an out-of-range id

    float sum = 0.0f;
    for (int i = threadIdx.x; i < vocab; i += blockDim.x) sum += expf(row[i] - best);
    float total = block_sum(sum, scratch);
    if (threadIdx.x == 0)
    {
        tokens[blockIdx.x] = index;
        probabilities[blockIdx.x] = 1.0f / total;
    }
}
