// Causal attention over the KV cache (F16 or F32) with grouped KV heads, split along the keys (flash-decoding style).
//
// Keys are cut into blocks of ATTENTION_BLOCK_KEYS by ABSOLUTE (logical) key position. attention_partial computes, for one
// (query row, head, key block), the block's max score, exp-sum and unnormalized value sum; attention_combine merges the
// blocks in block order. Both orders depend only on the key positions, so a query gets the same bits whether it is
// verified alone or with other rows.
//
// Row groups: a block serves up to ATTENTION_ROWS rows of one sequence (rows of several sequences are grouped by sequence),
// so each key and value is loaded once for all of them; from ATTENTION_STAGE_MIN_ROWS rows on, a block's keys and values are
// copied into shared memory in one round trip before use. A key block that every row of the group sees whole, at the keys'
// own slots (all but the last blocks of a pass), runs loops without per-row slot and count checks.
//
// Token trees: the key j positions before a query row (j < window; j = 0 is the row itself) is read from slot
// recent_slots[row · window + j] — the row's path through the tree — so a tree node sees exactly the keys of its own
// path, in the same order and blocking as a plain decode of that path. Keys further back, and every key when window = 0,
// sit at their own position — after the first slot of the row's sequence (sequences[row] · capacity) when several
// sequences share the cache and one launch (batched decoding); sequences = null means sequence 0 for every row.
#include "common.cuh"

// The launcher (AttentionLauncher, src/Kangaroo.Backends.Cuda/Launchers) owns these and passes them as -D defines: its
// grids, its scratch sizes and its argument checks depend on them. Threads per block; keys per key block; the widest head;
// query rows per block of the batch kernels ("_r1", "_r2", "_r4" take up to 1, 2, 4); key blocks attention_combine merges;
// the fewest rows per block whose kernel stages its keys and values in shared memory, and the most bytes it stages.
#ifndef ATTENTION_THREADS
#error "ATTENTION_THREADS must be defined by the launcher"
#endif
#ifndef ATTENTION_BLOCK_KEYS
#error "ATTENTION_BLOCK_KEYS must be defined by the launcher"
#endif
#ifndef ATTENTION_MAX_HEAD_DIM
#error "ATTENTION_MAX_HEAD_DIM must be defined by the launcher"
#endif
#ifndef ATTENTION_ROWS
#error "ATTENTION_ROWS must be defined by the launcher"
#endif
#ifndef ATTENTION_MAX_BLOCKS_COMBINED
#error "ATTENTION_MAX_BLOCKS_COMBINED must be defined by the launcher"
#endif
#ifndef ATTENTION_STAGE_MIN_ROWS
#error "ATTENTION_STAGE_MIN_ROWS must be defined by the launcher"
#endif
#ifndef ATTENTION_STAGE_MAX_BYTES
#error "ATTENTION_STAGE_MAX_BYTES must be defined by the launcher"
#endif
#if ATTENTION_MAX_HEAD_DIM > 2 * 4 * WARP_SIZE
#error "the _wide kernels hold heads of up to 2 * 4 * WARP_SIZE = 256 elements (DIM_STEPS = 2)"
#endif
#define ATTENTION_WARPS (ATTENTION_THREADS / WARP_SIZE)
#define ATTENTION_KEYS_PER_WARP (ATTENTION_BLOCK_KEYS / ATTENTION_WARPS)
// Each lane owns head-dimension elements lane·4 + 128·t (t < DIM_STEPS): 4 consecutive elements per load. DIM_STEPS is
// 1 for heads up to 128 wide (Llama's) and 2 up to ATTENTION_MAX_HEAD_DIM: the "_wide" kernels. Register arrays are sized
// by it, so narrow heads do not pay for wide ones.

__device__ __forceinline__ int key_slot(int key, int position, const int* recent_slots, int row, int window, int first_slot)
{
    int back = position - key;
    return back < window ? recent_slots[row * window + back] : first_slot + key;
}

