// Token-tree verification. Nodes are numbered breadth-first; node 0 is the last accepted token (the root), and node n's
// keys and values live in cache slot base_slot + n. parents[n] is the parent's number (−1 for the root), tokens[n] the
// node's token, target_choices[n] the target model's choice after node n.
#include "common.cuh"

// Walks from the root while a child carries the target's choice: writes the path's node numbers (root first) to
// path[0..length), length − 1 accepted drafts to *accepted, and the target's token after the path to *next_token.
// One thread: trees are small (tens of nodes) and this replaces a copy of every node's logits to the host.
extern "C" __global__ void tree_accept_path(const int* tokens, const int* parents, const int* target_choices, int nodes,
                                           int* path, int* accepted, int* next_token)
{
    if (threadIdx.x != 0 || blockIdx.x != 0) return;
    int current = 0, length = 1;
    path[0] = 0;
    for (bool extended = true; extended;)
    {
        extended = false;
        for (int child = current + 1; child < nodes; child++)
        {
            if (parents[child] == current && tokens[child] == target_choices[current])
            {
                path[length++] = child;
                current = child;
                extended = true;
                break;
            }
        }
    }
    *accepted = length - 1;
    *next_token = target_choices[current];
}

// Moves the accepted path's keys and values to consecutive slots base_slot, base_slot + 1, ... in every layer.
// grid.x = layers. Depths are copied in order with a barrier between them: the slot a depth is written to may be the
// source of an earlier depth, never of a later one (path nodes are numbered breadth-first).
template <typename KV>
__device__ __forceinline__ void tree_compact_kv_impl(KV* key_cache, KV* value_cache, const int* path, const int* accepted,
                                                     int base_slot, int kv_width, long long layer_stride)
{
    long long layer = blockIdx.x * layer_stride;
    int length = *accepted + 1;
    for (int depth = 1; depth < length; depth++)
    {
        long long from = layer + (long long)(base_slot + path[depth]) * kv_width;
        long long to = layer + (long long)(base_slot + depth) * kv_width;
        for (int i = threadIdx.x; i < kv_width; i += blockDim.x)
        {
            key_cache[to + i] = key_cache[from + i];
            value_cache[to + i] = value_cache[from + i];
        }
        __syncthreads();
    }
}

extern "C" __global__ void tree_compact_kv_f16(half_bits* kc, half_bits* vc, const int* path, const int* accepted, int base_slot, int kv_width, long long layer_stride)
{
    tree_compact_kv_impl(kc, vc, path, accepted, base_slot, kv_width, layer_stride);
}

extern "C" __global__ void tree_compact_kv_f32(float* kc, float* vc, const int* path, const int* accepted, int base_slot, int kv_width, long long layer_stride)
{
    tree_compact_kv_impl(kc, vc, path, accepted, base_slot, kv_width, layer_stride);
}
