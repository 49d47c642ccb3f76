// y[r, o] = Σ_i x[r, i] · W[o, i] for any number of rows (decode: 1, verification: 2–64, prefill chunks); W in F32, F16
// or BF16, accumulated in F32. Two entry families, each with a one-row variant (*_r1) for decode steps:
//   matmul_*       up to three weight matrices that share x (q/k/v), each into its own output, in one launch;
//   matmul_silu_*  gate and up together, writing silu(gate) · up (the MLP's first half) without storing either.
//
// Weights stream once per tile of ROW_TILE input rows with 16-byte loads, so verifying up to ROW_TILE tokens reads them
// once. Explicit fmaf everywhere leaves the compiler no contraction choices: a row's bits depend on its own inputs only.
#include "common.cuh"

// Threads per block and weight rows per block tile (FEATURES for batches, FEATURES_R1 for one row): the launcher owns them
// (MatMulLauncher, src/Kangaroo.Backends.Cuda/Launchers) and passes them as -D defines, since its grid depends on them.
#ifndef MATMUL_THREADS
#error "MATMUL_THREADS must be defined by the launcher"
#endif
#ifndef FEATURES
#error "FEATURES must be defined by the launcher"
#endif
#ifndef FEATURES_R1
#error "FEATURES_R1 must be defined by the launcher"
#endif
#define MATMUL_WARPS (MATMUL_THREADS / WARP_SIZE)
// Tile width changes only which block computes a weight row, never the order of its sum, so the one-row and batch
// kernels may differ in it and still agree bit for bit.
#if FEATURES % 2 != 0 || FEATURES_R1 % 2 != 0
#error tile widths must be even: a matmul_silu tile holds half its width in gate rows and as many up rows
#endif
#ifndef K_UNROLL   // weight vectors per weight row loaded before any is used
#define K_UNROLL 1
#endif

template <typename W> struct WeightVector;

// Elements per 16-byte weight vector (the loads themselves are load_vector below).
template <> struct WeightVector<float> { static const int size = 4; };
template <> struct WeightVector<half_bits> { static const int size = 8; };
template <> struct WeightVector<bf16_bits> { static const int size = 8; };

__device__ __forceinline__ void unpack_halves(u32x4 v, float* out, bool bf16)
{
    unsigned int words[4] = { v.x, v.y, v.z, v.w };
#pragma unroll
    for (int i = 0; i < 4; i++)
    {
        unsigned short lo = (unsigned short)(words[i] & 0xffffu), hi = (unsigned short)(words[i] >> 16);
        out[2 * i] = bf16 ? bf16_to_f32(lo) : f16_to_f32(lo);
        out[2 * i + 1] = bf16 ? bf16_to_f32(hi) : f16_to_f32(hi);
    }
}

