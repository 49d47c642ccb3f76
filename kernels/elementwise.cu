// Embedding gather, SiLU·mul, rotary embedding and KV-cache stores. Each output element is computed by one thread from
// its own inputs only, so every row's bits are independent of the number of rows in the call.
#include "common.cuh"

template <typename T>
__device__ __forceinline__ void embed_impl(const T* table, const int* tokens, float* out, int rows, int width)
{
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)rows * width) return;
    int r = (int)(i / width), c = (int)(i % width);
    out[i] = load_f32(table, (long long)tokens[r] * width + c);
}

extern "C" __global__ void embed_f32(const float* table, const int* tokens, float* out, int rows, int width) { embed_impl(table, tokens, out, rows, width); }
extern "C" __global__ void embed_f16(const half_bits* table, const int* tokens, float* out, int rows, int width) { embed_impl(table, tokens, out, rows, width); }
extern "C" __global__ void embed_bf16(const bf16_bits* table, const int* tokens, float* out, int rows, int width) { embed_impl(table, tokens, out, rows, width); }

// values[r, c] += bias[c]: projection biases (Qwen2, Llama with attention_bias / mlp_bias). One thread per element.
template <typename T>
__device__ __forceinline__ void add_bias_impl(float* values, const T* bias, long long count, int width)
{
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= count) return;
    values[i] = values[i] + load_f32(bias, i % width);
}

extern "C" __global__ void add_bias_f32(float* values, const float* bias, long long count, int width) { add_bias_impl(values, bias, count, width); }
extern "C" __global__ void add_bias_f16(float* values, const half_bits* bias, long long count, int width) { add_bias_impl(values, bias, count, width); }
extern "C" __global__ void add_bias_bf16(float* values, const bf16_bits* bias, long long count, int width) { add_bias_impl(values, bias, count, width); }

// silu(g) · u = g / (1 + e^−g) · u, as the CPU backend computes it.
extern "C" __global__ void silu_mul(const float* gate, const float* up, float* out, int count)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= count) return;
    float g = gate[i];
    out[i] = g / (1.0f + expf(-g)) * up[i];
}

// Hugging Face rotate_half convention: element i pairs with i + headDim/2; angle = position · inv_freq[i] in F32.
// One thread per (row, head, pair).
extern "C" __global__ void rope(float* x, const int* positions, const float* inverse_frequencies, int rows, int heads, int head_dim)
{
    int half = head_dim / 2;
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)rows * heads * half) return;
    int pair = (int)(i % half);
    long long row_head = i / half;
    int r = (int)(row_head / heads);
    float angle = (float)positions[r] * inverse_frequencies[pair];
    float s, c;
    sincosf(angle, &s, &c);
    float* v = x + row_head * head_dim;
    float a = v[pair], b = v[pair + half];
    v[pair] = a * c - b * s;
    v[pair + half] = b * c + a * s;
}

// Writes row r of keys/values ([rows, kv_width] F32) into slot slots[r] of one layer of the cache
// ([layers][capacity][kv_width] for keys and for values), stored as F16 or F32.
template <typename KV>
__device__ __forceinline__ void store_kv_impl(KV* key_cache, KV* value_cache, const float* keys, const float* values,
                                              const int* slots, int rows, int kv_width, long long layer_offset)
{
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)rows * kv_width) return;
    int r = (int)(i / kv_width), c = (int)(i % kv_width);
    long long at = layer_offset + (long long)slots[r] * kv_width + c;
    store_from_f32(key_cache, at, keys[i]);
    store_from_f32(value_cache, at, values[i]);
}

extern "C" __global__ void store_kv_f16(half_bits* kc, half_bits* vc, const float* k, const float* v, const int* slots, int rows, int kv_width, long long layer_offset)
{
    store_kv_impl(kc, vc, k, v, slots, rows, kv_width, layer_offset);
}

extern "C" __global__ void store_kv_f32(float* kc, float* vc, const float* k, const float* v, const int* slots, int rows, int kv_width, long long layer_offset)
{
    store_kv_impl(kc, vc, k, v, slots, rows, kv_width, layer_offset);
}

// Moves cache slot moves[i] to slot moves[count + i] for i = 0, 1, … in order, in every layer (a token tree's accepted
// path packed into consecutive positions). One block per layer; the moves run one after another, a barrier between them:
// with destinations ascending and never past their source, no move reads a slot that an earlier one has written.
template <typename KV>
__device__ __forceinline__ void kv_move_slots_impl(KV* kc, KV* vc, const int* moves, int count, int kv_width, long long layer_stride)
{
    long long layer = (long long)blockIdx.x * layer_stride;
    for (int i = 0; i < count; i++)
    {
        long long source = layer + (long long)moves[i] * kv_width, target = layer + (long long)moves[count + i] * kv_width;
        if (source != target)
            for (int e = threadIdx.x; e < kv_width; e += blockDim.x)
            {
                kc[target + e] = kc[source + e];
                vc[target + e] = vc[source + e];
            }
        __syncthreads();
    }
}

