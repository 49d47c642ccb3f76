// y[r, o] = Σ_i x[r, i] · W[o, i] for 1 to 64 rows (decode, verification, prefill chunks); W in F32, F16 or BF16.
//
// One warp per output feature streams that weight row once per tile of ROW_TILE input rows with 16-byte loads, so
// verifying up to ROW_TILE tokens reads the weights once. Row invariance: lane l always accumulates the elements
// l·VEC + j·32·VEC in the same order with explicit fmaf (no contraction choices left to the compiler), and the warp sum
// is a fixed butterfly, so y[r, o] has the same bits whatever the row count or the row's place in its tile.
#include "common.cuh"

#define MATMUL_THREADS 256
#define ROW_TILE 8

struct __attribute__((aligned(16))) u32x4 { unsigned int x, y, z, w; };
struct __attribute__((aligned(16))) f32x4 { float x, y, z, w; };

template <typename W> struct WeightVector;

template <> struct WeightVector<float>
{
    static const int size = 4;
    static __device__ __forceinline__ void load(const float* p, float* out)
    {
        f32x4 v = *(const f32x4*)p;
        out[0] = v.x; out[1] = v.y; out[2] = v.z; out[3] = v.w;
    }
};

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

template <> struct WeightVector<half_bits>
{
    static const int size = 8;
    static __device__ __forceinline__ void load(const half_bits* p, float* out) { unpack_halves(*(const u32x4*)p, out, false); }
};

template <> struct WeightVector<bf16_bits>
{
    static const int size = 8;
    static __device__ __forceinline__ void load(const bf16_bits* p, float* out) { unpack_halves(*(const u32x4*)p, out, true); }
};

// Weights are streamed once, so they take the read-only path; UNROLL 16-byte loads per lane are issued before any of
// them is used, which keeps enough bytes in flight to approach the memory bandwidth.
#define UNROLL 8

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

template <typename W>
__device__ __forceinline__ void matmul_impl(const float* __restrict__ x, const W* __restrict__ w, float* __restrict__ y, int rows, int in, int out)
{
    const int VEC = WeightVector<W>::size;
    const int STRIDE = WARP_SIZE * VEC;
    int feature = blockIdx.x * (blockDim.x / WARP_SIZE) + threadIdx.x / WARP_SIZE;
    int lane = threadIdx.x % WARP_SIZE;
    if (feature >= out) return;   // whole warps leave together
    const W* weight_row = w + (long long)feature * in;
    // x rows are read as 16-byte vectors too: in % VEC == 0 keeps every row start and k 16-byte aligned.
    bool vectorized = in % VEC == 0;

    for (int r0 = 0; r0 < rows; r0 += ROW_TILE)
    {
        int tile_rows = min(ROW_TILE, rows - r0);
        const float* x_tile = x + (long long)r0 * in;
        float acc[ROW_TILE];
#pragma unroll
        for (int r = 0; r < ROW_TILE; r++) acc[r] = 0.0f;

        if (vectorized)
        {
            for (int base = lane * VEC; base < in; base += STRIDE * UNROLL)
            {
                float wv[UNROLL][VEC];
#pragma unroll
                for (int u = 0; u < UNROLL; u++)
                    if (base + u * STRIDE < in) load_vector(weight_row + base + u * STRIDE, wv[u]);
#pragma unroll
                for (int u = 0; u < UNROLL; u++)
                {
                    int k = base + u * STRIDE;
                    if (k >= in) break;
#pragma unroll
                    for (int r = 0; r < ROW_TILE; r++)
                    {
                        if (r < tile_rows)
                        {
                            const f32x4* xr = (const f32x4*)(x_tile + (long long)r * in + k);
                            float a = acc[r];
#pragma unroll
                            for (int q = 0; q < VEC / 4; q++)
                            {
                                f32x4 xv = xr[q];
                                a = fmaf(wv[u][4 * q + 0], xv.x, a);
                                a = fmaf(wv[u][4 * q + 1], xv.y, a);
                                a = fmaf(wv[u][4 * q + 2], xv.z, a);
                                a = fmaf(wv[u][4 * q + 3], xv.w, a);
                            }
                            acc[r] = a;
                        }
                    }
                }
            }
        }
        else
        {
            for (int k = lane; k < in; k += WARP_SIZE)
            {
                float wk = load_f32(weight_row, k);
#pragma unroll
                for (int r = 0; r < ROW_TILE; r++)
                    if (r < tile_rows) acc[r] = fmaf(wk, x_tile[(long long)r * in + k], acc[r]);
            }
        }

#pragma unroll
        for (int r = 0; r < ROW_TILE; r++)
        {
            float total = warp_sum(acc[r]);
            if (r < tile_rows && lane == 0) y[(long long)(r0 + r) * out + feature] = total;
        }
    }
}

extern "C" __global__ void __launch_bounds__(MATMUL_THREADS) matmul_f32(const float* x, const float* w, float* y, int rows, int in, int out)
{
    matmul_impl(x, w, y, rows, in, out);
}

extern "C" __global__ void __launch_bounds__(MATMUL_THREADS) matmul_f16(const float* x, const half_bits* w, float* y, int rows, int in, int out)
{
    matmul_impl(x, w, y, rows, in, out);
}

extern "C" __global__ void __launch_bounds__(MATMUL_THREADS) matmul_bf16(const float* x, const bf16_bits* w, float* y, int rows, int in, int out)
{
    matmul_impl(x, w, y, rows, in, out);
}
