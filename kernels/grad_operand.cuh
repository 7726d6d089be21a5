// Gradient operands whose element type is chosen at run time, for the _bf16grad entries of microdit.h. In a bf16
// graph a value's gradient has the value's type, so one backward meets any mix of f32 and bf16 gradients (dOut,
// dx, dq, dk, dv each on its own). A flag per operand serves every mix with one kernel: the flag is the same for
// the whole grid, so the branch never diverges, where templates would instantiate every kernel 2^n times (the
// attention backward's large tensor-core kernels included) for no speed the memory-bound loops could show.
// A bf16 gradient is read as its exact f32 value and written rounded once to nearest even (mdt::store_out), so a
// kernel gives bit for bit its f32 results on the upcast, and the f32 results converted.
#ifndef MDT_GRAD_OPERAND_CUH
#define MDT_GRAD_OPERAND_CUH

#include "common.cuh"

namespace mdt {

/** An incoming gradient: f32, or bf16 bits (uint16_t). */
struct GradIn {
    const void *data;
    bool bf16;
    __device__ __forceinline__ float operator[](int64_t i) const {
        return bf16 ? load_as_float(static_cast<const uint16_t *>(data), i) : static_cast<const float *>(data)[i];
    }
};

/** A gradient output: f32, or bf16 bits (uint16_t) rounded once from the f32 result. */
struct GradOut {
    void *data;
    bool bf16;
    __device__ __forceinline__ void store(int64_t i, float value) const {
        if (bf16) {
            store_out(static_cast<uint16_t *>(data), i, value);
        } else {
            static_cast<float *>(data)[i] = value;
        }
    }
};

/** Bit {@code operand} of a _bf16grad entry's bf16_grads mask: whether that gradient operand is bf16. */
inline bool bf16_grad(int bf16_grads, int operand) { return ((bf16_grads >> operand) & 1) != 0; }

inline GradIn grad_in(const void *data, int bf16_grads, int operand) {
    return GradIn{data, bf16_grad(bf16_grads, operand)};
}

inline GradOut grad_out(void *data, int bf16_grads, int operand) {
    return GradOut{data, bf16_grad(bf16_grads, operand)};
}

/** Whether bf16_grads names only the entry's first {@code operands} gradient operands. */
inline bool valid_grads(int bf16_grads, int operands) { return bf16_grads >= 0 && (bf16_grads >> operands) == 0; }

/** Bytes of one element of a gradient operand. */
inline size_t grad_bytes(int bf16_grads, int operand) { return bf16_grad(bf16_grads, operand) ? 2 : 4; }

}  // namespace mdt

#endif
