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

// Per row: the k largest logits in order (value descending, the lowest index first among equals, NaN ignored) and their
// softmax probabilities e^(l − max) / Σ e^(l − max): a token tree's proposals cross to the host as k ids and k floats
// per row instead of the logits. Pass j finds the best logit strictly after pass j − 1's in that order. Rows with fewer
// than k logits above −inf end with id −1 and probability 0. CPU reference: TopKReference.Select (Kangaroo.Core).
extern "C" __global__ void __launch_bounds__(ARGMAX_THREADS) top_k_probability(const float* logits, int vocab, int k, int* tokens, float* probabilities)
{
    __shared__ float best_values[32];
    __shared__ int best_indices[32];
    __shared__ float scratch[32];
    const float* row = logits + (long long)blockIdx.x * vocab;
    int lane = threadIdx.x % WARP_SIZE, warp = threadIdx.x / WARP_SIZE, warps = blockDim.x / WARP_SIZE;
    float previous = bits_to_float(0x7f800000u);   // +inf: the first pass takes any logit
    int previous_index = -1;
    float top = negative_infinity();
    for (int j = 0; j < k; j++)
    {
        float best = negative_infinity();
        int index = 0x7fffffff;
        for (int i = threadIdx.x; i < vocab; i += blockDim.x)
        {
            float v = row[i];
            bool after = v < previous || (v == previous && i > previous_index);
            if (after && v > best) { best = v; index = i; }   // ascending i: the first of equals stays; −inf never counts
        }
        for (int offset = WARP_SIZE / 2; offset > 0; offset >>= 1)
        {
            float other = __shfl_xor_sync(FULL_MASK, best, offset);
            int other_index = __shfl_xor_sync(FULL_MASK, index, offset);
            if (other_index != 0x7fffffff && (index == 0x7fffffff || other > best || (other == best && other_index < index)))
            { best = other; index = other_index; }
        }
        if (lane == 0) { best_values[warp] = best; best_indices[warp] = index; }
        __syncthreads();
        best = lane < warps ? best_values[lane] : negative_infinity();
        index = lane < warps ? best_indices[lane] : 0x7fffffff;
        for (int offset = WARP_SIZE / 2; offset > 0; offset >>= 1)
        {
            float other = __shfl_xor_sync(FULL_MASK, best, offset);
            int other_index = __shfl_xor_sync(FULL_MASK, index, offset);
            if (other_index != 0x7fffffff && (index == 0x7fffffff || other > best || (other == best && other_index < index)))
            { best = other; index = other_index; }
        }
        __syncthreads();   // every thread has read the warp results before the next pass writes them
        if (threadIdx.x == 0)
        {
            tokens[(long long)blockIdx.x * k + j] = index == 0x7fffffff ? -1 : index;
            probabilities[(long long)blockIdx.x * k + j] = best;   // the logit for now: its probability below
        }
        if (j == 0) top = best;
        previous = best;
        previous_index = index;
        if (index == 0x7fffffff) previous_index = 0x7fffffff;   // nothing left: later passes find nothing either
    }

    float sum = 0.0f;
    for (int i = threadIdx.x; i < vocab; i += blockDim.x) sum += expf(row[i] - top);
    float total = block_sum(sum, scratch);
    if (threadIdx.x == 0)
        for (int j = 0; j < k; j++)
        {
            long long at = (long long)blockIdx.x * k + j;
            probabilities[at] = tokens[at] < 0 ? 0.0f : expf(probabilities[at] - top) / total;
        }
}
