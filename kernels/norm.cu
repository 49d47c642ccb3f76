// RMSNorm, and RMSNorm fused with the residual add. One block per row; each thread owns the elements
// t, t + blockDim, ... of its row in both passes, and the block sum has a fixed order: a row's bits depend on that row only.
#include "common.cuh"

// Threads per block, from the launcher (NormLauncher, src/Kangaroo.Backends.Cuda/Launchers) as a -D define.
#ifndef NORM_THREADS
#error "NORM_THREADS must be defined by the launcher"
#endif

template <typename W>
__device__ __forceinline__ void normalize_row(const float* x, const W* weight, float eps, float* y, int width, float* scratch)
{
    float squares = 0.0f;
    for (int i = threadIdx.x; i < width; i += blockDim.x) squares = fmaf(x[i], x[i], squares);
    float mean_square = block_sum(squares, scratch) / (float)width;
    float inverse_rms = 1.0f / sqrtf(mean_square + eps);
    for (int i = threadIdx.x; i < width; i += blockDim.x) y[i] = x[i] * inverse_rms * load_f32(weight, i);
}

template <typename W>
__device__ __forceinline__ void rmsnorm_impl(const float* input, const W* weight, float eps, float* output, int width)
{
    __shared__ float scratch[32];
    long long row = blockIdx.x;
    normalize_row(input + row * width, weight, eps, output + row * width, width, scratch);
}

// residual += delta, then normed = RMSNorm(residual): the same arithmetic as the two steps apart.
template <typename W>
__device__ __forceinline__ void add_rmsnorm_impl(float* residual, const float* delta, const W* weight, float eps, float* normed, int width)
{
    __shared__ float scratch[32];
    long long row = blockIdx.x;
    float* x = residual + row * width;
    const float* d = delta + row * width;
    for (int i = threadIdx.x; i < width; i += blockDim.x) x[i] = x[i] + d[i];
    normalize_row(x, weight, eps, normed + row * width, width, scratch);
}

extern "C" __global__ void __launch_bounds__(NORM_THREADS) rmsnorm_f32(const float* x, const float* w, float eps, float* y, int width) { rmsnorm_impl(x, w, eps, y, width); }
extern "C" __global__ void __launch_bounds__(NORM_THREADS) rmsnorm_f16(const float* x, const half_bits* w, float eps, float* y, int width) { rmsnorm_impl(x, w, eps, y, width); }
extern "C" __global__ void __launch_bounds__(NORM_THREADS) rmsnorm_bf16(const float* x, const bf16_bits* w, float eps, float* y, int width) { rmsnorm_impl(x, w, eps, y, width); }
extern "C" __global__ void __launch_bounds__(NORM_THREADS) add_rmsnorm_f32(float* r, const float* d, const float* w, float eps, float* y, int width) { add_rmsnorm_impl(r, d, w, eps, y, width); }
extern "C" __global__ void __launch_bounds__(NORM_THREADS) add_rmsnorm_f16(float* r, const float* d, const half_bits* w, float eps, float* y, int width) { add_rmsnorm_impl(r, d, w, eps, y, width); }
extern "C" __global__ void __launch_bounds__(NORM_THREADS) add_rmsnorm_bf16(float* r, const float* d, const bf16_bits* w, float eps, float* y, int width) { add_rmsnorm_impl(r, d, w, eps, y, width); }
