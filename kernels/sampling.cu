// Per row of logits: the argmax (lowest index on ties, NaN ignored) and its softmax probability 1 / Σ e^(l − max), so a
// draft's confidence check copies back 8 bytes per row instead of the logits.
#include "common.cuh"

// Threads per block, from the launcher (SelectionLauncher, src/Kangaroo.Backends.Cuda/Launchers) as a -D define.
#ifndef ARGMAX_THREADS
#error "ARGMAX_THREADS must be defined by the launcher"
#endif
#define NO_INDEX 0x7fffffff   // a thread that saw no candidate

// The block's best (value, index): the largest value, the lowest index among equals, a candidate over none. Every thread
// gets it. `values` and `indices` hold blockDim.x / 32 entries; the block size must be a multiple of 32.
__device__ __forceinline__ void block_best(float& best, int& index, float* values, int* indices)
{
    int lane = threadIdx.x % WARP_SIZE, warp = threadIdx.x / WARP_SIZE, warps = blockDim.x / WARP_SIZE;
    for (int round = 0; round < 2; round++)   // within each warp, then over the warps' results
    {
        for (int offset = WARP_SIZE / 2; offset > 0; offset >>= 1)
        {
            float other = __shfl_xor_sync(FULL_MASK, best, offset);
            int other_index = __shfl_xor_sync(FULL_MASK, index, offset);
            if (other_index != NO_INDEX && (index == NO_INDEX || other > best || (other == best && other_index < index)))
            { best = other; index = other_index; }
        }
        if (round == 1) break;
        __syncthreads();   // an earlier call's readers are done with the shared entries
        if (lane == 0) { values[warp] = best; indices[warp] = index; }
        __syncthreads();
        best = lane < warps ? values[lane] : negative_infinity();
        index = lane < warps ? indices[lane] : NO_INDEX;
    }
}


extern "C" __global__ void __launch_bounds__(ARGMAX_THREADS) argmax_probability(const float* logits, int vocab, int* tokens, float* probabilities)
{
    __shared__ float best_values[32];
    __shared__ int best_indices[32];
    __shared__ float scratch[32];
    const float* row = logits + (long long)blockIdx.x * vocab;

    float best = negative_infinity();
    int index = NO_INDEX;
    for (int i = threadIdx.x; i < vocab; i += blockDim.x)
    {
        float v = row[i];
        if (v > best) { best = v; index = i; }   // ascending i: the first of equals stays
    }
    block_best(best, index, best_values, best_indices);
    if (index == NO_INDEX) index = 0;   // every logit NaN: report id 0 rather than an out-of-range id

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
    float previous = bits_to_float(0x7f800000u);   // +inf: the first pass takes any logit
    int previous_index = -1;
    float top = negative_infinity();
    for (int j = 0; j < k; j++)
    {
        float best = negative_infinity();
        int index = NO_INDEX;
        for (int i = threadIdx.x; i < vocab; i += blockDim.x)
        {
            float v = row[i];
            bool after = v < previous || (v == previous && i > previous_index);
            if (after && v > best) { best = v; index = i; }   // ascending i: the first of equals stays; −inf never counts
        }
        block_best(best, index, best_values, best_indices);
        if (threadIdx.x == 0)
        {
            tokens[(long long)blockIdx.x * k + j] = index == NO_INDEX ? -1 : index;
            probabilities[(long long)blockIdx.x * k + j] = best;   // the logit for now: its probability below
        }
        if (j == 0) top = best;
        previous = best;
        previous_index = index;   // NO_INDEX when nothing was left: later passes find nothing either
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
