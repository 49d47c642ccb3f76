// y[r, o] = Σ_i x[r, i] · W[o, i] for 1 to 64 rows (decode, verification, prefill chunks); W in F32, F16 or BF16.
//
// Weights stream once per tile of ROW_TILE input rows with 16-byte loads, so verifying up to ROW_TILE tokens reads them
// once. Explicit fmaf everywhere leaves the compiler no contraction choices: a row's bits depend on its own inputs only.
#include "common.cuh"

#define MATMUL_THREADS 128
#define MATMUL_WARPS (MATMUL_THREADS / WARP_SIZE)
#ifndef FEATURES   // output features per block; the backend may define it (tuning runs)
#define FEATURES 4
#endif
#ifndef K_UNROLL   // weight vectors per feature loaded before any is used
#define K_UNROLL 1
#endif

struct __attribute__((aligned(16))) u32x4 { unsigned int x, y, z, w; };
struct __attribute__((aligned(16))) f32x4 { float x, y, z, w; };

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

// A block computes FEATURES consecutive output features over the whole input: thread t owns the 16-byte weight vectors
// t, t + MATMUL_THREADS, ... of each of those rows, so every x vector it loads serves FEATURES weight rows (x is re-read
// from L1 once per FEATURES rows instead of once per row), and FEATURES weight loads are in flight per step. Blocks loop
// over feature tiles (grid-stride), so the grid fits the GPU in one wave.
// Per (row, feature) the sum is: each thread's own vectors in order, a warp butterfly, then the warps in order — all fixed
// by the shape of W, never by the row count: row invariant.
// ROW_TILE: input rows per pass over the weights. The one-row variant (decode steps) needs no accumulators for absent
// rows, so more blocks fit per multiprocessor; it performs exactly the same operations for its row.
template <typename W, int ROW_TILE>
__device__ __forceinline__ void matmul_impl(const float* __restrict__ x, const W* __restrict__ w, float* __restrict__ y, int rows, int in, int out)
{
    const int VEC = WeightVector<W>::size;
    __shared__ float partial[MATMUL_WARPS][ROW_TILE][FEATURES];
    int lane = threadIdx.x % WARP_SIZE, warp = threadIdx.x / WARP_SIZE;
    bool vectorized = in % VEC == 0;   // keeps every weight row and x row 16-byte aligned
    int tiles = (out + FEATURES - 1) / FEATURES;

    for (int tile = blockIdx.x; tile < tiles; tile += gridDim.x)
    {
        int feature0 = tile * FEATURES;
        int features = min(FEATURES, out - feature0);
        for (int r0 = 0; r0 < rows; r0 += ROW_TILE)
        {
            int tile_rows = min(ROW_TILE, rows - r0);
            const float* x_tile = x + (long long)r0 * in;
            float acc[ROW_TILE][FEATURES];
#pragma unroll
            for (int r = 0; r < ROW_TILE; r++)
#pragma unroll
                for (int f = 0; f < FEATURES; f++) acc[r][f] = 0.0f;

            if (vectorized)
            {
                const int K_STEP = MATMUL_THREADS * VEC;
                for (int k0 = threadIdx.x * VEC; k0 < in; k0 += K_STEP * K_UNROLL)
                {
                    float wv[K_UNROLL][FEATURES][VEC];
#pragma unroll
                    for (int u = 0; u < K_UNROLL; u++)
#pragma unroll
                        for (int f = 0; f < FEATURES; f++)
                            if (f < features && k0 + u * K_STEP < in) load_vector(w + (long long)(feature0 + f) * in + k0 + u * K_STEP, wv[u][f]);
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
                                    for (int f = 0; f < FEATURES; f++)
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
            else
            {
                for (int k = threadIdx.x; k < in; k += MATMUL_THREADS)
                {
#pragma unroll
                    for (int f = 0; f < FEATURES; f++)
                    {
                        if (f < features)
                        {
                            float wk = load_f32(w + (long long)(feature0 + f) * in, k);
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
                for (int f = 0; f < FEATURES; f++)
                {
                    float s = warp_sum(acc[r][f]);
                    if (lane == 0) partial[warp][r][f] = s;
                }
            __syncthreads();
            if (threadIdx.x < ROW_TILE * FEATURES)
            {
                int r = threadIdx.x / FEATURES, f = threadIdx.x % FEATURES;
                if (r < tile_rows && f < features)
                {
                    float total = partial[0][r][f];
#pragma unroll
                    for (int v = 1; v < MATMUL_WARPS; v++) total += partial[v][r][f];
                    y[(long long)(r0 + r) * out + feature0 + f] = total;
                }
            }
            __syncthreads();
        }
    }
}

// Entry points, spelled out (the backend finds kernels by their extern "C" names).
extern "C" __global__ void __launch_bounds__(MATMUL_THREADS) matmul_f32(const float* x, const float* w, float* y, int rows, int in, int out) { matmul_impl<float, 8>(x, w, y, rows, in, out); }
extern "C" __global__ void __launch_bounds__(MATMUL_THREADS) matmul_f16(const float* x, const half_bits* w, float* y, int rows, int in, int out) { matmul_impl<half_bits, 8>(x, w, y, rows, in, out); }
extern "C" __global__ void __launch_bounds__(MATMUL_THREADS) matmul_bf16(const float* x, const bf16_bits* w, float* y, int rows, int in, int out) { matmul_impl<bf16_bits, 8>(x, w, y, rows, in, out); }
extern "C" __global__ void __launch_bounds__(MATMUL_THREADS) matmul_f32_r1(const float* x, const float* w, float* y, int rows, int in, int out) { matmul_impl<float, 1>(x, w, y, rows, in, out); }
extern "C" __global__ void __launch_bounds__(MATMUL_THREADS) matmul_f16_r1(const float* x, const half_bits* w, float* y, int rows, int in, int out) { matmul_impl<half_bits, 1>(x, w, y, rows, in, out); }
extern "C" __global__ void __launch_bounds__(MATMUL_THREADS) matmul_bf16_r1(const float* x, const bf16_bits* w, float* y, int rows, int in, int out) { matmul_impl<bf16_bits, 1>(x, w, y, rows, in, out); }