// The lane's slice of one cached head vector (elements lane·4 + 128·t + e) as F32; zeros when absent or past head_dim.
__device__ __forceinline__ void load4(const half_bits* p, float* out)
{
    u32x2 v = *(const u32x2*)p;
    out[0] = f16_to_f32((half_bits)(v.x & 0xffffu)); out[1] = f16_to_f32((half_bits)(v.x >> 16));
    out[2] = f16_to_f32((half_bits)(v.y & 0xffffu)); out[3] = f16_to_f32((half_bits)(v.y >> 16));
}
__device__ __forceinline__ void load4(const float* p, float* out)
{
    f32x4 v = *(const f32x4*)p;
    out[0] = v.x; out[1] = v.y; out[2] = v.z; out[3] = v.w;
}

// counts[r] for a thread-dependent r without indexing the register array (which would move it to local memory).
template <int N>
__device__ __forceinline__ int counts_of(const int (&counts)[N], int r)
{
    int value = 0;
#pragma unroll
    for (int i = 0; i < N; i++)
        if (i == r) value = counts[i];
    return value;
}

// The warp sums of ROWS values per lane, lane l ending with row l / (32 / ROWS)'s: halves of the rows are exchanged at
// offsets 16, 8, … until one row is left per lane, then a butterfly over the rest. Every row's sum is the same tree as
// warp_sum's (pairs at offset 16 first, then 8, 4, 2, 1; each addition commutative), so it has warp_sum's bits, for
// log2(ROWS) + … fewer shuffles: 9 instead of 40 for 8 rows.
// One exchange of warp_sums_scattered: lanes with `offset` set keep the upper HALF of their rows, the others the lower,
// each adding its partner's copy of the rows it keeps.
template <int HALF, int ROWS>
__device__ __forceinline__ void exchange_rows(float (&v)[ROWS], int lane, int offset)
{
    bool upper = (lane & offset) != 0;
#pragma unroll
    for (int i = 0; i < HALF; i++)
    {
        float send = upper ? v[i] : v[i + HALF], keep = upper ? v[i + HALF] : v[i];
        v[i] = keep + __shfl_xor_sync(FULL_MASK, send, offset);
    }
}

// The warp sums of ROWS (1, 2, 4 or 8) values per lane, lane l ending with row l / (32 / ROWS)'s: halves of the rows are
// exchanged at offsets 16, 8, 4 until one row is left per lane, then a butterfly over the remaining offsets. Every row's
// sum is then the same tree as warp_sum's (pairs at offset 16 first, then 8, 4, 2, 1; each addition commutative), so it
// has warp_sum's bits, for 9 shuffles instead of 40 at 8 rows.
template <int ROWS>
__device__ __forceinline__ float warp_sums_scattered(float (&v)[ROWS], int lane)
{
    static_assert(ROWS == 1 || ROWS == 2 || ROWS == 4 || ROWS == 8, "1, 2, 4 or 8 rows");
    if constexpr (ROWS >= 2) exchange_rows<ROWS / 2>(v, lane, 16);
    if constexpr (ROWS >= 4) exchange_rows<ROWS / 4>(v, lane, 8);
    if constexpr (ROWS >= 8) exchange_rows<ROWS / 8>(v, lane, 4);
    float sum = v[0];
#pragma unroll
    for (int offset = WARP_SIZE / 2 / ROWS; offset > 0; offset >>= 1) sum += __shfl_xor_sync(FULL_MASK, sum, offset);
    return sum;
}

template <typename KV, int DIM_STEPS>
__device__ __forceinline__ void load_head_slice(const KV* cache, long long offset, int head_dim, int lane, bool vectorized,
                                                float (&out)[DIM_STEPS][4])
{
    const KV* head = cache + offset;
#pragma unroll
    for (int t = 0; t < DIM_STEPS; t++)
    {
        int d0 = lane * 4 + t * WARP_SIZE * 4;
#pragma unroll
        for (int e = 0; e < 4; e++) out[t][e] = 0.0f;
        if (vectorized)
        {
            if (d0 < head_dim) load4(head + d0, out[t]);
        }
        else
        {
#pragma unroll
            for (int e = 0; e < 4; e++)
                if (d0 + e < head_dim) out[t][e] = load_f32(head, d0 + e);
        }
    }
}

