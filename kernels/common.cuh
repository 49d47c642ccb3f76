// Shared by every kernel: element conversions and fixed-order reductions.
// Self-contained (no cuda_fp16.h): NVRTC compiles it as is, and CI compiles it with clang through clang_prelude.h.
#pragma once

typedef unsigned short half_bits;            // IEEE binary16, stored as raw bits
struct bf16_bits { unsigned short bits; };   // bfloat16 raw bits: a type of its own so overloads tell it from F16

// Vector load types of our own (no vector_types.h): one aligned load each.
struct __attribute__((aligned(8))) u32x2 { unsigned int x, y; };
struct __attribute__((aligned(16))) u32x4 { unsigned int x, y, z, w; };
struct __attribute__((aligned(16))) f32x4 { float x, y, z, w; };

#define WARP_SIZE 32
#define FULL_MASK 0xffffffffu

__device__ __forceinline__ float bits_to_float(unsigned int u)
{
    float f;
    asm("mov.b32 %0, %1;" : "=f"(f) : "r"(u));
    return f;
}

__device__ __forceinline__ unsigned int float_to_bits(float f)
{
    unsigned int u;
    asm("mov.b32 %0, %1;" : "=r"(u) : "f"(f));
    return u;
}

// −∞ without relying on a math header's INFINITY (NVRTC has no standard headers).
__device__ __forceinline__ float negative_infinity() { return bits_to_float(0xff800000u); }

__device__ __forceinline__ float f16_to_f32(half_bits h)
{
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}

__device__ __forceinline__ half_bits f32_to_f16(float f)
{
    half_bits h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
}

__device__ __forceinline__ float bf16_to_f32(unsigned short b) { return bits_to_float(((unsigned int)b) << 16); }

__device__ __forceinline__ float load_f32(const float* p, long long i) { return p[i]; }
__device__ __forceinline__ float load_f32(const half_bits* p, long long i) { return f16_to_f32(p[i]); }
__device__ __forceinline__ float load_f32(const bf16_bits* p, long long i) { return bf16_to_f32(p[i].bits); }

__device__ __forceinline__ void store_from_f32(float* p, long long i, float v) { p[i] = v; }
__device__ __forceinline__ void store_from_f32(half_bits* p, long long i, float v) { p[i] = f32_to_f16(v); }

// Butterfly sum over a warp: a fixed tree, so the result does not depend on anything but the 32 inputs.
__device__ __forceinline__ float warp_sum(float v)
{
    for (int offset = WARP_SIZE / 2; offset > 0; offset >>= 1) v += __shfl_xor_sync(FULL_MASK, v, offset);
    return v;
}

__device__ __forceinline__ float warp_max(float v)
{
    for (int offset = WARP_SIZE / 2; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(FULL_MASK, v, offset));
    return v;
}

// Block-wide sum in a fixed order: warp sums, then warp 0 sums the warp totals. Every thread gets the result.
// `scratch` holds at least blockDim.x / 32 floats; the block size must be a multiple of 32.
__device__ __forceinline__ float block_sum(float v, float* scratch)
{
    int lane = threadIdx.x % WARP_SIZE, warp = threadIdx.x / WARP_SIZE, warps = blockDim.x / WARP_SIZE;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    float total = lane < warps ? scratch[lane] : 0.0f;
    total = warp_sum(total);
    return total;
}

__device__ __forceinline__ float block_max(float v, float* scratch)
{
    int lane = threadIdx.x % WARP_SIZE, warp = threadIdx.x / WARP_SIZE, warps = blockDim.x / WARP_SIZE;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    float m = lane < warps ? scratch[lane] : negative_infinity();
    return warp_max(m);
}

// cp.async: global → shared copies that need no registers while in flight (Ampere and later).
__device__ __forceinline__ unsigned shared_address(const void* p)
{
    unsigned long long a;
    asm("cvta.to.shared.u64 %0, %1;" : "=l"(a) : "l"(p));
    return (unsigned)a;
}

// 16 bytes global → shared, bypassing L1 (weights are read once).
__device__ __forceinline__ void copy_async16(u32x4* slot, const void* src)
{
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" :: "r"(shared_address(slot)), "l"(src) : "memory");
}

// 8 bytes global → shared, or 8 zero bytes when `present` is false (src-size 0 reads nothing; src is any mapped address).
__device__ __forceinline__ void copy_async8(u32x2* slot, const void* src, bool present)
{
    asm volatile("cp.async.ca.shared.global [%0], [%1], 8, %2;" :: "r"(shared_address(slot)), "l"(src), "r"(present ? 8 : 0) : "memory");
}

__device__ __forceinline__ void copy_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }

template <int PENDING>
__device__ __forceinline__ void copy_async_wait() { asm volatile("cp.async.wait_group %0;" :: "n"(PENDING) : "memory"); }
