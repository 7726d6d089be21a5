package io.microdit.backend.cpu;

import io.microdit.tensor.DType;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * Reproducible vector maths for the CPU kernels. The Vector API's own transcendental lanewise operators (EXP,
 * TANH, …) and {@code reduceLanes(ADD)} compute differently when a kernel is interpreted and when C2 has compiled
 * it to SVML calls or a reassociated reduction, so a training step could give other bits before and after the JIT
 * warmed up, which breaks bit-exact resume. These functions use only IEEE adds, multiplies, fused multiply-adds
 * and bit manipulation, which round identically in every execution mode; each vector function has a scalar twin
 * that is bit-identical lane by lane, for the tails.
 */
final class VectorMath {
    static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;
    private static final int LANES = SPECIES.length();
    private static final VectorSpecies<Integer> INT_SPECIES =
            VectorSpecies.of(int.class, VectorShape.forBitSize(SPECIES.vectorBitSize()));
    /** Same lane count as {@link #INT_SPECIES}: one bf16 per float. */
    private static final VectorSpecies<Short> SHORT_SPECIES =
            VectorSpecies.of(short.class, VectorShape.forBitSize(SPECIES.vectorBitSize() / 2));
    private static final ByteOrder ORDER = ByteOrder.nativeOrder();
    private static final ValueLayout.OfShort BF16 = ValueLayout.JAVA_SHORT;

    private static final float LOG2E = 1.44269504088896341f;
    /** ln 2 split so that n·LN2_HIGH is exact for every n the reduction produces. */
    private static final float LN2_HIGH = 0.693359375f;
    private static final float LN2_LOW = -2.12194440e-4f;
    /** ln(Float.MIN_NORMAL): below it exp underflows and is taken as 0. */
    static final float UNDERFLOW = -87.33654475f;
    /** exp is evaluated at most at 88 (e^88 ≈ 1.65e38, below Float.MAX_VALUE); larger arguments are clamped. */
    static final float OVERFLOW_CLAMP = 88f;
    /** 1.5·2²³: adding it rounds to an integer, which then sits in the low mantissa bits. */
    private static final float ROUNDER = 12582912f;
    private static final int ROUNDER_BITS = 0x4B400000;
    private static final float P0 = 1.9875691500e-4f;
    private static final float P1 = 1.3981999507e-3f;
    private static final float P2 = 8.3334519073e-3f;
    private static final float P3 = 4.1665795894e-2f;
    private static final float P4 = 1.6666665459e-1f;
    private static final float P5 = 5.0000001201e-1f;
    /**
     * The constants of {@link #exp(FloatVector)} as vectors. A lane operation with a float operand inlines a
     * broadcast as deep as the operation itself, and C2 stops inlining a compilation unit at a node budget: the
     * GELU loops (erf and two exponentials) ran past it, and each call left out took vectors, so C2 boxed them
     * and the Vector API ran its allocating Java fallback. Static vector constants cost no broadcast.
     */
    private static final FloatVector V_UNDERFLOW = FloatVector.broadcast(SPECIES, UNDERFLOW);
    private static final FloatVector V_OVERFLOW_CLAMP = FloatVector.broadcast(SPECIES, OVERFLOW_CLAMP);
    private static final FloatVector V_LOG2E = FloatVector.broadcast(SPECIES, LOG2E);
    private static final FloatVector V_ROUNDER = FloatVector.broadcast(SPECIES, ROUNDER);
    private static final FloatVector V_MINUS_LN2_HIGH = FloatVector.broadcast(SPECIES, -LN2_HIGH);
    private static final FloatVector V_MINUS_LN2_LOW = FloatVector.broadcast(SPECIES, -LN2_LOW);
    private static final FloatVector V_P0 = FloatVector.broadcast(SPECIES, P0);
    private static final FloatVector V_P1 = FloatVector.broadcast(SPECIES, P1);
    private static final FloatVector V_P2 = FloatVector.broadcast(SPECIES, P2);
    private static final FloatVector V_P3 = FloatVector.broadcast(SPECIES, P3);
    private static final FloatVector V_P4 = FloatVector.broadcast(SPECIES, P4);
    private static final FloatVector V_P5 = FloatVector.broadcast(SPECIES, P5);
    private static final FloatVector V_ONE = FloatVector.broadcast(SPECIES, 1f);
    private static final FloatVector V_ZERO = FloatVector.zero(SPECIES);
    private static final IntVector V_EXPONENT_SHIFT = IntVector.broadcast(INT_SPECIES, ROUNDER_BITS - 127);

    private VectorMath() {
    }

