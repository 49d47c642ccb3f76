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

// Entry points, spelled out (the backend finds kernels by their extern "C" names). F16 and BF16 weights take the
// tensor-core family below unless KANGAROO_MATMUL_TENSOR_CORES=0 asks for these (for side-by-side timing).
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

// ================================================================ tensor cores: F16 and BF16 weights, 1 to any rows
//
// mma.sync.m16n8k16 with the weight matrix as the 16-row A operand and the input rows as the 8-column B operand, F32
// accumulate. A single row pads to 8 columns at no cost in bandwidth, so decode steps and verification share one kernel
// and stream each weight once per pass for up to 32 rows (the _n4 variant's 4 n-tiles); more rows loop over row groups of that size, tile by
// tile, so a weight tile's second read comes from L2.
//
// Row invariance: an mma computes every output element from its own row of A and column of B, so a column's result does
// not depend on the other columns of the call. What fixes the order of a sum is the shape alone:
//   - K is cut into chunks of MMA_CHUNK; warp w of a block takes chunks w, w + MMA_WARPS, … in order, and within a chunk
//     its vectors and halves in a fixed order (mma_chunk);
//   - the warps' partial sums meet in shared memory and are added in warp order.
// The variants (n-tiles per pass, pipeline depth, m-tiles per block) change only who computes what and when.
//
// Activations are F32; the tensor cores take F16/BF16. Each activation is split into parts the operand type holds
// exactly, and each part takes its own mma with the same weights, so x keeps about F32 precision:
//   F16:  x ≈ hi + lo · 2⁻¹², hi = f16(x), lo = f16((x − hi) · 2¹²), with hi and lo in separate accumulators (the scale
//         keeps lo out of F16's subnormal range); |x| must stay within F16's range, as it does when transformers runs
//         the same F16 model in F16;
//   BF16: x ≈ hi + mid + lo, three BF16 parts (24 significant bits), one accumulator.
//
// K order within a chunk: thread (g = lane / 4, t = lane % 4) loads MMA_VECTORS 16-byte vectors of weight rows g and
// g + 8 at k = chunk + mma_vector_offset(t, u), and the same k of its input row. The mma's logical k (2t, 2t + 1,
// 2t + 8, 2t + 9) map onto elements (0, 1, 2, 3) of half 0 of such a vector, then (4, 5, 6, 7) of half 1: a permutation of
// the chunk's K that A and B share, so the dot product is unchanged and every load is 16 bytes wide and coalesced.
//
// Weight layout: the backend repacks F16/BF16 matrices at load (pack_mma_tiles) so that each warp's loads are contiguous.
// The matrix becomes blocks of one m-tile × one chunk (MMA_M · MMA_CHUNK elements, zero past the matrix's rows and
// columns), m-tile-major then chunk; within a block, the 16-byte vector that thread `lane` loads for weight row g + 8r
// (r = 0, 1) and vector u sits at slot (r · MMA_VECTORS + u) · 32 + lane. One load instruction of a warp then reads
// 512 contiguous bytes, and a block's warps, on neighbouring chunks, a contiguous run of the m-tile. The repack moves
// values, never changes them or the order they are summed in.
#ifndef MMA_WARPS
#error "MMA_WARPS must be defined by the launcher"
#endif
#define MMA_THREADS (MMA_WARPS * WARP_SIZE)
#define MMA_M 16            // weight rows per m-tile
#define MMA_N 8             // input rows per n-tile
// 16-byte weight vectors per thread and weight row in a chunk: it fixes the K order (shape only) and the tile layout,
// which the launcher allocates, hence its define.
#ifndef MMA_VECTORS
#error "MMA_VECTORS must be defined by the launcher"
#endif
#define MMA_CHUNK (32 * MMA_VECTORS)
#define MMA_BLOCK (MMA_M * MMA_CHUNK)   // elements per m-tile × chunk block of the tile layout

// Where thread t's vector u of a chunk starts. Vector-major: one load instruction (one u) of the 4 threads of a weight row
// reads 64 contiguous bytes, whole sectors (thread-contiguous vectors measured slower at 1 and 8 rows, bench/RESULTS.md).
__device__ __forceinline__ int mma_vector_offset(int t, int u) { return 8 * (u * 4 + t); }

__device__ __forceinline__ unsigned pack_f16x2(float first, float second)
{
    unsigned r;   // cvt puts its first source in the upper half: the element with the higher k
    asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(second), "f"(first));
    return r;
}

