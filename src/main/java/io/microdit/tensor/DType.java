package io.microdit.tensor;

/** Element types a tensor can hold. Compute is F32 (accumulation always in F32 or wider); BF16 is a storage type. */
public enum DType {
    /** 32-bit IEEE float: the type of compute and of every accumulation. */
    F32(4, "F32"),
    /**
     * bfloat16 (F32's sign, exponent and upper 7 mantissa bits), stored as raw {@code short} bits; read and written as
     * float through {@link #bf16ToFloat} and {@link #floatToBf16}.
     */
    BF16(2, "BF16"),
    /** 32-bit signed integer: token indices, class labels, expert routing. */
    I32(4, "I32");

    private final int byteSize;
    private final String safetensorsName;

    DType(int byteSize, String safetensorsName) {
        this.byteSize = byteSize;
        this.safetensorsName = safetensorsName;
    }

    /** Bytes per element. */
    public int byteSize() {
        return byteSize;
    }

    /** The dtype's name in the safetensors header. */
    public String safetensorsName() {
        return safetensorsName;
    }

    /** Round-to-nearest-even conversion, the same as CUDA's __float2bfloat16_rn; NaN stays NaN. */
    public static short floatToBf16(float value) {
        int bits = Float.floatToRawIntBits(value);
        if ((bits & 0x7fffffff) > 0x7f800000) {
            return (short) ((bits >>> 16) | 0x40);
        }
        int rounding = 0x7fff + ((bits >>> 16) & 1);
        return (short) ((bits + rounding) >>> 16);
    }

    /** Widens bf16 bits to the float they denote, exactly (every bf16 is a float). */
    public static float bf16ToFloat(short value) {
        return Float.intBitsToFloat((value & 0xffff) << 16);
    }
}
