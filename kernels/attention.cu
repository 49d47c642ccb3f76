// Causal attention over the KV cache (F16 or F32) with grouped KV heads, split along the keys (flash-decoding style).
//
// Keys are cut into blocks of ATTENTION_BLOCK_KEYS by ABSOLUTE (logical) key position. attention_partial computes, for one
// (query row, head, key block), the block's max score, exp-sum and unnormalized value sum; attention_combine merges the
// blocks in block order. Both orders depend only on the key positions, so a query gets the same bits whether it is
// verified alone or with other rows.
//
// Token trees: keys at logical positions ≥ tree_start are read through ancestor_slots (one list per query row, the slots of
// its ancestors by depth), so a tree node sees exactly the keys of its own path, in the same order and blocking as a
// plain decode of that path. With tree_start ≥ every position, slot = position.
#include "common.cuh"

#ifndef ATTENTION_BLOCK_KEYS   // keys per block; the backend reads the same definition
#define ATTENTION_BLOCK_KEYS 64
#endif
#define ATTENTION_THREADS 128
#define ATTENTION_WARPS (ATTENTION_THREADS / WARP_SIZE)
#define ATTENTION_KEYS_PER_WARP (ATTENTION_BLOCK_KEYS / ATTENTION_WARPS)
#define ATTENTION_MAX_HEAD_DIM 256
// Each lane owns head-dimension elements lane·4 + 128·t (t < DIM_STEPS): 4 consecutive elements per load.
#define DIM_STEPS (ATTENTION_MAX_HEAD_DIM / (WARP_SIZE * 4))

__device__ __forceinline__ int key_slot(int key, int tree_start, const int* ancestor_slots, int row, int max_depth)
{
    return key < tree_start ? key : ancestor_slots[row * max_depth + (key - tree_start)];
}

// grid: x = rows · heads, y = key blocks; partials: [rows·heads][max_blocks][head_dim + 2].
// Scores: each warp takes ATTENTION_KEYS_PER_WARP consecutive keys, its lanes split the head dimension, a butterfly sums.
// Values: the same warp accumulates its keys' weighted values in key order, then warps are added in warp order.
template <typename KV>
__device__ __forceinline__ void attention_partial_impl(
    const float* queries, const KV* key_cache, const KV* value_cache, const int* positions,
    int tree_start, const int* ancestor_slots, int max_depth, float* partials,
    int heads, int kv_heads, int head_dim, int kv_width, long long layer_offset, float scale, int max_blocks)
{
    __shared__ float scores[ATTENTION_BLOCK_KEYS];
    __shared__ float warp_values[ATTENTION_WARPS][ATTENTION_MAX_HEAD_DIM];
    __shared__ float scratch[32];

    int item = blockIdx.x, block = blockIdx.y;
    int row = item / heads, head = item % heads, kv_head = head / (heads / kv_heads);
    int position = positions[row];
    if (block > position / ATTENTION_BLOCK_KEYS) return;   // whole block leaves: this row has fewer keys
    int first = block * ATTENTION_BLOCK_KEYS;
    int count = min(ATTENTION_BLOCK_KEYS, position + 1 - first);
    int lane = threadIdx.x % WARP_SIZE, warp = threadIdx.x / WARP_SIZE;

    const float* query = queries + (long long)item * head_dim;
    float q[DIM_STEPS][4];
#pragma unroll
    for (int t = 0; t < DIM_STEPS; t++)
#pragma unroll
        for (int e = 0; e < 4; e++)
        {
            int d = lane * 4 + t * WARP_SIZE * 4 + e;
            q[t][e] = d < head_dim ? query[d] : 0.0f;
        }

    long long head_offset = layer_offset + (long long)kv_head * head_dim;
    int warp_first = warp * ATTENTION_KEYS_PER_WARP;
#pragma unroll 4
    for (int i = 0; i < ATTENTION_KEYS_PER_WARP; i++)
    {
        int j = warp_first + i;
        if (j >= count) break;   // uniform across the warp
        const KV* key = key_cache + head_offset + (long long)key_slot(first + j, tree_start, ancestor_slots, row, max_depth) * kv_width;
        float dot = 0.0f;
#pragma unroll
        for (int t = 0; t < DIM_STEPS; t++)
#pragma unroll
            for (int e = 0; e < 4; e++)
            {
                int d = lane * 4 + t * WARP_SIZE * 4 + e;
                if (d < head_dim) dot = fmaf(q[t][e], load_f32(key, d), dot);
            }
        dot = warp_sum(dot);
        if (lane == 0) scores[j] = dot * scale;
    }
    __syncthreads();

    float local_max = threadIdx.x < count ? scores[threadIdx.x] : negative_infinity();
    float block_maximum = block_max(local_max, scratch);
    __syncthreads();
    float p = 0.0f;
    if (threadIdx.x < count)
    {
        p = expf(scores[threadIdx.x] - block_maximum);
        scores[threadIdx.x] = p;
    }
    float block_total = block_sum(p, scratch);
    __syncthreads();

    float acc[DIM_STEPS][4];
#pragma unroll
    for (int t = 0; t < DIM_STEPS; t++)
#pragma unroll
        for (int e = 0; e < 4; e++) acc[t][e] = 0.0f;
#pragma unroll 4
    for (int i = 0; i < ATTENTION_KEYS_PER_WARP; i++)
    {
        int j = warp_first + i;
        if (j >= count) break;
        const KV* value = value_cache + head_offset + (long long)key_slot(first + j, tree_start, ancestor_slots, row, max_depth) * kv_width;
        float weight = scores[j];
#pragma unroll
        for (int t = 0; t < DIM_STEPS; t++)
#pragma unroll
            for (int e = 0; e < 4; e++)
            {
                int d = lane * 4 + t * WARP_SIZE * 4 + e;
                if (d < head_dim) acc[t][e] = fmaf(weight, load_f32(value, d), acc[t][e]);
            }
    }
#pragma unroll
    for (int t = 0; t < DIM_STEPS; t++)
#pragma unroll
        for (int e = 0; e < 4; e++)
        {
            int d = lane * 4 + t * WARP_SIZE * 4 + e;
            if (d < head_dim) warp_values[warp][d] = acc[t][e];
        }
    __syncthreads();

    float* out = partials + ((long long)item * max_blocks + block) * (head_dim + 2);
    for (int d = threadIdx.x; d < head_dim; d += blockDim.x)
    {
        float total = warp_values[0][d];
#pragma unroll
        for (int w = 1; w < ATTENTION_WARPS; w++) total += warp_values[w][d];
        out[d] = total;
    }
    if (threadIdx.x == 0)
    {
        out[head_dim] = block_maximum;
        out[head_dim + 1] = block_total;
    }
}