extern "C" __global__ void kv_move_slots_f16(half_bits* kc, half_bits* vc, const int* moves, int count, int kv_width, long long layer_stride)
{
    kv_move_slots_impl(kc, vc, moves, count, kv_width, layer_stride);
}

extern "C" __global__ void kv_move_slots_f32(float* kc, float* vc, const int* moves, int count, int kv_width, long long layer_stride)
{
    kv_move_slots_impl(kc, vc, moves, count, kv_width, layer_stride);
}

// dst[dst_rows[i], :] = src[src_rows[i], :] for i < rows (rows of width values): a scheduler's gather/scatter of states.
extern "C" __global__ void copy_rows(const float* src, const int* src_rows, float* dst, const int* dst_rows, int rows, int width)
{
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)rows * width) return;
    int r = (int)(i / width), c = (int)(i % width);
    dst[(long long)dst_rows[r] * width + c] = src[(long long)src_rows[r] * width + c];
}

// rope(queries), rope(keys), store_kv(keys, values) in one launch, each element computed exactly as those kernels do.
// One thread per (row, item); a row's items are its query pairs, then its key pairs, then its value elements.
template <typename KV>
__device__ __forceinline__ void rope_store_kv_impl(float* queries, float* keys, const float* values, const int* positions,
                                                   const float* inverse_frequencies, KV* key_cache, KV* value_cache,
                                                   const int* slots, int rows, int heads, int kv_heads, int head_dim,
                                                   long long layer_offset)
{
    int half = head_dim / 2, kv_width = kv_heads * head_dim;
    int query_pairs = heads * half, key_pairs = kv_heads * half;
    int per_row = query_pairs + key_pairs + kv_width;
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)rows * per_row) return;
    int r = (int)(i / per_row), item = (int)(i % per_row);
    long long cache_row = layer_offset + (long long)slots[r] * kv_width;
    if (item < query_pairs + key_pairs)
    {
        bool is_key = item >= query_pairs;
        int local = is_key ? item - query_pairs : item;
        int head = local / half, pair = local % half;
        float angle = (float)positions[r] * inverse_frequencies[pair];
        float s, c;
        sincosf(angle, &s, &c);
        float* v = (is_key ? keys + (long long)r * kv_width : queries + (long long)r * heads * head_dim) + (long long)head * head_dim;
        float a = v[pair], b = v[pair + half];
        float rotated_a = a * c - b * s, rotated_b = b * c + a * s;
        v[pair] = rotated_a;
        v[pair + half] = rotated_b;
        if (is_key)
        {
            store_from_f32(key_cache, cache_row + (long long)head * head_dim + pair, rotated_a);
            store_from_f32(key_cache, cache_row + (long long)head * head_dim + pair + half, rotated_b);
        }
    }
    else
    {
        int c = item - query_pairs - key_pairs;
        store_from_f32(value_cache, cache_row + c, values[(long long)r * kv_width + c]);
    }
}

extern "C" __global__ void rope_store_kv_f16(float* q, float* k, const float* v, const int* positions, const float* inverse_frequencies,
    half_bits* kc, half_bits* vc, const int* slots, int rows, int heads, int kv_heads, int head_dim, long long layer_offset)
{
    rope_store_kv_impl(q, k, v, positions, inverse_frequencies, kc, vc, slots, rows, heads, kv_heads, head_dim, layer_offset);
}

extern "C" __global__ void rope_store_kv_f32(float* q, float* k, const float* v, const int* positions, const float* inverse_frequencies,
    float* kc, float* vc, const int* slots, int rows, int heads, int kv_heads, int head_dim, long long layer_offset)
{
    rope_store_kv_impl(q, k, v, positions, inverse_frequencies, kc, vc, slots, rows, heads, kv_heads, head_dim, layer_offset);
}

// Read-bandwidth probe: sums a large buffer (16-byte loads, grid-stride), one partial sum per warp. Only the bytes read
// matter; the sums are written so that the loads cannot be optimized away.
extern "C" __global__ void read_sum(const f32x4* data, long long vectors, float* partials)
{
    float sum = 0.0f;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < vectors; i += (long long)gridDim.x * blockDim.x)
    {
        f32x4 v = data[i];
        sum += (v.x + v.y) + (v.z + v.w);
    }
    sum = warp_sum(sum);
    if (threadIdx.x % WARP_SIZE == 0) partials[((long long)blockIdx.x * blockDim.x + threadIdx.x) / WARP_SIZE] = sum;
}
