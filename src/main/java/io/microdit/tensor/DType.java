package io.microdit.tensor;

/** Element types a tensor can hold. Compute is F32 (accumulation always in F32 or wider); BF16 is a storage type. */
public enum DType {
    F32(4, "F32"),
    BF16(2, "BF16"),
    I32(4, "I32");

    private final int byteSize;
    private final String safetensorsName;

    DType(int byteSize, String safetensorsName) {
        this.byteSize = byteSize;
        this.safetensorsName = safetensorsName;
    }

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

    public static float bf16ToFloat(short value) {
        return Float.intBitsToFloat((value & 0xffff) << 16);
    }
}
