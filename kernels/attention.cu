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

#define ATTENTION_BLOCK_KEYS 256
#define ATTENTION_THREADS 128
#define ATTENTION_MAX_HEAD_DIM 256

__device__ __forceinline__ int key_slot(int key, int tree_start, const int* ancestor_slots, int row, int max_depth)
{
    return key < tree_start ? key : ancestor_slots[row * max_depth + (key - tree_start)];
}

// grid: x = rows · heads, y = key blocks (of the longest row); partials: [rows·heads][blocks][head_dim + 2].
template <typename KV>
__device__ __forceinline__ void attention_partial_impl(
    const float* queries, const KV* key_cache, const KV* value_cache, const int* positions,
    int tree_start, const int* ancestor_slots, int max_depth, float* partials,
    int heads, int kv_heads, int head_dim, int kv_width, long long layer_offset, float scale, int max_blocks)
{
    __shared__ float q[ATTENTION_MAX_HEAD_DIM];
    __shared__ float scores[ATTENTION_BLOCK_KEYS];
    __shared__ float scratch[32];

    int item = blockIdx.x, block = blockIdx.y;
    int row = item / heads, head = item % heads, kv_head = head / (heads / kv_heads);
    int position = positions[row];
    if (block > position / ATTENTION_BLOCK_KEYS) return;   // whole block leaves: this row has fewer keys
    int first = block * ATTENTION_BLOCK_KEYS;
    int count = min(ATTENTION_BLOCK_KEYS, position + 1 - first);

    const float* query = queries + (long long)item * head_dim;
    for (int d = threadIdx.x; d < head_dim; d += blockDim.x) q[d] = query[d];
    __syncthreads();

    int lane = threadIdx.x % WARP_SIZE, warp = threadIdx.x / WARP_SIZE, warps = blockDim.x / WARP_SIZE;
    for (int j = warp; j < count; j += warps)
    {
        int slot = key_slot(first + j, tree_start, ancestor_slots, row, max_depth);
        const KV* key = key_cache + layer_offset + (long long)slot * kv_width + kv_head * head_dim;
        float dot = 0.0f;
        for (int d = lane; d < head_dim; d += WARP_SIZE) dot = fmaf(q[d], load_f32(key, d), dot);
        dot = warp_sum(dot);
        if (lane == 0) scores[j] = dot * scale;
    }
    __syncthreads();

    float local_max = negative_infinity();
    for (int j = threadIdx.x; j < count; j += blockDim.x) local_max = fmaxf(local_max, scores[j]);
    float block_maximum = block_max(local_max, scratch);
    __syncthreads();
    float local_sum = 0.0f;
    for (int j = threadIdx.x; j < count; j += blockDim.x)
    {
        float p = expf(scores[j] - block_maximum);
        scores[j] = p;
        local_sum += p;
    }
    float block_total = block_sum(local_sum, scratch);
    __syncthreads();

    float* out = partials + ((long long)item * max_blocks + block) * (head_dim + 2);
    for (int d = threadIdx.x; d < head_dim; d += blockDim.x)
    {
        float acc = 0.0f;
        for (int j = 0; j < count; j++)
        {
            int slot = key_slot(first + j, tree_start, ancestor_slots, row, max_depth);
            acc = fmaf(scores[j], load_f32(value_cache, layer_offset + (long long)slot * kv_width + kv_head * head_dim + d), acc);
        }
        out[d] = acc;
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

// grid: x = rows · heads. Merges the key blocks of one (row, head) in block order.
extern "C" __global__ void __launch_bounds__(ATTENTION_THREADS) attention_combine(
    const float* partials, const int* positions, float* output, int heads, int head_dim, int max_blocks)
{
    int item = blockIdx.x, row = item / heads;
    int blocks = positions[row] / ATTENTION_BLOCK_KEYS + 1;
    const float* base = partials + (long long)item * max_blocks * (head_dim + 2);
    float maximum = negative_infinity();
    for (int b = 0; b < blocks; b++) maximum = fmaxf(maximum, base[b * (head_dim + 2) + head_dim]);
    float total = 0.0f;
    for (int b = 0; b < blocks; b++)
    {
        const float* block = base + b * (head_dim + 2);
        total = fmaf(expf(block[head_dim] - maximum), block[head_dim + 1], total);
    }
    for (int d = threadIdx.x; d < head_dim; d += blockDim.x)
    {
        float acc = 0.0f;
        for (int b = 0; b < blocks; b++)
        {
            const float* block = base + b * (head_dim + 2);
            acc = fmaf(expf(block[head_dim] - maximum), block[d], acc);
        }
        output[(long long)item * head_dim + d] = acc / total;
    }
}