__device__ __forceinline__ unsigned pack_bf16x2(float first, float second)
{
    unsigned r;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(second), "f"(first));
    return r;
}

__device__ __forceinline__ float sub_rn(float a, float b) { float r; asm("sub.rn.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b)); return r; }
__device__ __forceinline__ float mul_rn(float a, float b) { float r; asm("mul.rn.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b)); return r; }

#define F16_LO_SCALE 4096.0f          // 2¹²
#define F16_LO_UNSCALE 0.000244140625f // 2⁻¹²

// The parts of one pair of activations (k, k + 1) as packed mma operands.
template <typename W> struct ActivationParts;

template <> struct ActivationParts<half_bits>
{
    static const int count = 2;   // hi, lo: two accumulators
    static __device__ __forceinline__ void split(float a, float b, unsigned* parts)
    {
        unsigned hi = pack_f16x2(a, b);
        float ha = f16_to_f32((half_bits)(hi & 0xffffu)), hb = f16_to_f32((half_bits)(hi >> 16));
        parts[0] = hi;
        parts[1] = pack_f16x2(mul_rn(sub_rn(a, ha), F16_LO_SCALE), mul_rn(sub_rn(b, hb), F16_LO_SCALE));
    }
};

template <> struct ActivationParts<bf16_bits>
{
    static const int count = 3;   // hi, mid, lo: one accumulator
    static __device__ __forceinline__ void split(float a, float b, unsigned* parts)
    {
#pragma unroll
        for (int p = 0; p < 3; p++)
        {
            unsigned v = pack_bf16x2(a, b);
            parts[p] = v;
            a = sub_rn(a, bf16_to_f32((unsigned short)(v & 0xffffu)));
            b = sub_rn(b, bf16_to_f32((unsigned short)(v >> 16)));
        }
    }
};

template <typename W> __device__ __forceinline__ void mma(float* d, const unsigned* a, unsigned b0, unsigned b1);

template <> __device__ __forceinline__ void mma<half_bits>(float* d, const unsigned* a, unsigned b0, unsigned b1)
{
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]) : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

template <> __device__ __forceinline__ void mma<bf16_bits>(float* d, const unsigned* a, unsigned b0, unsigned b1)
{
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]) : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Eight activations at k … k + 7 of one input row (zero past K, or for an absent row).
__device__ __forceinline__ void load_inputs8(const float* row, int k, int in, bool vectorized, float* out)
{
    if (row && vectorized && k < in)
    {
        f32x4 a = *(const f32x4*)(row + k), b = *(const f32x4*)(row + k + 4);
        out[0] = a.x; out[1] = a.y; out[2] = a.z; out[3] = a.w; out[4] = b.x; out[5] = b.y; out[6] = b.z; out[7] = b.w;
        return;
    }
#pragma unroll
    for (int i = 0; i < 8; i++) out[i] = row && !vectorized && k + i < in ? row[k + i] : 0.0f;
}

// One block task: TM neighbouring m-tiles (weight rows feature0 … feature0 + 16 TM − 1) of each of MAT matrices (1, or
// gate and up), MT = MAT · TM m-tiles in all, index mat · TM + tm, over the input rows r0 … r0 + NT · 8 − 1.
template <typename W, int MT>
struct MmaTask
{
    const W* blocks[MT];     // each m-tile's first block (tile layout), null past the matrix's last m-tile
    float* y; int out, feature0, r0;
};

// Accumulators: [m-tile][n-tile][part][4]; F16 keeps its two parts apart, BF16 sums its three into one.
template <typename W> struct Accumulators { static const int parts = ActivationParts<W>::count == 2 ? 2 : 1; };

__device__ __forceinline__ unsigned shuffle(unsigned v, int lane) { return (unsigned)__shfl_sync(FULL_MASK, (int)v, lane); }

template <typename W, int MT>
__device__ __forceinline__ void mma_a(unsigned (&a)[4], const u32x4 (&w)[MT][2][MMA_VECTORS], int i, int u, int h)
{
    a[0] = h == 0 ? w[i][0][u].x : w[i][0][u].z;   // row g,     k 2t, 2t + 1
    a[1] = h == 0 ? w[i][1][u].x : w[i][1][u].z;   // row g + 8, k 2t, 2t + 1
    a[2] = h == 0 ? w[i][0][u].y : w[i][0][u].w;   // row g,     k 2t + 8, 2t + 9
    a[3] = h == 0 ? w[i][1][u].y : w[i][1][u].w;   // row g + 8, k 2t + 8, 2t + 9
}

// One chunk of K for every m-tile and n-tile of the task, from the weights already in registers.
// ONE_ROW (decode steps): only column 0 of B is real, so instead of each lane splitting its own column's activations,
// the 32 lanes split the chunk's 64 activations of row 0 a pair each and hand the parts to the lanes of column 0 by
// shuffle. The parts are the same values either way, so the mma see the same operands and give the same bits.
template <typename W, int MT, int NT, bool ONE_ROW>
__device__ __forceinline__ void mma_chunk(float (&acc)[MT][NT][Accumulators<W>::parts][4], const u32x4 (&w)[MT][2][MMA_VECTORS],
                                          u32x2 xpair, const float* __restrict__ x, int rows, int in, bool vectorized, int r0, int k0)
{
    const int PARTS = ActivationParts<W>::count;
    int lane = threadIdx.x % WARP_SIZE, g = lane >> 2, t = lane & 3;
    if constexpr (ONE_ROW)
    {
        // Lane l holds the parts of activations k0 + 2l and k0 + 2l + 1 (the chunk is 64 = 2 · 32 wide), staged by mma_load.
        float a0 = bits_to_float(xpair.x), a1 = bits_to_float(xpair.y);
        unsigned parts[PARTS];
        ActivationParts<W>::split(a0, a1, parts);
#pragma unroll
        for (int u = 0; u < MMA_VECTORS; u++)
#pragma unroll
            for (int h = 0; h < 2; h++)
            {
                // The pairs this lane's B registers hold (mapping above): elements 8 (t · MMA_VECTORS + u) + 4h + {0, 1 | 2, 3}.
                int pair = mma_vector_offset(t, u) / 2 + 2 * h;
                unsigned b0[PARTS], b1[PARTS];
#pragma unroll
                for (int p = 0; p < PARTS; p++) { b0[p] = shuffle(parts[p], pair); b1[p] = shuffle(parts[p], pair + 1); }
#pragma unroll
                for (int i = 0; i < MT; i++)
                {
                    unsigned a[4];
                    mma_a<W, MT>(a, w, i, u, h);
#pragma unroll
                    for (int p = 0; p < PARTS; p++)
                        mma<W>(acc[i][0][Accumulators<W>::parts == 1 ? 0 : p], a, b0[p], b1[p]);
                }
            }
        return;
    }
#pragma unroll
    for (int j = 0; j < NT; j++)
    {
        if (r0 + j * MMA_N >= rows) break;   // warp-uniform: absent n-tiles cost nothing
        int r = r0 + j * MMA_N + g;
        const float* xrow = r < rows ? x + (long long)r * in : 0;
#pragma unroll
        for (int u = 0; u < MMA_VECTORS; u++)
        {
            float xv[8];
            load_inputs8(xrow, k0 + mma_vector_offset(t, u), in, vectorized, xv);
#pragma unroll
            for (int h = 0; h < 2; h++)
            {
                unsigned b0[PARTS], b1[PARTS];
                ActivationParts<W>::split(xv[4 * h], xv[4 * h + 1], b0);
                ActivationParts<W>::split(xv[4 * h + 2], xv[4 * h + 3], b1);
#pragma unroll
                for (int i = 0; i < MT; i++)
                {
                    unsigned a[4];
                    mma_a<W, MT>(a, w, i, u, h);
#pragma unroll
                    for (int p = 0; p < PARTS; p++)
                        mma<W>(acc[i][j][Accumulators<W>::parts == 1 ? 0 : p], a, b0[p], b1[p]);
                }
            }
        }
    }
}

// Groups of TM m-tiles in a matrix of `out` rows.
template <int TM>
__device__ __forceinline__ int mma_groups(int out) { return ((out + MMA_M - 1) / MMA_M + TM - 1) / TM; }

// The tasks of one launch: groups of TM m-tiles of up to three matrices (matmul) or of gate/up pairs (matmul_silu), each
// over every row group. A block takes tasks blockIdx.x, blockIdx.x + gridDim.x, …; a group's row groups are neighbouring
// tasks, so weights read for one row group are still in L2 for the next.
template <typename W, int MAT, int TM>
__device__ __forceinline__ MmaTask<W, MAT * TM> mma_task(int task, int row_groups, int in, int group_rows, const W* w0, float* y0, int out0,
                                                         const W* w1, float* y1, int out1, const W* w2, float* y2, int out2)
{
    MmaTask<W, MAT * TM> s;
    int group = task / row_groups;
    s.r0 = (task % row_groups) * group_rows;
    const W* w[MAT];
    if (MAT == 2)
    {   // matmul_silu: gate and up rows of the same features
        s.feature0 = group * TM * MMA_M; s.y = y0; s.out = out0;
        w[0] = w0; w[MAT - 1] = w1;
    }
    else
    {
        int groups0 = mma_groups<TM>(out0), groups1 = mma_groups<TM>(out1);
        if (group < groups0) { w[0] = w0; s.y = y0; s.out = out0; }
        else if (group < groups0 + groups1) { w[0] = w1; s.y = y1; s.out = out1; group -= groups0; }
        else { w[0] = w2; s.y = y2; s.out = out2; group -= groups0 + groups1; }
        s.feature0 = group * TM * MMA_M;
    }
    long long chunks = (in + MMA_CHUNK - 1) / MMA_CHUNK;
    int tiles = (s.out + MMA_M - 1) / MMA_M;
#pragma unroll
    for (int m = 0; m < MAT; m++)
#pragma unroll
        for (int t = 0; t < TM; t++)
        {
            int tile = s.feature0 / MMA_M + t;
            s.blocks[m * TM + t] = tile < tiles ? w[m] + (long long)tile * chunks * MMA_BLOCK : 0;
        }
    return s;
}

// The weight stages live in shared memory, each thread's 16-byte pieces in slots of its own: it copies them with cp.async
// and reads them back itself after cp.async.wait_group, so no barrier is needed and the pipeline's depth costs no
// registers. [stage][warp][m-tile][row g | g + 8][vector][lane]
// ONE_ROW also stages each lane's pair of activations (k0 + 2 · lane, + 1), so their latency hides in the pipeline too;
// the batch variants keep no activation stages.
template <int PIPE, int MT, bool ONE_ROW>
struct MmaStages
{
    u32x4 v[PIPE][MMA_WARPS][MT][2][MMA_VECTORS][WARP_SIZE];
    u32x2 x[ONE_ROW ? PIPE : 1][MMA_WARPS][WARP_SIZE];
};

// Starts one chunk's weight copies into stage s (one cp.async group per chunk, empty where the chunk is absent); ONE_ROW
// also copies the lane's activation pair. An m-tile past the matrix's end copies nothing: its slots keep stale values,
// which reach only its own accumulators (an mma's output row depends on its own A row alone), never stored.
template <bool ONE_ROW, typename W, int PIPE, int MT>
__device__ __forceinline__ void mma_load(MmaStages<PIPE, MT, ONE_ROW>& stages, int s, const MmaTask<W, MT>& task, const float* x,
                                         int k0, int in, bool vectorized, bool present)
{
    int lane = threadIdx.x % WARP_SIZE, warp = threadIdx.x / WARP_SIZE;
    if (present)
    {
#pragma unroll
        for (int i = 0; i < MT; i++)
        {
            if (!task.blocks[i]) continue;
            const W* block = task.blocks[i] + (long long)(k0 / MMA_CHUNK) * MMA_BLOCK;
#pragma unroll
            for (int r = 0; r < 2; r++)
#pragma unroll
                for (int u = 0; u < MMA_VECTORS; u++)
                    copy_async16(&stages.v[s][warp][i][r][u][lane], block + ((r * MMA_VECTORS + u) * WARP_SIZE + lane) * 8);
        }
        if constexpr (ONE_ROW)
        {
            int k = k0 + 2 * lane;
            u32x2* slot = &stages.x[s][warp][lane];
            if (vectorized)
                copy_async8(slot, k < in ? (const void*)(x + k) : (const void*)x, k < in);
            else
            {
                u32x2 v;
                v.x = k < in ? float_to_bits(x[k]) : 0u;
                v.y = k + 1 < in ? float_to_bits(x[k + 1]) : 0u;
                *slot = v;
            }
        }
    }
    copy_async_commit();
}

// Waits for stage s (the oldest of PIPE groups in flight) and reads this thread's weights out of it.
template <int PIPE, int MT, bool ONE_ROW>
__device__ __forceinline__ void mma_take(u32x4 (&w)[MT][2][MMA_VECTORS], u32x2& xpair, const MmaStages<PIPE, MT, ONE_ROW>& stages, int s)
{
    int lane = threadIdx.x % WARP_SIZE, warp = threadIdx.x / WARP_SIZE;
    copy_async_wait<PIPE - 1>();
    if constexpr (ONE_ROW) xpair = stages.x[s][warp][lane];
    else xpair = u32x2{ 0u, 0u };   // the batch variants read their activations directly
#pragma unroll
    for (int i = 0; i < MT; i++)
#pragma unroll
        for (int r = 0; r < 2; r++)
#pragma unroll
            for (int u = 0; u < MMA_VECTORS; u++) w[i][r][u] = stages.v[s][warp][i][r][u][lane];
}

// y for one task: each warp's partials (F16: hi + lo · 2⁻¹²) into shared memory, then summed in warp order, one n-tile at
// a time. matmul_silu (MAT = 2) writes silu(gate) · up as silu_mul computes it.
template <typename W, int MAT, int TM, int NT>
__device__ __forceinline__ void mma_store(float (&acc)[MAT * TM][NT][Accumulators<W>::parts][4], const MmaTask<W, MAT * TM>& s, int rows,
                                          float (*partial)[MAT * TM * MMA_M][MMA_N + 1])
{
    const int MT = MAT * TM, FEATURES_PER_TASK = TM * MMA_M;
    int lane = threadIdx.x % WARP_SIZE, warp = threadIdx.x / WARP_SIZE, g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int j = 0; j < NT; j++)
    {
        if (s.r0 + j * MMA_N >= rows) break;   // block-uniform
#pragma unroll
        for (int i = 0; i < MT; i++)
#pragma unroll
            for (int c = 0; c < 4; c++)
            {   // c0, c1: weight row g, input rows 2t, 2t + 1; c2, c3: weight row g + 8
                float v = Accumulators<W>::parts == 2 ? fmaf(acc[i][j][Accumulators<W>::parts - 1][c], F16_LO_UNSCALE, acc[i][j][0][c])
                                                      : acc[i][j][0][c];
                partial[warp][i * MMA_M + g + (c >= 2 ? 8 : 0)][2 * t + (c & 1)] = v;
            }
        __syncthreads();
        for (int e = threadIdx.x; e < FEATURES_PER_TASK * MMA_N; e += MMA_THREADS)
        {
            int f = e / MMA_N, n = e % MMA_N, r = s.r0 + j * MMA_N + n;
            if (r < rows && s.feature0 + f < s.out)
            {
                float total = partial[0][f][n];
#pragma unroll
                for (int v = 1; v < MMA_WARPS; v++) total += partial[v][f][n];
                if (MAT == 1)
                    s.y[(long long)r * s.out + s.feature0 + f] = total;
                else
                {
                    float up_total = partial[0][FEATURES_PER_TASK + f][n];
#pragma unroll
                    for (int v = 1; v < MMA_WARPS; v++) up_total += partial[v][FEATURES_PER_TASK + f][n];
                    s.y[(long long)r * s.out + s.feature0 + f] = total / (1.0f + expf(-total)) * up_total;
                }
            }
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < MT; i++)
#pragma unroll
        for (int j = 0; j < NT; j++)
#pragma unroll
            for (int p = 0; p < Accumulators<W>::parts; p++)
#pragma unroll
                for (int c = 0; c < 4; c++) acc[i][j][p][c] = 0.0f;
}

// A block's tasks are blockIdx.x, blockIdx.x + gridDim.x, …; each warp walks its chunk slots of one task after another.
// Every warp has the same number of slots per task, a multiple of PIPE (slots past the end of K are empty and do nothing),
// so the block's barriers line up and the ring of PIPE weight stages starts each task at stage 0. The loads run PIPE
// slots ahead of the mma, into the next task's first slots at the end of a task: no bubble between tasks.
template <typename W, int MAT, int TM, int NT, int PIPE, bool ONE_ROW>
__device__ __forceinline__ void mma_matmul(const float* __restrict__ x, int rows, int in, const W* w0, float* y0, int out0,
                                           const W* w1, float* y1, int out1, const W* w2, float* y2, int out2)
{
    const int MT = MAT * TM;
    __shared__ float partial[MMA_WARPS][MT * MMA_M][MMA_N + 1];
    int warp = threadIdx.x / WARP_SIZE;
    bool vectorized = in % 8 == 0;
    int group_rows = NT * MMA_N;
    int row_groups = (rows + group_rows - 1) / group_rows;
    int groups = MAT == 2 ? mma_groups<TM>(out0) : mma_groups<TM>(out0) + mma_groups<TM>(out1) + mma_groups<TM>(out2);
    int tasks = groups * row_groups;
    int chunks = (in + MMA_CHUNK - 1) / MMA_CHUNK;
    int slots = (chunks + MMA_WARPS * PIPE - 1) / (MMA_WARPS * PIPE) * PIPE;
    if ((int)blockIdx.x >= tasks) return;   // block-uniform

    float acc[MT][NT][Accumulators<W>::parts][4];
#pragma unroll
    for (int i = 0; i < MT; i++)
#pragma unroll
        for (int j = 0; j < NT; j++)
#pragma unroll
            for (int p = 0; p < Accumulators<W>::parts; p++)
#pragma unroll
                for (int c = 0; c < 4; c++) acc[i][j][p][c] = 0.0f;

    static_assert(sizeof(partial) + sizeof(MmaStages<PIPE, MT, ONE_ROW>) <= 48 * 1024,
                  "static shared memory over 48 KB: fewer MMA_WARPS, MMA_STAGES or MMA_WIDE_TILES");
#define MMA_TASK(index) mma_task<W, MAT, TM>(index, row_groups, in, group_rows, w0, y0, out0, w1, y1, out1, w2, y2, out2)
    __shared__ MmaStages<PIPE, MT, ONE_ROW> stages;
    MmaTask<W, MT> task = MMA_TASK(blockIdx.x);
#pragma unroll
    for (int s = 0; s < PIPE; s++)
    {
        int chunk = s * MMA_WARPS + warp;
        mma_load<ONE_ROW>(stages, s, task, x, chunk * MMA_CHUNK, in, vectorized, chunk < chunks);
    }

    for (int index = blockIdx.x; index < tasks; index += gridDim.x)
    {
        bool has_next = index + (int)gridDim.x < tasks;
        MmaTask<W, MT> next = has_next ? MMA_TASK(index + gridDim.x) : task;
        for (int base = 0; base < slots; base += PIPE)
        {
#pragma unroll
            for (int s = 0; s < PIPE; s++)
            {
                int chunk = (base + s) * MMA_WARPS + warp;
                u32x4 w[MT][2][MMA_VECTORS];
                u32x2 xpair;
                mma_take(w, xpair, stages, s);
                if (chunk < chunks) mma_chunk<W, MT, NT, ONE_ROW>(acc, w, xpair, x, rows, in, vectorized, task.r0, chunk * MMA_CHUNK);
                int ahead = base + s + PIPE;
                bool same_task = ahead < slots;
                int ahead_chunk = (same_task ? ahead : ahead - slots) * MMA_WARPS + warp;
                mma_load<ONE_ROW>(stages, s, same_task ? task : next, x, ahead_chunk * MMA_CHUNK, in, vectorized,
                         (same_task || has_next) && ahead_chunk < chunks);
            }
        }
        mma_store<W, MAT, TM, NT>(acc, task, rows, partial);
        task = next;
    }
#undef MMA_TASK
}

// Variants by input rows per pass: _mma_r1 one row (decode steps), _mma_n1 up to 8 rows, _mma_n2 up to 16, _mma_n4
// more (32 per pass). The widest variant takes MMA_WIDE_TILES m-tiles per task (matmul_silu half as many pairs of gate
// and up, at least one), so each activation row is read and split into parts once per 16 · MMA_WIDE_TILES weight rows;
// the others take one m-tile (pair) per task: more tasks to spread over the GPU, and a deeper pipeline in the same shared
// memory (bench/RESULTS.md). The m-tile count changes who computes what, never a sum's order, so the variants agree bit
// for bit.
#ifndef MMA_WIDE_TILES
#error "MMA_WIDE_TILES must be defined by the launcher"
#endif
// Stages in flight per warp: MMA_STAGES chunks' worth of m-tiles (a stage holds all of a task's m-tiles), at least one.
#ifndef MMA_STAGES
#define MMA_STAGES 2
#endif
#define MMA_PIPE(MT) (MMA_STAGES / (MT) > 0 ? MMA_STAGES / (MT) : 1)
#ifndef MMA_MIN_BLOCKS   // resident blocks per multiprocessor the compiler must leave registers for (1: no cap)
#define MMA_MIN_BLOCKS 1
#endif
#define BT MMA_WIDE_TILES
#define BT_PAIRS (MMA_WIDE_TILES / 2 > 0 ? MMA_WIDE_TILES / 2 : 1)
extern "C" __global__ void __launch_bounds__(MMA_THREADS, MMA_MIN_BLOCKS) matmul_f16_mma_r1(MATMUL_PARAMETERS(half_bits)) { mma_matmul<half_bits, 1, 1, 1, MMA_PIPE(1), true>(MATMUL_ARGUMENTS); }
extern "C" __global__ void __launch_bounds__(MMA_THREADS, MMA_MIN_BLOCKS) matmul_f16_mma_n1(MATMUL_PARAMETERS(half_bits)) { mma_matmul<half_bits, 1, 1, 1, MMA_PIPE(1), false>(MATMUL_ARGUMENTS); }
extern "C" __global__ void __launch_bounds__(MMA_THREADS, MMA_MIN_BLOCKS) matmul_f16_mma_n2(MATMUL_PARAMETERS(half_bits)) { mma_matmul<half_bits, 1, 1, 2, MMA_PIPE(1), false>(MATMUL_ARGUMENTS); }
extern "C" __global__ void __launch_bounds__(MMA_THREADS, MMA_MIN_BLOCKS) matmul_f16_mma_n4(MATMUL_PARAMETERS(half_bits)) { mma_matmul<half_bits, 1, BT, 4, MMA_PIPE(BT), false>(MATMUL_ARGUMENTS); }
extern "C" __global__ void __launch_bounds__(MMA_THREADS, MMA_MIN_BLOCKS) matmul_bf16_mma_r1(MATMUL_PARAMETERS(bf16_bits)) { mma_matmul<bf16_bits, 1, 1, 1, MMA_PIPE(1), true>(MATMUL_ARGUMENTS); }
extern "C" __global__ void __launch_bounds__(MMA_THREADS, MMA_MIN_BLOCKS) matmul_bf16_mma_n1(MATMUL_PARAMETERS(bf16_bits)) { mma_matmul<bf16_bits, 1, 1, 1, MMA_PIPE(1), false>(MATMUL_ARGUMENTS); }
extern "C" __global__ void __launch_bounds__(MMA_THREADS, MMA_MIN_BLOCKS) matmul_bf16_mma_n2(MATMUL_PARAMETERS(bf16_bits)) { mma_matmul<bf16_bits, 1, 1, 2, MMA_PIPE(1), false>(MATMUL_ARGUMENTS); }
extern "C" __global__ void __launch_bounds__(MMA_THREADS, MMA_MIN_BLOCKS) matmul_bf16_mma_n4(MATMUL_PARAMETERS(bf16_bits)) { mma_matmul<bf16_bits, 1, BT, 4, MMA_PIPE(BT), false>(MATMUL_ARGUMENTS); }

extern "C" __global__ void __launch_bounds__(MMA_THREADS, MMA_MIN_BLOCKS) matmul_silu_f16_mma_r1(MATMUL_SILU_PARAMETERS(half_bits)) { mma_matmul<half_bits, 2, 1, 1, MMA_PIPE(2 * 1), true>(MATMUL_SILU_ARGUMENTS); }
extern "C" __global__ void __launch_bounds__(MMA_THREADS, MMA_MIN_BLOCKS) matmul_silu_f16_mma_n1(MATMUL_SILU_PARAMETERS(half_bits)) { mma_matmul<half_bits, 2, 1, 1, MMA_PIPE(2 * 1), false>(MATMUL_SILU_ARGUMENTS); }
extern "C" __global__ void __launch_bounds__(MMA_THREADS, MMA_MIN_BLOCKS) matmul_silu_f16_mma_n2(MATMUL_SILU_PARAMETERS(half_bits)) { mma_matmul<half_bits, 2, 1, 2, MMA_PIPE(2 * 1), false>(MATMUL_SILU_ARGUMENTS); }
extern "C" __global__ void __launch_bounds__(MMA_THREADS, MMA_MIN_BLOCKS) matmul_silu_f16_mma_n4(MATMUL_SILU_PARAMETERS(half_bits)) { mma_matmul<half_bits, 2, BT_PAIRS, 4, MMA_PIPE(2 * BT_PAIRS), false>(MATMUL_SILU_ARGUMENTS); }
extern "C" __global__ void __launch_bounds__(MMA_THREADS, MMA_MIN_BLOCKS) matmul_silu_bf16_mma_r1(MATMUL_SILU_PARAMETERS(bf16_bits)) { mma_matmul<bf16_bits, 2, 1, 1, MMA_PIPE(2 * 1), true>(MATMUL_SILU_ARGUMENTS); }
extern "C" __global__ void __launch_bounds__(MMA_THREADS, MMA_MIN_BLOCKS) matmul_silu_bf16_mma_n1(MATMUL_SILU_PARAMETERS(bf16_bits)) { mma_matmul<bf16_bits, 2, 1, 1, MMA_PIPE(2 * 1), false>(MATMUL_SILU_ARGUMENTS); }
extern "C" __global__ void __launch_bounds__(MMA_THREADS, MMA_MIN_BLOCKS) matmul_silu_bf16_mma_n2(MATMUL_SILU_PARAMETERS(bf16_bits)) { mma_matmul<bf16_bits, 2, 1, 2, MMA_PIPE(2 * 1), false>(MATMUL_SILU_ARGUMENTS); }
extern "C" __global__ void __launch_bounds__(MMA_THREADS, MMA_MIN_BLOCKS) matmul_silu_bf16_mma_n4(MATMUL_SILU_PARAMETERS(bf16_bits)) { mma_matmul<bf16_bits, 2, BT_PAIRS, 4, MMA_PIPE(2 * BT_PAIRS), false>(MATMUL_SILU_ARGUMENTS); }
#undef BT
#undef BT_PAIRS

// ---------------------------------------------------------------- the tile layout: repack at load, embedding gather

// Where W[f][k] sits in the tile layout (the inverse of the slot mapping above; `chunks` = the matrix's chunks per m-tile).
__device__ __forceinline__ long long mma_tile_offset(int f, int k, int chunks)
{
    int g = f % 8, r = (f % MMA_M) / 8, v = (k % MMA_CHUNK) / 8;
    int u = v / 4, t = v % 4;   // mma_vector_offset(t, u) = 8 (4u + t)
    int slot = (r * MMA_VECTORS + u) * WARP_SIZE + 4 * g + t;
    return ((long long)(f / MMA_M) * chunks + k / MMA_CHUNK) * MMA_BLOCK + slot * 8 + k % 8;
}

// Row-major 16-bit weights (F16 or BF16: the bits are only moved) into the tile layout, one thread per 16-byte vector
// of the output; `vectors` = m-tiles · chunks · MMA_BLOCK / 8. Padding past the matrix's rows and columns is zero.
extern "C" __global__ void pack_mma_tiles(const unsigned short* source, int rows, int columns, u32x4* packed, long long vectors)
{
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= vectors) return;
    const int slots = MMA_BLOCK / 8;
    int chunks = (columns + MMA_CHUNK - 1) / MMA_CHUNK;
    long long block = i / slots;
    int slot = (int)(i % slots), lane = slot % WARP_SIZE, u = (slot / WARP_SIZE) % MMA_VECTORS, r = slot / WARP_SIZE / MMA_VECTORS;
    int f = (int)(block / chunks) * MMA_M + lane / 4 + 8 * r;
    int k = (int)(block % chunks) * MMA_CHUNK + mma_vector_offset(lane % 4, u);
    unsigned h[8];
#pragma unroll
    for (int e = 0; e < 8; e++) h[e] = f < rows && k + e < columns ? source[(long long)f * columns + k + e] : 0u;
    packed[i] = u32x4{ h[0] | (h[1] << 16), h[2] | (h[3] << 16), h[4] | (h[5] << 16), h[6] | (h[7] << 16) };
}

// embed_* over a table in the tile layout (tied embeddings share the LM head's matrix): one thread per output element.
template <typename T>
__device__ __forceinline__ void embed_tiles_impl(const T* table, const int* tokens, float* out, int rows, int width)
{
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)rows * width) return;
    int r = (int)(i / width), c = (int)(i % width);
    out[i] = load_f32(table, mma_tile_offset(tokens[r], c, (width + MMA_CHUNK - 1) / MMA_CHUNK));
}

extern "C" __global__ void embed_mma_tiles_f16(const half_bits* table, const int* tokens, float* out, int rows, int width) { embed_tiles_impl(table, tokens, out, rows, width); }
extern "C" __global__ void embed_mma_tiles_bf16(const bf16_bits* table, const int* tokens, float* out, int rows, int width) { embed_tiles_impl(table, tokens, out, rows, width); }