#define ATTENTION_PARTIAL_PARAMETERS(KV) \
    const float* queries, const KV* key_cache, const KV* value_cache, const int* positions, int tree_start, \
    const int* ancestor_slots, int max_depth, float* partials, int heads, int kv_heads, int head_dim, int kv_width, \
    long long layer_offset, float scale, int max_blocks
#define ATTENTION_PARTIAL_ARGUMENTS \
    queries, key_cache, value_cache, positions, tree_start, ancestor_slots, max_depth, partials, heads, kv_heads, \
    head_dim, kv_width, layer_offset, scale, max_blocks

extern "C" __global__ void __launch_bounds__(ATTENTION_THREADS) attention_partial_f16(ATTENTION_PARTIAL_PARAMETERS(half_bits))
{
    attention_partial_impl(ATTENTION_PARTIAL_ARGUMENTS);
}

extern "C" __global__ void __launch_bounds__(ATTENTION_THREADS) attention_partial_f32(ATTENTION_PARTIAL_PARAMETERS(float))
{
    attention_partial_impl(ATTENTION_PARTIAL_ARGUMENTS);
}

// grid: x = rows · heads. Merges the key blocks of one (row, head) in block order: block weights e^(m_b − M) computed in
// parallel, the exp-sum by a fixed-order block reduction, each output element by one thread over the blocks in order.
#define ATTENTION_MAX_BLOCKS_COMBINED 1024
extern "C" __global__ void __launch_bounds__(ATTENTION_THREADS) attention_combine(
    const float* partials, const int* positions, float* output, int heads, int head_dim, int max_blocks)
{
    __shared__ float weights[ATTENTION_MAX_BLOCKS_COMBINED];
    __shared__ float scratch[32];
    int item = blockIdx.x, row = item / heads;
    int blocks = positions[row] / ATTENTION_BLOCK_KEYS + 1;
    const float* base = partials + (long long)item * max_blocks * (head_dim + 2);

    float local_max = negative_infinity();
    for (int b = threadIdx.x; b < blocks; b += blockDim.x) local_max = fmaxf(local_max, base[b * (head_dim + 2) + head_dim]);
    float maximum = block_max(local_max, scratch);
    __syncthreads();
    float local_total = 0.0f;
    for (int b = threadIdx.x; b < blocks; b += blockDim.x)
    {
        float w = expf(base[b * (head_dim + 2) + head_dim] - maximum);
        weights[b] = w;
        local_total = fmaf(w, base[b * (head_dim + 2) + head_dim + 1], local_total);
    }
    float total = block_sum(local_total, scratch);
    __syncthreads();

    for (int d = threadIdx.x; d < head_dim; d += blockDim.x)
    {
        float acc = 0.0f;
#pragma unroll 8
        for (int b = 0; b < blocks; b++) acc = fmaf(weights[b], base[b * (head_dim + 2) + d], acc);
        output[(long long)item * head_dim + d] = acc / total;
    }
}