    /**
     * exp(x) to about 1 ulp (Cephes' expf): x = n·ln2 + r with |r| ≤ ln2/2, n rounded to nearest by the 1.5·2²³
     * trick; exp(r) by a degree-6 polynomial; 2ⁿ assembled in the exponent bits. 0 below ln(Float.MIN_NORMAL);
     * arguments above 88 are clamped to 88; NaN stays NaN.
     */
    static FloatVector exp(FloatVector x) {
        // Clamped by compares and blends rather than max and min (see atMost): the same values, fewer instructions.
        VectorMask<Float> underflow = x.lt(V_UNDERFLOW);
        FloatVector clamped = atMost(x.blend(V_UNDERFLOW, underflow), V_OVERFLOW_CLAMP);
        FloatVector shifted = clamped.fma(V_LOG2E, V_ROUNDER);
        FloatVector n = shifted.sub(V_ROUNDER);
        FloatVector r = n.fma(V_MINUS_LN2_HIGH, clamped);
        r = n.fma(V_MINUS_LN2_LOW, r);
        FloatVector p = r.fma(V_P0, V_P1);
        p = p.fma(r, V_P2);
        p = p.fma(r, V_P3);
        p = p.fma(r, V_P4);
        p = p.fma(r, V_P5);
        FloatVector expR = p.fma(r.mul(r), r.add(V_ONE));
        FloatVector twoToN = shifted.reinterpretAsInts().sub(V_EXPONENT_SHIFT)
                .lanewise(VectorOperators.LSHL, 23).reinterpretAsFloats();
        return expR.mul(twoToN).blend(V_ZERO, underflow);
    }

    /**
     * {@code min(x, limit)} lane by lane, for a limit that is a number: a compare and a blend. The Vector API's MIN
     * and MAX follow Math.min and Math.max (NaN wins, −0 below +0), which C2 compiles to about six instructions on
     * AVX-512; against a numeric limit a NaN lane compares false and stays NaN here too, so the results are the same.
     */
    static FloatVector atMost(FloatVector x, FloatVector limit) {
        return x.blend(limit, x.compare(VectorOperators.GT, limit));
    }

    /** The scalar twin of {@link #exp(FloatVector)}: bit-identical per element. */
    static float exp(float x) {
        if (x < UNDERFLOW) {
            return 0f;
        }
        if (Float.isNaN(x)) {
            return x;
        }
        x = Math.min(x, OVERFLOW_CLAMP);
        float shifted = Math.fma(x, LOG2E, ROUNDER);
        float n = shifted - ROUNDER;
        float r = Math.fma(n, -LN2_HIGH, x);
        r = Math.fma(n, -LN2_LOW, r);
        float p = Math.fma(r, P0, P1);
        p = Math.fma(p, r, P2);
        p = Math.fma(p, r, P3);
        p = Math.fma(p, r, P4);
        p = Math.fma(p, r, P5);
        float expR = Math.fma(p, r * r, r + 1f);
        float twoToN = Float.intBitsToFloat((Float.floatToRawIntBits(shifted) - (ROUNDER_BITS - 127)) << 23);
        return expR * twoToN;
    }

    /** The lanes' sum, added in lane order (reproducible, unlike {@code reduceLanes(ADD)}). */
    static float sumLanes(FloatVector v) {
        float sum = 0f;
        for (int lane = 0; lane < LANES; lane++) {
            sum += v.lane(lane);
        }
        return sum;
    }

    /**
     * Stores the lanes of {@code v} as bf16 at element {@code index} of {@code dst}, rounded to nearest even with
     * NaNs kept quiet: bit for bit {@link DType#floatToBf16}, the rounding of every F32 to BF16 conversion.
     */
    static void intoBf16(FloatVector v, MemorySegment dst, long index) {
        bitsIntoBf16(v.reinterpretAsInts(), dst, index);
    }

    /** {@link #intoBf16} of floats given by their bits (as loaded from memory). */
    static void bitsIntoBf16(IntVector bits, MemorySegment dst, long index) {
        IntVector high = bits.lanewise(VectorOperators.LSHR, 16);
        IntVector rounded = bits.add(high.and(1).add(0x7fff)).lanewise(VectorOperators.LSHR, 16);
        VectorMask<Integer> nan = bits.and(0x7fffffff).compare(VectorOperators.GT, 0x7f800000);
        IntVector result = rounded.blend(high.or(0x40), nan);
        result.convertShape(VectorOperators.I2S, SHORT_SPECIES, 0).intoMemorySegment(dst, index * 2L, ORDER);
    }

    /** The scalar twin of {@link #intoBf16}. */
    static void intoBf16(float value, MemorySegment dst, long index) {
        dst.setAtIndex(BF16, index, DType.floatToBf16(value));
    }

    /**
     * The floats at element {@code index} of an F32 tensor's segment, or of a BF16 one's when {@code bf16}: a bf16
     * is the high half of its float's bits, so it widens exactly and an op reading a BF16 input computes on exactly
     * its F32 upcast.
     */
    static FloatVector load(MemorySegment src, long index, boolean bf16) {
        if (!bf16) {
            return FloatVector.fromMemorySegment(SPECIES, src, index * 4L, ORDER);
        }
        ShortVector bits = ShortVector.fromMemorySegment(SHORT_SPECIES, src, index * 2L, ORDER);
        return ((IntVector) bits.convertShape(VectorOperators.S2I, INT_SPECIES, 0))
                .lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
    }

    /** The scalar twin of {@link #load}: one element. */
    static float loadOne(MemorySegment src, long index, boolean bf16) {
        return bf16 ? DType.bf16ToFloat(src.getAtIndex(BF16, index)) : src.getAtIndex(ValueLayout.JAVA_FLOAT, index);
    }
}