// Rows of several sequences (batched verification) are grouped by sequence, so a block's rows share its keys: group g is
// the g-th run of consecutive rows of one sequence, runs cut every max_rows rows. Returns the group's first row and sets
// its row count, 0 where there are fewer groups (the launch covers one group per row, however the rows fall).
__device__ __forceinline__ int sequence_row_group(const int* sequences, int rows, int group, int max_rows, int& count)
{
    int index = -1, start = 0;
    for (int r = 0; r < rows; r++)
    {
        if (r > 0 && sequences[r] == sequences[r - 1] && r - start < max_rows) continue;
        if (index == group) { count = r - start; return start; }
        index++;
        start = r;
    }
    count = index == group ? rows - start : 0;
    return start;
}

// grid: x = row groups · heads (one per row for batches of several sequences), y = key blocks;
// partials: [rows·heads][max_blocks][head_dim + 2].
// A block serves up to ATTENTION_ROWS query rows of one head (verification batches): each key and value is loaded once and
// used for every row that sees it. Per row, the operations are those of that row alone, in an order fixed by key positions:
// scores — each warp takes ATTENTION_KEYS_PER_WARP consecutive keys, a lane its head elements in order, a butterfly sums;
// softmax — warp-level max, then each lane sums p over keys lane, lane + 32, … in order and a butterfly sums the lanes; values — each warp accumulates
// its keys' weighted values in key order, then warps are added in warp order. So a row gets the same bits alone or batched.
template <typename KV, int DIM_STEPS, int ROWS>
__device__ __forceinline__ void attention_partial_impl(
    const float* queries, const KV* key_cache, const KV* value_cache, const int* positions,
    const int* recent_slots, int window, const int* sequences, int capacity, float* partials,
    int rows, int heads, int kv_heads, int head_dim, int kv_width, long long layer_offset, float scale, int max_blocks)
{
    constexpr int HEAD_STRIDE = DIM_STEPS * WARP_SIZE * 4;   // elements per staged key or value, and per warp-value row
    constexpr int STAGE_BYTES = 2 * ATTENTION_BLOCK_KEYS * HEAD_STRIDE * (int)sizeof(KV);
    constexpr bool CAN_STAGE = ROWS >= ATTENTION_STAGE_MIN_ROWS && STAGE_BYTES <= ATTENTION_STAGE_MAX_BYTES;
    constexpr int WARP_VALUE_BYTES = ATTENTION_WARPS * ROWS * HEAD_STRIDE * (int)sizeof(float);
    __shared__ float scores[ROWS][ATTENTION_BLOCK_KEYS];
    // The staged keys and values, then (once every warp is done with them) the warps' value sums: one region for both.
    __shared__ __attribute__((aligned(16))) unsigned char shared_region[CAN_STAGE && STAGE_BYTES > WARP_VALUE_BYTES ? STAGE_BYTES : WARP_VALUE_BYTES];
    float (*warp_values)[ROWS][HEAD_STRIDE] = reinterpret_cast<float (*)[ROWS][HEAD_STRIDE]>(shared_region);
    const KV* staged_keys = reinterpret_cast<const KV*>(shared_region);
    const KV* staged_values = staged_keys + ATTENTION_BLOCK_KEYS * HEAD_STRIDE;

    int group = blockIdx.x / heads, head = blockIdx.x % heads, block = blockIdx.y;
    int kv_head = head / (heads / kv_heads);
    int row0, group_rows;
    if (ROWS > 1 && sequences != nullptr) row0 = sequence_row_group(sequences, rows, group, ROWS, group_rows);
    else { row0 = group * ROWS; group_rows = min(ROWS, rows - row0); }
    int first = block * ATTENTION_BLOCK_KEYS;
    int counts[ROWS];        // keys of this block each row sees (causal), 0 for absent rows
    int first_slots[ROWS];   // slot of each row's position 0: its sequence's first
    int row_positions[ROWS]; // loaded once: the key loops look each row's slots up from them
    int max_count = 0;
#pragma unroll
    for (int r = 0; r < ROWS; r++)
    {
        row_positions[r] = r < group_rows ? positions[row0 + r] : 0;
        counts[r] = r < group_rows ? max(0, min(ATTENTION_BLOCK_KEYS, row_positions[r] + 1 - first)) : 0;
        first_slots[r] = sequences != nullptr && r < group_rows ? sequences[row0 + r] * capacity : 0;
        max_count = max(max_count, counts[r]);
    }
    if (max_count == 0) return;   // whole block leaves: no row reaches these keys
    // A block every row sees whole, at the keys' own slots (older than every row's window of recent slots, one sequence):
    // all but the last blocks of a pass. Its loops skip the per-row, per-key slot and count checks; each row's operations
    // and their order are those of the general loops, so the bits are the same.
    bool uniform = true;
#pragma unroll
    for (int r = 0; r < ROWS; r++)
        if (r < group_rows && (first + ATTENTION_BLOCK_KEYS - 1 > row_positions[r] - window || first_slots[r] != first_slots[0])) uniform = false;
    int lane = threadIdx.x % WARP_SIZE, warp = threadIdx.x / WARP_SIZE;

    float q[ROWS][DIM_STEPS][4];
#pragma unroll
    for (int r = 0; r < ROWS; r++)
#pragma unroll
        for (int t = 0; t < DIM_STEPS; t++)
#pragma unroll
            for (int e = 0; e < 4; e++)
            {
                int d = lane * 4 + t * WARP_SIZE * 4 + e;
                q[r][t][e] = r < group_rows && d < head_dim ? queries[((long long)(row0 + r) * heads + head) * head_dim + d] : 0.0f;
            }

    long long head_offset = layer_offset + (long long)kv_head * head_dim;
    int warp_first = warp * ATTENTION_KEYS_PER_WARP;
    bool vectorized = head_dim % 4 == 0;   // then every lane's 4 elements are one aligned 8- or 16-byte load

    // Staging: the block's keys and values at their own positions in the first row's sequence, copied into shared memory
    // in one round trip (cp.async, no registers held) before any is used, instead of a trip per key pair and another for
    // the values. A row reads a key from the stage only where its slot is the staged one (token-tree rows may map recent
    // positions elsewhere, other sequences start elsewhere); the values are the same either way, so are the bits.
    constexpr int VECTOR_ELEMENTS = 16 / (int)sizeof(KV);
    bool staged = CAN_STAGE && head_dim % VECTOR_ELEMENTS == 0;
    int staged_first_slot = first_slots[0] + first;
    if (staged)
    {
        int vectors_per_key = head_dim / VECTOR_ELEMENTS;
        for (int c = threadIdx.x; c < 2 * max_count * vectors_per_key; c += blockDim.x)
        {
            int which = c / (max_count * vectors_per_key), rest = c % (max_count * vectors_per_key);
            int j = rest / vectors_per_key, part = rest % vectors_per_key;
            const KV* src = (which == 0 ? key_cache : value_cache) + head_offset + (long long)(staged_first_slot + j) * kv_width
                            + part * VECTOR_ELEMENTS;
            copy_async16((u32x4*)(shared_region + ((which * ATTENTION_BLOCK_KEYS + j) * HEAD_STRIDE + part * VECTOR_ELEMENTS) * sizeof(KV)), src);
        }
        copy_async_commit();
        copy_async_wait<0>();
        __syncthreads();
    }
    // One row: the whole key loop unrolled, so all of the warp's key loads are in flight at once. Row groups: 2 keys at a
    // time (registers). Either way each row's operations and their order are the same.
    constexpr int KEY_UNROLL = ROWS == 1 ? ATTENTION_KEYS_PER_WARP : 2;
    const KV* uniform_keys = key_cache + head_offset + (long long)(first_slots[0] + first) * kv_width;
    const KV* uniform_values = value_cache + head_offset + (long long)(first_slots[0] + first) * kv_width;
    if (uniform)
    {
        // Rows absent from the group (r ≥ group_rows) compute with zero queries into score and value slots nobody reads.
#pragma unroll KEY_UNROLL
        for (int i = 0; i < ATTENTION_KEYS_PER_WARP; i++)
        {
            int j = warp_first + i;
            float k[DIM_STEPS][4];
            if (staged) load_head_slice<KV, DIM_STEPS>(staged_keys, (long long)j * HEAD_STRIDE, head_dim, lane, vectorized, k);
            else load_head_slice<KV, DIM_STEPS>(uniform_keys, (long long)j * kv_width, head_dim, lane, vectorized, k);
            float dots[ROWS];
#pragma unroll
            for (int r = 0; r < ROWS; r++)
            {
                dots[r] = 0.0f;
#pragma unroll
                for (int t = 0; t < DIM_STEPS; t++)
#pragma unroll
                    for (int e = 0; e < 4; e++)
                    {
                        int d = lane * 4 + t * WARP_SIZE * 4 + e;
                        if (d < head_dim) dots[r] = fmaf(q[r][t][e], k[t][e], dots[r]);
                    }
            }
            float dot = warp_sums_scattered<ROWS>(dots, lane);
            if (lane % (WARP_SIZE / ROWS) == 0) scores[lane / (WARP_SIZE / ROWS)][j] = dot * scale;
        }
    }
    else
    {
        for (int i0 = 0; i0 < ATTENTION_KEYS_PER_WARP; i0 += KEY_UNROLL)
        {
            if (warp_first + i0 >= max_count) break;   // uniform across the warp
#pragma unroll
            for (int u = 0; u < KEY_UNROLL; u++)
            {
                int j = warp_first + i0 + u;
                if (j >= max_count) continue;
                // Rows share a key unless token-tree rows map this position to different slots: reload only when the slot changes.
                // Each row's lane-partial dot first, then all rows' warp sums at once (warp_sums_scattered: warp_sum's bits).
                float k[DIM_STEPS][4];
                float dots[ROWS];
                int loaded = -1;
#pragma unroll
                for (int r = 0; r < ROWS; r++)
                {
                    dots[r] = 0.0f;
                    if (j < counts[r])
                    {
                        int slot = key_slot(first + j, row_positions[r], recent_slots, row0 + r, window, first_slots[r]);
                        if (slot != loaded)
                        {
                            if (staged && slot == staged_first_slot + j)
                                load_head_slice<KV, DIM_STEPS>(staged_keys, (long long)j * HEAD_STRIDE, head_dim, lane, vectorized, k);
                            else
                                load_head_slice<KV, DIM_STEPS>(key_cache, head_offset + (long long)slot * kv_width, head_dim, lane, vectorized, k);
                            loaded = slot;
                        }
#pragma unroll
                        for (int t = 0; t < DIM_STEPS; t++)
#pragma unroll
                            for (int e = 0; e < 4; e++)
                            {
                                int d = lane * 4 + t * WARP_SIZE * 4 + e;
                                if (d < head_dim) dots[r] = fmaf(q[r][t][e], k[t][e], dots[r]);
                            }
                    }
                }
                float dot = warp_sums_scattered<ROWS>(dots, lane);
                int row = lane / (WARP_SIZE / ROWS);
                if (lane % (WARP_SIZE / ROWS) == 0 && j < counts_of(counts, row)) scores[row][j] = dot * scale;
            }
        }
    }
    __syncthreads();

    // Softmax within the block, one warp per row (rows w, w + 4, ...): the block's max and exp-sum, scores → weights.
    __shared__ float row_max[ROWS], row_total[ROWS];
    for (int r = warp; r < group_rows; r += ATTENTION_WARPS)
    {
        int count = counts_of(counts, r);
        if (count == 0) continue;
        float m = negative_infinity();
        for (int c = lane; c < count; c += WARP_SIZE) m = fmaxf(m, scores[r][c]);
        m = warp_max(m);
        float lane_total = 0.0f;
        for (int c = lane; c < count; c += WARP_SIZE)
        {
            float p = expf(scores[r][c] - m);
            scores[r][c] = p;
            lane_total += p;
        }
        float total = warp_sum(lane_total);
        if (lane == 0) { row_max[r] = m; row_total[r] = total; }
    }
    __syncthreads();

    float acc[ROWS][DIM_STEPS][4];
#pragma unroll
    for (int r = 0; r < ROWS; r++)
#pragma unroll
        for (int t = 0; t < DIM_STEPS; t++)
#pragma unroll
            for (int e = 0; e < 4; e++) acc[r][t][e] = 0.0f;
    if (uniform)
    {
#pragma unroll KEY_UNROLL
        for (int i = 0; i < ATTENTION_KEYS_PER_WARP; i++)
        {
            int j = warp_first + i;
            float v[DIM_STEPS][4];
            if (staged) load_head_slice<KV, DIM_STEPS>(staged_values, (long long)j * HEAD_STRIDE, head_dim, lane, vectorized, v);
            else load_head_slice<KV, DIM_STEPS>(uniform_values, (long long)j * kv_width, head_dim, lane, vectorized, v);
#pragma unroll
            for (int r = 0; r < ROWS; r++)
            {
                float weight = scores[r][j];
#pragma unroll
                for (int t = 0; t < DIM_STEPS; t++)
#pragma unroll
                    for (int e = 0; e < 4; e++) acc[r][t][e] = fmaf(weight, v[t][e], acc[r][t][e]);
            }
        }
    }
    else
    {
        for (int i0 = 0; i0 < ATTENTION_KEYS_PER_WARP; i0 += KEY_UNROLL)
        {
            if (warp_first + i0 >= max_count) break;
#pragma unroll
            for (int u = 0; u < KEY_UNROLL; u++)
            {
                int j = warp_first + i0 + u;
                if (j >= max_count) continue;
                float v[DIM_STEPS][4];
                int loaded = -1;
#pragma unroll
                for (int r = 0; r < ROWS; r++)
                {
                    if (j < counts[r])
                    {
                        int slot = key_slot(first + j, row_positions[r], recent_slots, row0 + r, window, first_slots[r]);
                        if (slot != loaded)
                        {
                            if (staged && slot == staged_first_slot + j)
                                load_head_slice<KV, DIM_STEPS>(staged_values, (long long)j * HEAD_STRIDE, head_dim, lane, vectorized, v);
                            else
                                load_head_slice<KV, DIM_STEPS>(value_cache, head_offset + (long long)slot * kv_width, head_dim, lane, vectorized, v);
                            loaded = slot;
                        }
                        float weight = scores[r][j];
#pragma unroll
                        for (int t = 0; t < DIM_STEPS; t++)
#pragma unroll
                            for (int e = 0; e < 4; e++) acc[r][t][e] = fmaf(weight, v[t][e], acc[r][t][e]);
                    }
                }
            }
        }
    }
    if (CAN_STAGE) __syncthreads();   // the warp sums overwrite the staged values
#pragma unroll
    for (int r = 0; r < ROWS; r++)
#pragma unroll
        for (int t = 0; t < DIM_STEPS; t++)
#pragma unroll
            for (int e = 0; e < 4; e++) warp_values[warp][r][lane * 4 + t * WARP_SIZE * 4 + e] = acc[r][t][e];
    __syncthreads();

    for (int index = threadIdx.x; index < group_rows * head_dim; index += blockDim.x)
    {
        int r = index / head_dim, d = index % head_dim;
        if (counts_of(counts, r) == 0) continue;
        float total = warp_values[0][r][d];
#pragma unroll
        for (int w = 1; w < ATTENTION_WARPS; w++) total += warp_values[w][r][d];
        float* out = partials + (((long long)(row0 + r) * heads + head) * max_blocks + block) * (head_dim + 2);
        out[d] = total;
        if (d == 0)
        {
            out[head_dim] = row_max[r];
            out[head_dim + 1] = row_total[r];
        }
    }
}

