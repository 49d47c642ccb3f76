// Only for the CI compile check (clang -x cuda --cuda-device-only -nocudainc -nocudalib): declares what NVRTC provides
// built in, so that every kernel is compiled to PTX on machines without a GPU or the CUDA toolkit.
#pragma once
#include <__clang_cuda_builtin_vars.h>

#define __global__ __attribute__((global))
#define __device__ __attribute__((device))
#define __shared__ __attribute__((shared))
#define __constant__ __attribute__((constant))
#define __forceinline__ __inline__ __attribute__((always_inline))
#define __launch_bounds__(...) __attribute__((launch_bounds(__VA_ARGS__)))

__device__ static inline int min(int a, int b) { return a < b ? a : b; }
__device__ static inline int max(int a, int b) { return a > b ? a : b; }
__device__ static inline float fmaf(float a, float b, float c) { return __nvvm_fma_rn_f(a, b, c); }
__device__ static inline float __shfl_xor_sync(unsigned mask, float v, int lane) { return __nvvm_shfl_sync_bfly_f32(mask, v, lane, 0x1f); }
__device__ static inline int __shfl_xor_sync(unsigned mask, int v, int lane) { return __nvvm_shfl_sync_bfly_i32(mask, v, lane, 0x1f); }
__device__ static inline int __shfl_sync(unsigned mask, int v, int lane) { return __nvvm_shfl_sync_idx_i32(mask, v, lane, 0x1f); }
__device__ static inline float fmaxf(float a, float b) { return __nvvm_fmax_f(a, b); }
__device__ static inline float fminf(float a, float b) { return __nvvm_fmin_f(a, b); }
extern "C" __device__ float expf(float);
extern "C" __device__ float sqrtf(float);
extern "C" __device__ float rsqrtf(float);
extern "C" __device__ void sincosf(float, float*, float*);