__device__ __forceinline__ u32x4 load_streaming(const void* p)
{
    u32x4 v;
    asm volatile("ld.global.nc.v4.u32 {%0, %1, %2, %3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
    return v;
}

template <typename W>
__device__ __forceinline__ void load_vector(const W* p, float* out);

template <> __device__ __forceinline__ void load_vector<float>(const float* p, float* out)
{
    u32x4 v = load_streaming(p);
    out[0] = bits_to_float(v.x); out[1] = bits_to_float(v.y); out[2] = bits_to_float(v.z); out[3] = bits_to_float(v.w);
}
template <> __device__ __forceinline__ void load_vector<half_bits>(const half_bits* p, float* out) { unpack_halves(load_streaming(p), out, false); }
template <> __device__ __forceinline__ void load_vector<bf16_bits>(const bf16_bits* p, float* out) { unpack_halves(load_streaming(p), out, true); }

// A block computes a tile of TILE_FEATURES weight rows over the whole input: thread t owns the 16-byte weight vectors
// t, t + MATMUL_THREADS, ... of each of those rows, so every x vector it loads serves TILE_FEATURES weight rows (x is re-read
// from L1 once per TILE_FEATURES rows instead of once per row), and TILE_FEATURES weight loads are in flight per step. Blocks loop
// over tiles (grid-stride), so the grid fits the GPU in one wave.
// Per (row, weight row) the sum is: each thread's own vectors in order, a warp butterfly, then the warps in order — all
// fixed by the number of columns, never by the row count or by which tile holds the weight row: row invariant, and the
// same bits in matmul and matmul_silu.
// ROW_TILE: input rows per pass over the weights. The one-row variant (decode steps) needs no accumulators for absent
// rows, so more blocks fit per multiprocessor; it performs exactly the same operations for its row.
//
// Tiles: matmul numbers the tiles of W0, then W1, then W2 (TILE_FEATURES rows of one matrix each); matmul_silu's tile f holds
// gate rows f·H … f·H + H − 1 and the same up rows (H = TILE_FEATURES / 2), and writes silu(gate) · up for those H features.
template <typename W, int ROW_TILE, int TILE_FEATURES, bool SILU>
__device__ __forceinline__ void matmul_impl(const float* __restrict__ x, int rows, int in,
                                            const W* w0, float* y0, int out0, const W* w1, float* y1, int out1,
                                            const W* w2, float* y2, int out2)
{
    const int VEC = WeightVector<W>::size;
    const int HALF = TILE_FEATURES / 2;
    __shared__ float partial[MATMUL_WARPS][ROW_TILE][TILE_FEATURES];
    int lane = threadIdx.x % WARP_SIZE, warp = threadIdx.x / WARP_SIZE;
    bool vectorized = in % VEC == 0;   // keeps every weight row and x row 16-byte aligned
    int tiles0 = SILU ? (out0 + HALF - 1) / HALF : (out0 + TILE_FEATURES - 1) / TILE_FEATURES;
    int tiles1 = SILU ? 0 : (out1 + TILE_FEATURES - 1) / TILE_FEATURES;
    int tiles2 = SILU ? 0 : (out2 + TILE_FEATURES - 1) / TILE_FEATURES;
    int tiles = tiles0 + tiles1 + tiles2;

    for (int tile = blockIdx.x; tile < tiles; tile += gridDim.x)
    {
        // This tile's weight rows (null where the matrix ends) and where its results go.
        const W* w_rows[TILE_FEATURES];
        float* y; int out, feature0;
        if (SILU)
        {
            feature0 = tile * HALF;
            y = y0; out = out0;
#pragma unroll
            for (int f = 0; f < HALF; f++)
            {
                bool present = feature0 + f < out0;
                w_rows[f] = present ? w0 + (long long)(feature0 + f) * in : 0;
                w_rows[HALF + f] = present ? w1 + (long long)(feature0 + f) * in : 0;
            }
        }
        else
        {
            const W* w;
            if (tile < tiles0) { w = w0; y = y0; out = out0; feature0 = tile * TILE_FEATURES; }
            else if (tile < tiles0 + tiles1) { w = w1; y = y1; out = out1; feature0 = (tile - tiles0) * TILE_FEATURES; }
            else { w = w2; y = y2; out = out2; feature0 = (tile - tiles0 - tiles1) * TILE_FEATURES; }
#pragma unroll
            for (int f = 0; f < TILE_FEATURES; f++) w_rows[f] = feature0 + f < out ? w + (long long)(feature0 + f) * in : 0;
        }

        for (int r0 = 0; r0 < rows; r0 += ROW_TILE)
        {
            int tile_rows = min(ROW_TILE, rows - r0);
            const float* x_tile = x + (long long)r0 * in;
            float acc[ROW_TILE][TILE_FEATURES];
#pragma unroll
            for (int r = 0; r < ROW_TILE; r++)
#pragma unroll
                for (int f = 0; f < TILE_FEATURES; f++) acc[r][f] = 0.0f;

            if (vectorized)
            {
                const int K_STEP = MATMUL_THREADS * VEC;
                for (int k0 = threadIdx.x * VEC; k0 < in; k0 += K_STEP * K_UNROLL)
                {
                    float wv[K_UNROLL][TILE_FEATURES][VEC];
#pragma unroll
                    for (int u = 0; u < K_UNROLL; u++)
#pragma unroll
                        for (int f = 0; f < TILE_FEATURES; f++)
                            if (w_rows[f] && k0 + u * K_STEP < in) load_vector(w_rows[f] + k0 + u * K_STEP, wv[u][f]);
#pragma unroll
                    for (int u = 0; u < K_UNROLL; u++)
                    {
                        int k = k0 + u * K_STEP;
                        if (k < in)
                        {
#pragma unroll
                            for (int r = 0; r < ROW_TILE; r++)
                            {
                                if (r < tile_rows)
                                {
                                    float xv[VEC];
                                    const f32x4* xr = (const f32x4*)(x_tile + (long long)r * in + k);
#pragma unroll
                                    for (int q = 0; q < VEC / 4; q++)
                                    {
                                        f32x4 v = xr[q];
                                        xv[4 * q] = v.x; xv[4 * q + 1] = v.y; xv[4 * q + 2] = v.z; xv[4 * q + 3] = v.w;
                                    }
#pragma unroll
                                    for (int f = 0; f < TILE_FEATURES; f++)
                                    {
                                        if (w_rows[f])
                                        {
                                            float a = acc[r][f];
#pragma unroll
                                            for (int j = 0; j < VEC; j++) a = fmaf(wv[u][f][j], xv[j], a);
                                            acc[r][f] = a;
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            else
            {
                for (int k = threadIdx.x; k < in; k += MATMUL_THREADS)
                {
#pragma unroll
                    for (int f = 0; f < TILE_FEATURES; f++)
                    {
                        if (w_rows[f])
                        {
                            float wk = load_f32(w_rows[f], k);
#pragma unroll
                            for (int r = 0; r < ROW_TILE; r++)
                                if (r < tile_rows) acc[r][f] = fmaf(wk, x_tile[(long long)r * in + k], acc[r][f]);
                        }
                    }
                }
            }

#pragma unroll
            for (int r = 0; r < ROW_TILE; r++)
#pragma unroll
                for (int f = 0; f < TILE_FEATURES; f++)
                {
                    float s = warp_sum(acc[r][f]);
                    if (lane == 0) partial[warp][r][f] = s;
                }
            __syncthreads();
            if (threadIdx.x < ROW_TILE * TILE_FEATURES)
            {
                int r = threadIdx.x / TILE_FEATURES, f = threadIdx.x % TILE_FEATURES;
                // (Presence recomputed, not read from w_rows: a thread-dependent index would put w_rows in local memory.)
                bool present = feature0 + (SILU ? f % HALF : f) < out;
                if (r < tile_rows && present)
                {
                    float total = partial[0][r][f];
#pragma unroll
                    for (int v = 1; v < MATMUL_WARPS; v++) total += partial[v][r][f];
                    if (!SILU)
                        y[(long long)(r0 + r) * out + feature0 + f] = total;
                    else if (f < HALF)
                    {
                        // silu(g) · u = g / (1 + e^−g) · u, as silu_mul computes it; the up total is summed the same way.
                        float up_total = partial[0][r][HALF + f];
#pragma unroll
                        for (int v = 1; v < MATMUL_WARPS; v++) up_total += partial[v][r][HALF + f];
                        y[(long long)(r0 + r) * out + feature0 + f] = total / (1.0f + expf(-total)) * up_total;
                    }
                }
            }
            __syncthreads();
        }
    }
}

#define MATMUL_PARAMETERS(W) \
    const float* x, int rows, int in, const W* w0, float* y0, int out0, const W* w1, float* y1, int out1, const W* w2, float* y2, int out2
#define MATMUL_ARGUMENTS x, rows, in, w0, y0, out0, w1, y1, out1, w2, y2, out2
#define MATMUL_SILU_PARAMETERS(W) const float* x, int rows, int in, const W* gate, const W* up, float* y, int out
#define MATMUL_SILU_ARGUMENTS x, rows, in, gate, y, out, up, 0, 0, 0, 0, 0

// Entry points, spelled out (the backend finds kernels by their extern "C" names).
extern "C" __global__ void __launch_bounds__(MATMUL_THREADS) matmul_f32(MATMUL_PARAMETERS(float)) { matmul_impl<float, 8, FEATURES, false>(MATMUL_ARGUMENTS); }
extern "C" __global__ void __launch_bounds__(MATMUL_THREADS) matmul_f16(MATMUL_PARAMETERS(half_bits)) { matmul_impl<half_bits, 8, FEATURES, false>(MATMUL_ARGUMENTS); }
extern "C" __global__ void __launch_bounds__(MATMUL_THREADS) matmul_bf16(MATMUL_PARAMETERS(bf16_bits)) { matmul_impl<bf16_bits, 8, FEATURES, false>(MATMUL_ARGUMENTS); }
extern "C" __global__ void __launch_bounds__(MATMUL_THREADS) matmul_f32_r1(MATMUL_PARAMETERS(float)) { matmul_impl<float, 1, FEATURES_R1, false>(MATMUL_ARGUMENTS); }
extern "C" __global__ void __launch_bounds__(MATMUL_THREADS) matmul_f16_r1(MATMUL_PARAMETERS(half_bits)) { matmul_impl<half_bits, 1, FEATURES_R1, false>(MATMUL_ARGUMENTS); }
extern "C" __global__ void __launch_bounds__(MATMUL_THREADS) matmul_bf16_r1(MATMUL_PARAMETERS(bf16_bits)) { matmul_impl<bf16_bits, 1, FEATURES_R1, false>(MATMUL_ARGUMENTS); }

extern "C" __global__ void __launch_bounds__(MATMUL_THREADS) matmul_silu_f32(MATMUL_SILU_PARAMETERS(float)) { matmul_impl<float, 8, FEATURES, true>(MATMUL_SILU_ARGUMENTS); }
extern "C" __global__ void __launch_bounds__(MATMUL_THREADS) matmul_silu_f16(MATMUL_SILU_PARAMETERS(half_bits)) { matmul_impl<half_bits, 8, FEATURES, true>(MATMUL_SILU_ARGUMENTS); }
extern "C" __global__ void __launch_bounds__(MATMUL_THREADS) matmul_silu_bf16(MATMUL_SILU_PARAMETERS(bf16_bits)) { matmul_impl<bf16_bits, 8, FEATURES, true>(MATMUL_SILU_ARGUMENTS); }
extern "C" __global__ void __launch_bounds__(MATMUL_THREADS) matmul_silu_f32_r1(MATMUL_SILU_PARAMETERS(float)) { matmul_impl<float, 1, FEATURES_R1, true>(MATMUL_SILU_ARGUMENTS); }
extern "C" __global__ void __launch_bounds__(MATMUL_THREADS) matmul_silu_f16_r1(MATMUL_SILU_PARAMETERS(half_bits)) { matmul_impl<half_bits, 1, FEATURES_R1, true>(MATMUL_SILU_ARGUMENTS); }
extern "C" __global__ void __launch_bounds__(MATMUL_THREADS) matmul_silu_bf16_r1(MATMUL_SILU_PARAMETERS(bf16_bits)) { matmul_impl<bf16_bits, 1, FEATURES_R1, true>(MATMUL_SILU_ARGUMENTS); }
