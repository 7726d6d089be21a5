package io.microdit.backend.cpu;

import io.microdit.backend.Checks;
import io.microdit.backend.FlopCounter;
import io.microdit.tensor.DType;
import io.microdit.tensor.Tensor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * GELU (exact erf form and PyTorch's tanh approximation), SiLU and the SwiGLU gate, forward and backward, with
 * analytic derivatives. One memory-bound pass over contiguous element ranges per thread, Vector API lanes with
 * a scalar tail that uses the same formulas.
 *
 * <p>Every sigmoid-shaped factor is written with one exponential: the tanh GELU is
 * 0.5·x·(1 + tanh z) = x·σ(2z), SiLU is x·σ(x), σ(u) = 1/(1 + e^(−u)); for a very negative u the exponential
 * overflows to +∞ and σ becomes 0 exactly, the correct limit. The derivatives need 1 − σ, which is formed as
 * e^(−u)·σ rather than by a subtraction that would cancel where σ is near 1.
 *
 * <p>Java has no erf, so {@link #erf(float)} is our own approximation, accurate to 1e-7 absolute over the
 * whole float range (checked in the tests against a float64 series): for |x| &lt; 1, erf(x) = x + x·Q(x²)
 * with Q of degree 6; for |x| ≥ 1, erf(|x|) = 1 − e^(−x²)·R(t), t = 1/(1 + |x|/2), R of degree 5, |x| clamped
 * to 4 (beyond, erf rounds to ±1 in float). The coefficients were fitted (weighted least squares iterated
 * towards minimax) to the absolute error of erf, with the evaluation in float; writing the small branch as
 * x + x·Q keeps the float rounding of the leading term out of the result.
 *
 * <p>GELU and the SwiGLU gate may write a BF16 output (for an output only bf16 matrix products read): the F32
 * results rounded as {@link DType#floatToBf16} rounds, bit for bit the F32 op followed by convert. GELU's x and the
 * gate's a and b may be BF16 (outputs of bf16 linear layers), forward and backward: loaded as their exact floats
 * ({@link VectorMath#load}), so the results are those for the F32 upcast, bit for bit.
 *
 * <p>FLOPs per element (a multiply-add is 2, an exponential or division counted as one): GELU exact ~30,
 * GELU tanh ~10, SiLU ~4, SwiGLU gate ~5; the backwards a few more.
 */
final class CpuActivations {
    private static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;
    private static final int LANES = SPECIES.length();
    private static final ByteOrder ORDER = ByteOrder.nativeOrder();
    private static final ValueLayout.OfFloat F = ValueLayout.JAVA_FLOAT;
    private static final int MIN_CHUNK = 1 << 14;
    /** Elements per block of the exact GELU backward's two passes: its erf values (4 KiB) stay in L1. */
    private static final int SLOPE_BLOCK = 1024;
    private static final ThreadLocal<float[]> SLOPE_ERFS = ThreadLocal.withInitial(() -> new float[SLOPE_BLOCK]);
    private static final FloatVector ONE = FloatVector.broadcast(SPECIES, 1f);
    /** e^80 ≈ 5.5e34: large enough that σ(−80) is 0 to float precision, small enough that e·σ stays finite. */
    private static final float EXPONENT_CAP = 80f;

    private static final float SQRT_HALF = 0.70710678118654752f;
    /** 1/√(2π), the standard normal density at 0. */
    private static final float INV_SQRT_2PI = 0.39894228040143268f;
    /** √(2/π) and the cubic coefficient of PyTorch's tanh GELU. */
    private static final float SQRT_2_OVER_PI = 0.79788456080286536f;
    private static final float GELU_CUBIC = 0.044715f;
    /** −2√(2/π) and −2√(2/π)·0.044715: the exponent of σ(2z) is x·(A + B·x²). */
    private static final float TANH_EXPONENT_LINEAR = -2 * SQRT_2_OVER_PI;
    private static final float TANH_EXPONENT_CUBIC = -2 * SQRT_2_OVER_PI * GELU_CUBIC;
    /** d z/dx = √(2/π)·(1 + 3·0.044715·x²), times the 2 of σ'(2z)·2: 2√(2/π) and 6·0.044715·√(2/π). */
    private static final float TANH_SLOPE_LINEAR = 2 * SQRT_2_OVER_PI;
    private static final float TANH_SLOPE_CUBIC = 6 * GELU_CUBIC * SQRT_2_OVER_PI;

    /** erf(x) = x + x·Q(x²) for |x| &lt; 1, Q's coefficients from the constant term up. */
    private static final float[] ERF_SMALL = {
        1.283791512e-01f, -3.761260509e-01f, 1.128343046e-01f, -2.684859186e-02f, 5.179749336e-03f,
        -7.942356169e-04f, 7.647117309e-05f};
    /** erfc(x) = e^(−x²)·R(1/(1 + x/2)) for 1 ≤ x ≤ 4, R's coefficients from the constant term up. */
    private static final float[] ERFC_LARGE = {
        1.822476508e-03f, 2.597006559e-01f, 3.968019187e-01f, -6.446035951e-02f, 6.366797686e-01f,
        -2.308015972e-01f};
    private static final float ERF_CLAMP = 4f;

    /**
     * The vector kernels' constants as vectors: a lane operation with a float operand inlines a broadcast as deep
     * as the operation, and the exact GELU's loops (erf and two exponentials) ran past C2's inlining node budget;
     * each call C2 then left out took vectors, so it boxed them and the Vector API ran its allocating Java
     * fallback (the backward at 6-8 ns an element). The values and the operations are the float ones, so the
     * results are the same bits.
     */
    private static final FloatVector ZERO = FloatVector.zero(SPECIES);
    private static final FloatVector HALF = FloatVector.broadcast(SPECIES, 0.5f);
    private static final FloatVector MINUS_HALF = FloatVector.broadcast(SPECIES, -0.5f);
    private static final FloatVector EXPONENT_CAP_VECTOR = FloatVector.broadcast(SPECIES, EXPONENT_CAP);
    private static final FloatVector SQRT_HALF_VECTOR = FloatVector.broadcast(SPECIES, SQRT_HALF);
    private static final FloatVector INV_SQRT_2PI_VECTOR = FloatVector.broadcast(SPECIES, INV_SQRT_2PI);
    private static final FloatVector TANH_EXPONENT_LINEAR_VECTOR = FloatVector.broadcast(SPECIES, TANH_EXPONENT_LINEAR);
    private static final FloatVector TANH_EXPONENT_CUBIC_VECTOR = FloatVector.broadcast(SPECIES, TANH_EXPONENT_CUBIC);
    private static final FloatVector TANH_SLOPE_LINEAR_VECTOR = FloatVector.broadcast(SPECIES, TANH_SLOPE_LINEAR);
    private static final FloatVector TANH_SLOPE_CUBIC_VECTOR = FloatVector.broadcast(SPECIES, TANH_SLOPE_CUBIC);
    private static final FloatVector ERF_CLAMP_VECTOR = FloatVector.broadcast(SPECIES, ERF_CLAMP);
    private static final FloatVector ERF_SMALL_0 = FloatVector.broadcast(SPECIES, ERF_SMALL[0]);
    private static final FloatVector ERF_SMALL_1 = FloatVector.broadcast(SPECIES, ERF_SMALL[1]);
    private static final FloatVector ERF_SMALL_2 = FloatVector.broadcast(SPECIES, ERF_SMALL[2]);
    private static final FloatVector ERF_SMALL_3 = FloatVector.broadcast(SPECIES, ERF_SMALL[3]);
    private static final FloatVector ERF_SMALL_4 = FloatVector.broadcast(SPECIES, ERF_SMALL[4]);
    private static final FloatVector ERF_SMALL_5 = FloatVector.broadcast(SPECIES, ERF_SMALL[5]);
    private static final FloatVector ERF_SMALL_6 = FloatVector.broadcast(SPECIES, ERF_SMALL[6]);
    private static final FloatVector ERFC_LARGE_0 = FloatVector.broadcast(SPECIES, ERFC_LARGE[0]);
    private static final FloatVector ERFC_LARGE_1 = FloatVector.broadcast(SPECIES, ERFC_LARGE[1]);
    private static final FloatVector ERFC_LARGE_2 = FloatVector.broadcast(SPECIES, ERFC_LARGE[2]);
    private static final FloatVector ERFC_LARGE_3 = FloatVector.broadcast(SPECIES, ERFC_LARGE[3]);
    private static final FloatVector ERFC_LARGE_4 = FloatVector.broadcast(SPECIES, ERFC_LARGE[4]);
    private static final FloatVector ERFC_LARGE_5 = FloatVector.broadcast(SPECIES, ERFC_LARGE[5]);

    private final Parallel parallel;
    private final FlopCounter flops;

    CpuActivations(Parallel parallel, FlopCounter flops) {
        this.parallel = parallel;
        this.flops = flops;
    }

    void gelu(Tensor x, Tensor out, boolean tanhApproximation) {
        Checks.gelu(x, out);
        MemorySegment xs = x.segment(), os = out.segment();
        boolean bf16In = x.dtype() == DType.BF16, bf16 = out.dtype() == DType.BF16;
        // One loop per form: a choice between two vector results inside the loop is a merge that C2 boxes.
        parallel.forRange(Math.toIntExact(x.numel()), MIN_CHUNK, tanhApproximation
                ? (start, end) -> geluTanhRange(xs, bf16In, os, bf16, start, end)
                : (start, end) -> geluExactRange(xs, bf16In, os, bf16, start, end));
        countGelu(x.numel(), tanhApproximation);
    }

    /** Counts {@link #gelu}'s FLOPs for {@code elements}: for a GEMM epilogue that runs the range kernels itself. */
    void countGelu(long elements, boolean tanhApproximation) {
        flops.add("gelu", (tanhApproximation ? 10L : 30L) * elements);
    }

    /** out[i] = gelu(x[i]) for start ≤ i &lt; end, the tanh form. */
    static void geluTanhRange(MemorySegment xs, boolean bf16In, MemorySegment os, boolean bf16, int start, int end) {
        int i = start;
        for (; i <= end - LANES; i += LANES) {
            store(geluTanh(VectorMath.load(xs, i, bf16In)), os, bf16, i);
        }
        for (; i < end; i++) {
            store(geluTanh(VectorMath.loadOne(xs, i, bf16In)), os, bf16, i);
        }
    }

    /** out[i] = gelu(x[i]) for start ≤ i &lt; end, the exact (erf) form. */
    static void geluExactRange(MemorySegment xs, boolean bf16In, MemorySegment os, boolean bf16, int start,
                               int end) {
        int i = start;
        for (; i <= end - LANES; i += LANES) {
            // geluExact and store written out, as in the backward: through the two extra calls that take a
            // vector, C2's inlining of erf and exp fell short in the training step, and the lanes ran the
            // Vector API's allocating fallback. The same operations in the same order, so the same bits.
            FloatVector v = VectorMath.load(xs, i, bf16In);
            FloatVector y = erf(v.mul(SQRT_HALF_VECTOR)).add(ONE).mul(v).mul(HALF);
            if (bf16) {
                VectorMath.intoBf16(y, os, i);
            } else {
                y.intoMemorySegment(os, i * 4L, ORDER);
            }
        }
        for (; i < end; i++) {
            store(geluExact(VectorMath.loadOne(xs, i, bf16In)), os, bf16, i);
        }
    }

    void geluBackward(Tensor dOut, Tensor x, Tensor dx, boolean tanhApproximation) {
        Checks.geluBackward(dOut, x, dx);
        if (Bf16Operands.any(dOut, dx)) {
            Bf16Operands.run(g -> geluBackward(g.in(dOut), x, g.out(dx), tanhApproximation));
            return;
        }
        MemorySegment gs = dOut.segment(), xs = x.segment(), dxs = dx.segment();
        boolean bf16In = x.dtype() == DType.BF16;
        // One loop per form, as in gelu.
        parallel.forRange(Math.toIntExact(x.numel()), MIN_CHUNK, tanhApproximation
                ? (start, end) -> geluTanhBackwardRange(gs, xs, bf16In, dxs, start, end)
                : (start, end) -> geluExactBackwardRange(gs, xs, bf16In, dxs, start, end));
        countGeluBackward(x.numel(), tanhApproximation);
    }

    /** Counts {@link #geluBackward}'s FLOPs for {@code elements}. */
    void countGeluBackward(long elements, boolean tanhApproximation) {
        flops.add("geluBackward", (tanhApproximation ? 16L : 36L) * elements);
    }

    /**
     * dx[i] = gelu'(x[i])·dOut[i] for start ≤ i &lt; end, the tanh form; dx may be dOut itself (each element is
     * read before it is written).
     */
    static void geluTanhBackwardRange(MemorySegment gs, MemorySegment xs, boolean bf16In, MemorySegment dxs,
                                      int start, int end) {
        int i = start;
        for (; i <= end - LANES; i += LANES) {
            geluTanhSlope(VectorMath.load(xs, i, bf16In))
                    .mul(FloatVector.fromMemorySegment(SPECIES, gs, i * 4L, ORDER))
                    .intoMemorySegment(dxs, i * 4L, ORDER);
        }
        for (; i < end; i++) {
            dxs.setAtIndex(F, i, geluTanhSlope(VectorMath.loadOne(xs, i, bf16In)) * gs.getAtIndex(F, i));
        }
    }

    /**
     * dx[i] = gelu'(x[i])·dOut[i] for start ≤ i &lt; end, the exact form; dx may be dOut itself.
     *
     * <p>Two passes per block, each a method of its own. The whole slope in one loop (erf with its exponential,
     * the density's exponential, loads of either dtype) ran past C2's inlining budget (NodeCountInliningCutoff),
     * and the calls it left out took vectors, so they were boxed and ran the Vector API's allocating fallback:
     * 8-15 ns an element instead of about one. erf's values pass through a float[] unchanged, and the blocks are
     * whole vectors, so the bits are the same.
     */
    static void geluExactBackwardRange(MemorySegment gs, MemorySegment xs, boolean bf16In, MemorySegment dxs,
                                       int start, int end) {
        float[] erfs = SLOPE_ERFS.get();
        for (int block = start; block < end; block += SLOPE_BLOCK) {
            int blockEnd = Math.min(end, block + SLOPE_BLOCK);
            erfOfScaled(xs, bf16In, block, blockEnd, erfs);
            exactSlopeTimes(xs, bf16In, gs, dxs, block, blockEnd, erfs);
        }
    }

    /** {@code erfs[i − start] = erf(x[i]/√2)} for start ≤ i &lt; end. */
    private static void erfOfScaled(MemorySegment xs, boolean bf16In, int start, int end, float[] erfs) {
        int i = start;
        for (; i <= end - LANES; i += LANES) {
            erf(VectorMath.load(xs, i, bf16In).mul(SQRT_HALF_VECTOR)).intoArray(erfs, i - start);
        }
        for (; i < end; i++) {
            erfs[i - start] = erf(VectorMath.loadOne(xs, i, bf16In) * SQRT_HALF);
        }
    }

    /**
     * {@code dx[i] = (Φ(x) + x·φ(x))·dOut[i]} for start ≤ i &lt; end, Φ(x) = 0.5·(1 + erf(x/√2)) with erf(x/√2)
     * from {@code erfs} and φ(x) = e^(−x²/2)/√(2π); the tail's scalar operations are the lanes' (a product and a
     * sum, no fused multiply-add), so every element gets the same bits either way.
     */
    private static void exactSlopeTimes(MemorySegment xs, boolean bf16In, MemorySegment gs, MemorySegment dxs,
                                        int start, int end, float[] erfs) {
        int i = start;
        for (; i <= end - LANES; i += LANES) {
            FloatVector v = VectorMath.load(xs, i, bf16In);
            FloatVector density = VectorMath.exp(v.mul(v).mul(MINUS_HALF)).mul(INV_SQRT_2PI_VECTOR);
            FloatVector.fromArray(SPECIES, erfs, i - start).add(ONE).mul(HALF).add(v.mul(density))
                    .mul(FloatVector.fromMemorySegment(SPECIES, gs, i * 4L, ORDER))
                    .intoMemorySegment(dxs, i * 4L, ORDER);
        }
        for (; i < end; i++) {
            float v = VectorMath.loadOne(xs, i, bf16In);
            float density = VectorMath.exp(v * v * -0.5f) * INV_SQRT_2PI;
            dxs.setAtIndex(F, i, ((erfs[i - start] + 1f) * 0.5f + v * density) * gs.getAtIndex(F, i));
        }
    }

    void silu(Tensor x, Tensor out) {
        String op = "silu";
        Checks.sameShapeF32(op, "x", x, "out", out);
        MemorySegment xs = x.segment(), os = out.segment();
        parallel.forRange(Math.toIntExact(x.numel()), MIN_CHUNK, (start, end) -> {
            int i = start;
            for (; i <= end - LANES; i += LANES) {
                FloatVector v = FloatVector.fromMemorySegment(SPECIES, xs, i * 4L, ORDER);
                v.mul(sigmoid(v)).intoMemorySegment(os, i * 4L, ORDER);
            }
            for (; i < end; i++) {
                float v = xs.getAtIndex(F, i);
                os.setAtIndex(F, i, v * sigmoid(v));
            }
        });
        flops.add(op, 4 * x.numel());
    }

    void siluBackward(Tensor dOut, Tensor x, Tensor dx) {
        String op = "siluBackward";
        Checks.pointwiseBackward(op, dOut, x, dx);
        MemorySegment gs = dOut.segment(), xs = x.segment(), dxs = dx.segment();
        parallel.forRange(Math.toIntExact(x.numel()), MIN_CHUNK, (start, end) -> {
            int i = start;
            for (; i <= end - LANES; i += LANES) {
                FloatVector v = FloatVector.fromMemorySegment(SPECIES, xs, i * 4L, ORDER);
                siluSlope(v, cappedExp(v.neg())).mul(FloatVector.fromMemorySegment(SPECIES, gs, i * 4L, ORDER))
                        .intoMemorySegment(dxs, i * 4L, ORDER);
            }
            for (; i < end; i++) {
                float v = xs.getAtIndex(F, i);
                dxs.setAtIndex(F, i, siluSlope(v, cappedExp(-v)) * gs.getAtIndex(F, i));
            }
        });
        flops.add(op, 8 * x.numel());
    }

    void swigluGate(Tensor a, Tensor b, Tensor out) {
        Checks.swigluGate(a, b, out);
        MemorySegment as = a.segment(), bs = b.segment(), os = out.segment();
        boolean bf16In = a.dtype() == DType.BF16, bf16 = out.dtype() == DType.BF16;
        parallel.forRange(Math.toIntExact(a.numel()), MIN_CHUNK,
                (start, end) -> swigluGateRange(as, bs, bf16In, os, bf16, start, end));
        countSwigluGate(a.numel());
    }

    /** Counts {@link #swigluGate}'s FLOPs for {@code elements}. */
    void countSwigluGate(long elements) {
        flops.add("swigluGate", 5 * elements);
    }

    /** out[i] = silu(a[i])·b[i] for start ≤ i &lt; end. */
    static void swigluGateRange(MemorySegment as, MemorySegment bs, boolean bf16In, MemorySegment os, boolean bf16,
                                int start, int end) {
        int i = start;
        for (; i <= end - LANES; i += LANES) {
            FloatVector va = VectorMath.load(as, i, bf16In);
            FloatVector vb = VectorMath.load(bs, i, bf16In);
            store(va.mul(sigmoid(va)).mul(vb), os, bf16, i);
        }
        for (; i < end; i++) {
            float va = VectorMath.loadOne(as, i, bf16In);
            store(va * sigmoid(va) * VectorMath.loadOne(bs, i, bf16In), os, bf16, i);
        }
    }

    void swigluGateBackward(Tensor dOut, Tensor a, Tensor b, Tensor da, Tensor db) {
        Checks.swigluGateBackward(dOut, a, b, da, db);
        if (Bf16Operands.any(dOut, da)) {
            Bf16Operands.run(g -> swigluGateBackward(g.in(dOut), a, b, g.out(da), g.out(db)));
            return;
        }
        MemorySegment gs = dOut.segment(), as = a.segment(), bs = b.segment(), das = da.segment(),
                dbs = db.segment();
        boolean bf16In = a.dtype() == DType.BF16;
        parallel.forRange(Math.toIntExact(a.numel()), MIN_CHUNK,
                (start, end) -> swigluGateBackwardRange(gs, as, bs, bf16In, das, dbs, start, end));
        countSwigluGateBackward(a.numel());
    }

    /** Counts {@link #swigluGateBackward}'s FLOPs for {@code elements}. */
    void countSwigluGateBackward(long elements) {
        flops.add("swigluGateBackward", 10 * elements);
    }

    /**
     * da[i] = dOut[i]·b[i]·silu'(a[i]) and db[i] = dOut[i]·silu(a[i]) for start ≤ i &lt; end; db may be dOut itself
     * (each element of dOut is read before either is written).
     */
    static void swigluGateBackwardRange(MemorySegment gs, MemorySegment as, MemorySegment bs, boolean bf16In,
                                        MemorySegment das, MemorySegment dbs, int start, int end) {
        int i = start;
        for (; i <= end - LANES; i += LANES) {
            FloatVector g = FloatVector.fromMemorySegment(SPECIES, gs, i * 4L, ORDER);
            FloatVector va = VectorMath.load(as, i, bf16In);
            FloatVector vb = VectorMath.load(bs, i, bf16In);
            FloatVector e = cappedExp(va.neg());
            g.mul(va).div(e.add(ONE)).intoMemorySegment(dbs, i * 4L, ORDER);
            g.mul(vb).mul(siluSlope(va, e)).intoMemorySegment(das, i * 4L, ORDER);
        }
        for (; i < end; i++) {
            float g = gs.getAtIndex(F, i);
            float va = VectorMath.loadOne(as, i, bf16In), vb = VectorMath.loadOne(bs, i, bf16In);
            float e = cappedExp(-va);
            dbs.setAtIndex(F, i, g * va / (1f + e));
            das.setAtIndex(F, i, g * vb * siluSlope(va, e));
        }
    }

    // ---------------------------------------------------------------- lane formulas (vector and scalar)

    private static FloatVector sigmoid(FloatVector u) {
        return ONE.div(VectorMath.exp(u.neg()).add(ONE));
    }

    private static float sigmoid(float u) {
        return 1f / (1f + VectorMath.exp(-u));
    }

    /**
     * e^u for the slope formulas, with u capped at 80 so that e·σ stays finite: σ = 1/(1 + e) and 1 − σ = e·σ.
     * Forming 1 − σ as e·σ instead of by subtraction keeps it accurate where σ is close to 1.
     */
    private static FloatVector cappedExp(FloatVector u) {
        return VectorMath.exp(VectorMath.atMost(u, EXPONENT_CAP_VECTOR));
    }

    private static float cappedExp(float u) {
        return VectorMath.exp(Math.min(u, EXPONENT_CAP));
    }

    /** d/dx x·σ(x) = σ·(1 + x·(1 − σ)), given e = e^(−x). */
    private static FloatVector siluSlope(FloatVector x, FloatVector e) {
        FloatVector s = ONE.div(e.add(ONE));
        return x.mul(e).mul(s).add(ONE).mul(s);
    }

    private static float siluSlope(float x, float e) {
        float s = 1f / (1f + e);
        return s * (1f + x * e * s);
    }

    /** Element i onwards of an F32 output, or of a BF16 one rounded as convert rounds (F32 op then convert). */
    private static void store(FloatVector v, MemorySegment out, boolean bf16, int i) {
        if (bf16) {
            VectorMath.intoBf16(v, out, i);
        } else {
            v.intoMemorySegment(out, i * 4L, ORDER);
        }
    }

    private static void store(float v, MemorySegment out, boolean bf16, int i) {
        if (bf16) {
            VectorMath.intoBf16(v, out, i);
        } else {
            out.setAtIndex(F, i, v);
        }
    }

    /** 0.5·x·(1 + tanh z) with z = √(2/π)(x + 0.044715x³), as x·σ(2z). */
    private static FloatVector geluTanh(FloatVector x) {
        FloatVector exponent = x.mul(x).fma(TANH_EXPONENT_CUBIC_VECTOR, TANH_EXPONENT_LINEAR_VECTOR).mul(x);
        return x.div(VectorMath.exp(exponent).add(ONE));
    }

    private static float geluTanh(float x) {
        float exponent = Math.fma(x * x, TANH_EXPONENT_CUBIC, TANH_EXPONENT_LINEAR) * x;
        return x / (1f + VectorMath.exp(exponent));
    }

    /** With s = σ(2z) and 1 − s = e·s, e = e^(−2z): d/dx = s + x·s(1 − s)·2√(2/π)(1 + 3·0.044715x²). */
    private static FloatVector geluTanhSlope(FloatVector x) {
        FloatVector x2 = x.mul(x);
        FloatVector e = cappedExp(x2.fma(TANH_EXPONENT_CUBIC_VECTOR, TANH_EXPONENT_LINEAR_VECTOR).mul(x));
        FloatVector s = ONE.div(e.add(ONE));
        FloatVector dz = x2.fma(TANH_SLOPE_CUBIC_VECTOR, TANH_SLOPE_LINEAR_VECTOR);
        return x.mul(s).mul(e.mul(s)).fma(dz, s);
    }

    private static float geluTanhSlope(float x) {
        float x2 = x * x;
        float e = cappedExp(Math.fma(x2, TANH_EXPONENT_CUBIC, TANH_EXPONENT_LINEAR) * x);
        float s = 1f / (1f + e);
        float dz = Math.fma(x2, TANH_SLOPE_CUBIC, TANH_SLOPE_LINEAR);
        return Math.fma(x * s * (e * s), dz, s);
    }

    /** 0.5·x·(1 + erf(x/√2)). */
    private static float geluExact(float x) {
        return 0.5f * x * (1f + erf(x * SQRT_HALF));
    }

    /**
     * The error function to 1e-7 absolute, lane by lane; see the class comment. Both forms are computed and
     * blended, without a branch on the lanes: a branch rarely taken (every lane small) became an uncommon trap
     * that deoptimised the GELU loops in the middle of a run, and no vector variable is ever null (C2 boxes
     * one that may be, and the Vector API then runs its allocating Java fallback).
     */
    static FloatVector erf(FloatVector x) {
        FloatVector ax = x.abs();
        VectorMask<Float> small = ax.compare(VectorOperators.LT, ONE);
        FloatVector smallResult = erfSmallPolynomial(x.mul(x)).fma(x, x);
        FloatVector clamped = VectorMath.atMost(ax, ERF_CLAMP_VECTOR);
        FloatVector t = ONE.div(clamped.fma(HALF, ONE));
        FloatVector tail = VectorMath.exp(clamped.mul(clamped).neg()).mul(erfcLargePolynomial(t));
        FloatVector large = tail.neg().add(ONE);
        return large.blend(large.neg(), x.compare(VectorOperators.LT, ZERO)).blend(smallResult, small);
    }

    static float erf(float x) {
        float ax = Math.abs(x);
        if (ax < 1f) {
            return Math.fma(polynomial(ERF_SMALL, x * x), x, x);
        }
        float clamped = Math.min(ax, ERF_CLAMP);
        float t = 1f / Math.fma(clamped, 0.5f, 1f);
        float large = 1f - VectorMath.exp(-(clamped * clamped)) * polynomial(ERFC_LARGE, t);
        return x < 0 ? -large : large;
    }

    /** Q(t) of {@link #ERF_SMALL} by Horner's rule, as {@link #polynomial(float[], float)} evaluates it. */
    private static FloatVector erfSmallPolynomial(FloatVector t) {
        return ERF_SMALL_6.fma(t, ERF_SMALL_5).fma(t, ERF_SMALL_4).fma(t, ERF_SMALL_3).fma(t, ERF_SMALL_2)
                .fma(t, ERF_SMALL_1).fma(t, ERF_SMALL_0);
    }

    /** R(t) of {@link #ERFC_LARGE} by Horner's rule. */
    private static FloatVector erfcLargePolynomial(FloatVector t) {
        return ERFC_LARGE_5.fma(t, ERFC_LARGE_4).fma(t, ERFC_LARGE_3).fma(t, ERFC_LARGE_2).fma(t, ERFC_LARGE_1)
                .fma(t, ERFC_LARGE_0);
    }

    private static float polynomial(float[] coefficients, float t) {
        float acc = coefficients[coefficients.length - 1];
        for (int k = coefficients.length - 2; k >= 0; k--) {
            acc = Math.fma(acc, t, coefficients[k]);
        }
        return acc;
    }
}
