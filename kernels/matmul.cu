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

template <typename W>
__device__ __forceinline__ void matmul_impl(const float* x, const W* w, float* y, int rows, int in, int out)
{
    const int VEC = WeightVector<W>::size;
    int feature = blockIdx.x * (blockDim.x / WARP_SIZE) + threadIdx.x / WARP_SIZE;
    int lane = threadIdx.x % WARP_SIZE;
    if (feature >= out) return;   // whole warps leave together
    const W* weight_row = w + (long long)feature * in;
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
            for (int k = lane * VEC; k < in; k += WARP_SIZE * VEC)
            {
                float wv[VEC];
                WeightVector<W>::load(weight_row + k, wv);
#pragma unroll
                for (int r = 0; r < ROW_TILE; r++)
                {
                    if (r < tile_rows)
                    {
                        const float* xr = x_tile + (long long)r * in + k;
                        float a = acc[r];
#pragma unroll
                        for (int j = 0; j < VEC; j++) a = fmaf(wv[j], xr[j], a);
                        acc[r] = a;
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