#define ATTENTION_PARTIAL_PARAMETERS(KV) \
    const float* queries, const KV* key_cache, const KV* value_cache, const int* positions, \
    const int* recent_slots, int window, const int* sequences, int capacity, float* partials, int rows, int heads, int kv_heads, \
    int head_dim, int kv_width, long long layer_offset, float scale, int max_blocks
#define ATTENTION_PARTIAL_ARGUMENTS \
    queries, key_cache, value_cache, positions, recent_slots, window, sequences, capacity, partials, rows, heads, kv_heads, \
    head_dim, kv_width, layer_offset, scale, max_blocks

// Entry points: KV type × head width (≤ 128, ≤ 256: _wide) × rows per block (8; or 1, 2, 4 for smaller batches, so a
// verification of a few tokens does not pay for eight rows' registers and loops).
extern "C" __global__ void __launch_bounds__(ATTENTION_THREADS) attention_partial_f16(ATTENTION_PARTIAL_PARAMETERS(half_bits)) { attention_partial_impl<half_bits, 1, ATTENTION_ROWS>(ATTENTION_PARTIAL_ARGUMENTS); }
extern "C" __global__ void __launch_bounds__(ATTENTION_THREADS) attention_partial_f16_r1(ATTENTION_PARTIAL_PARAMETERS(half_bits)) { attention_partial_impl<half_bits, 1, 1>(ATTENTION_PARTIAL_ARGUMENTS); }
extern "C" __global__ void __launch_bounds__(ATTENTION_THREADS) attention_partial_f16_r2(ATTENTION_PARTIAL_PARAMETERS(half_bits)) { attention_partial_impl<half_bits, 1, 2>(ATTENTION_PARTIAL_ARGUMENTS); }
extern "C" __global__ void __launch_bounds__(ATTENTION_THREADS) attention_partial_f16_r4(ATTENTION_PARTIAL_PARAMETERS(half_bits)) { attention_partial_impl<half_bits, 1, 4>(ATTENTION_PARTIAL_ARGUMENTS); }
extern "C" __global__ void __launch_bounds__(ATTENTION_THREADS) attention_partial_f16_wide(ATTENTION_PARTIAL_PARAMETERS(half_bits)) { attention_partial_impl<half_bits, 2, ATTENTION_ROWS>(ATTENTION_PARTIAL_ARGUMENTS); }
extern "C" __global__ void __launch_bounds__(ATTENTION_THREADS) attention_partial_f16_wide_r1(ATTENTION_PARTIAL_PARAMETERS(half_bits)) { attention_partial_impl<half_bits, 2, 1>(ATTENTION_PARTIAL_ARGUMENTS); }
extern "C" __global__ void __launch_bounds__(ATTENTION_THREADS) attention_partial_f16_wide_r2(ATTENTION_PARTIAL_PARAMETERS(half_bits)) { attention_partial_impl<half_bits, 2, 2>(ATTENTION_PARTIAL_ARGUMENTS); }
extern "C" __global__ void __launch_bounds__(ATTENTION_THREADS) attention_partial_f16_wide_r4(ATTENTION_PARTIAL_PARAMETERS(half_bits)) { attention_partial_impl<half_bits, 2, 4>(ATTENTION_PARTIAL_ARGUMENTS); }
extern "C" __global__ void __launch_bounds__(ATTENTION_THREADS) attention_partial_f32(ATTENTION_PARTIAL_PARAMETERS(float)) { attention_partial_impl<float, 1, ATTENTION_ROWS>(ATTENTION_PARTIAL_ARGUMENTS); }
extern "C" __global__ void __launch_bounds__(ATTENTION_THREADS) attention_partial_f32_r1(ATTENTION_PARTIAL_PARAMETERS(float)) { attention_partial_impl<float, 1, 1>(ATTENTION_PARTIAL_ARGUMENTS); }
extern "C" __global__ void __launch_bounds__(ATTENTION_THREADS) attention_partial_f32_r2(ATTENTION_PARTIAL_PARAMETERS(float)) { attention_partial_impl<float, 1, 2>(ATTENTION_PARTIAL_ARGUMENTS); }
extern "C" __global__ void __launch_bounds__(ATTENTION_THREADS) attention_partial_f32_r4(ATTENTION_PARTIAL_PARAMETERS(float)) { attention_partial_impl<float, 1, 4>(ATTENTION_PARTIAL_ARGUMENTS); }
extern "C" __global__ void __launch_bounds__(ATTENTION_THREADS) attention_partial_f32_wide(ATTENTION_PARTIAL_PARAMETERS(float)) { attention_partial_impl<float, 2, ATTENTION_ROWS>(ATTENTION_PARTIAL_ARGUMENTS); }
extern "C" __global__ void __launch_bounds__(ATTENTION_THREADS) attention_partial_f32_wide_r1(ATTENTION_PARTIAL_PARAMETERS(float)) { attention_partial_impl<float, 2, 1>(ATTENTION_PARTIAL_ARGUMENTS); }
extern "C" __global__ void __launch_bounds__(ATTENTION_THREADS) attention_partial_f32_wide_r2(ATTENTION_PARTIAL_PARAMETERS(float)) { attention_partial_impl<float, 2, 2>(ATTENTION_PARTIAL_ARGUMENTS); }
extern "C" __global__ void __launch_bounds__(ATTENTION_THREADS) attention_partial_f32_wide_r4(ATTENTION_PARTIAL_PARAMETERS(float)) { attention_partial_impl<float, 2, 4>(ATTENTION_PARTIAL_ARGUMENTS); }

// grid: x = rows · heads. Merges the key blocks of one (row, head) in block order: block weights e^(m_b − M) computed in
// parallel, the exp-sum by a fixed-order block reduction, each output element by one thread over the blocks in order.
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
