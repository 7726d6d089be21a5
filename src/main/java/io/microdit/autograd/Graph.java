package io.microdit.autograd;

import io.microdit.backend.Backend;
import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Where ops run: a backend, the scope their outputs (and saved activations and gradients) belong to, and — only
 * inside {@link #recordGradients()} — the define-by-run tape. Outside a grad scope nothing is recorded and no
 * activation is kept for a backward. A graph is used by one thread. Its {@link Precision} decides the number
 * format of matrix products; a graph lives for one forward and backward, so the bf16 copy of a weight is made
 * once per graph and reused by every op that reads it.
 */
public final class Graph {
    private record Node(Variable output, BackwardFunction backward) {
    }

    /**
     * Told during a backward that {@code parameters} have received their last gradient contribution of it, with
     * {@code nodesLeft} nodes of the tape still to run (for data-parallel training, which can send those gradients
     * while the backward goes on).
     */
    @FunctionalInterface
    public interface GradientsFinal {
        /** Called on the backward's thread; the parameters' gradients must not be changed here. */
        void reached(List<Parameter> parameters, int nodesLeft);
    }

    private final Backend backend;
    private final MemoryScope scope;
    private final Precision precision;
    private Recomputation recomputation = Recomputation.NONE;
    private final Map<Variable, Tensor> bf16Copies = new IdentityHashMap<>();
    private final Set<Tensor> bf16CopyTensors = Collections.newSetFromMap(new IdentityHashMap<>());
    private List<Node> tape;
    /** Variables of this graph holding a gradient now (the memory a release must not touch). */
    private final Set<Variable> withGradient = Collections.newSetFromMap(new IdentityHashMap<>());
    /** Outputs allocated while one node's backward runs, or null outside one. */
    private List<Tensor> backwardAllocations;
    /** The parameters this graph's ops read, each with the first tape position that reads it (-1: not recorded). */
    private final Map<Parameter, Integer> parameterReads = new LinkedHashMap<>();
    private GradientsFinal gradientsFinal;

    /** An F32 graph whose values live in {@code scope} (closed by the caller after the step). */
    public Graph(Backend backend, MemoryScope scope) {
        this(backend, scope, Precision.F32);
    }

    /** A graph whose matrix products run in {@code precision}, its values in {@code scope}. */
    public Graph(Backend backend, MemoryScope scope, Precision precision) {
        this.backend = backend;
        this.scope = scope;
        this.precision = precision;
    }

    /**
     * What models recompute in the backward instead of keeping ({@link Recomputation}, {@link Recompute}): less
     * memory for more forward FLOPs. {@link Recomputation#NONE} by default.
     */
    public Recomputation recomputation() {
        return recomputation;
    }

    /** Sets {@link #recomputation()}; returns this graph. */
    public Graph recompute(Recomputation mode) {
        this.recomputation = java.util.Objects.requireNonNull(mode, "mode");
        return this;
    }

    /** The number format of this graph's matrix products (see {@link Precision}). */
    public Precision precision() {
        return precision;
    }

    /**
     * The value a matrix product reads for {@code v}: its F32 value, or under {@link Precision#BF16} a bf16 copy
     * in this graph's scope, made on first use and shared by later products of the same variable.
     */
    public Tensor matmulOperand(Variable v) {
        if (precision == Precision.F32 || v.value().dtype() == DType.BF16) {
            return v.value();
        }
        return bf16Copies.computeIfAbsent(v, key -> {
            Tensor copy = toBf16(key.value());
            bf16CopyTensors.add(copy);
            return copy;
        });
    }

    /**
     * Makes {@link #matmulOperand} read these bf16 copies for their parameters instead of converting the values:
     * copies holding convert(value)'s bits now (an optimizer's working copies, written by its last update). Returns
     * this graph.
     */
    public Graph useBf16Copies(Map<Parameter, Tensor> copies) {
        bf16Copies.putAll(copies);
        return this;
    }

    /**
     * Makes {@link #matmulOperand} of {@code v} read {@code copy}, its bf16 copy (convert's bits of its value) that the
     * op which made v stored beside it; kept as long as the graph's own converted operands are.
     */
    public void useMatmulOperand(Variable v, Tensor copy) {
        if (copy.dtype() != DType.BF16 || !java.util.Arrays.equals(copy.shape(), v.shape())) {
            throw new IllegalArgumentException("useMatmulOperand: " + copy.describe() + " is not a BF16 copy of "
                    + v.value().describe());
        }
        bf16Copies.put(v, copy);
        bf16CopyTensors.add(copy);
    }

    /** The parameters whose bf16 operand this graph made by converting (candidates for kept working copies). */
    public List<Parameter> convertedParameters() {
        List<Parameter> converted = new ArrayList<>();
        bf16Copies.forEach((v, copy) -> {
            if (v instanceof Parameter p && bf16CopyTensors.contains(copy)) {
                converted.add(p);
            }
        });
        return converted;
    }

    /**
     * A gradient as a matrix product reads it in the backward: {@code t} itself, or under {@link Precision#BF16}
     * a bf16 copy (fresh each call: gradients are used once).
     */
    public Tensor matmulGradient(Tensor t) {
        return precision == Precision.F32 || t.dtype() == DType.BF16 ? t : toBf16(t);
    }

    /**
     * The dtype for an op's output that only this graph's matrix products read (the input of a linear layer,
     * attention's q and k after QK-norm): BF16 under {@link Precision#BF16}, so the op rounds its F32 result once
     * as it stores it, the very value {@link #matmulOperand} would have made, and no F32 copy is written, kept and
     * converted; F32 otherwise. Only for ops whose backward does not read their output.
     */
    public DType matmulOperandType() {
        return precision == Precision.BF16 ? DType.BF16 : DType.F32;
    }

    /**
     * The storage type of an activation whose readers all take BF16 (matrix products, attention, and the ops that
     * widen a BF16 input exactly): BF16 under {@link Precision#BF16}, so the op that makes it rounds once as it stores
     * it, and the backward keeps half the bytes (PyTorch's autocast keeps such outputs in bf16 too); F32 otherwise.
     * Unlike {@link #matmulOperandType} the backward may read such an output.
     */
    public DType activationType() {
        return precision == Precision.BF16 ? DType.BF16 : DType.F32;
    }

    private Tensor toBf16(Tensor value) {
        Tensor copy = output(DType.BF16, value.shape());
        backend.convert(value, copy);
        return copy;
    }

    /** The backend every op of this graph runs on. */
    public Backend backend() {
        return backend;
    }

    /**
     * Tells {@code listener} in the next backward when each parameter's gradient is final. A parameter's gradient
     * gets contributions only from the backwards of the nodes that read it, and the backward runs the tape in
     * reverse, so it is final once the first node reading it has run; the backward's order and numerics do not
     * change. Parameters no node of the tape reads are not reported.
     */
    public Graph onGradientsFinal(GradientsFinal listener) {
        this.gradientsFinal = listener;
        return this;
    }

    /** The parameters this graph's ops have read so far (recorded or not), in first-read order. */
    public List<Parameter> parametersRead() {
        return List.copyOf(parameterReads.keySet());
    }

    /** The scope this graph's values and gradients are allocated in. */
    public MemoryScope scope() {
        return scope;
    }

    /** Whether ops are being recorded for a backward (inside {@link #recordGradients}). */
    public boolean isRecording() {
        return tape != null;
    }

    /** Starts recording; closing the returned scope stops recording and drops the tape. */
    public GradScope recordGradients() {
        if (tape != null) {
            throw new IllegalStateException("this graph is already recording gradients");
        }
        tape = new ArrayList<>();
        return new GradScope(this);
    }

    void stopRecording() {
        tape = null;
    }

    /** A new F32 tensor of zeros in this graph's scope. */
    public Tensor allocate(int... shape) {
        return allocate(DType.F32, shape);
    }

    /** A new tensor of zeros of {@code dtype} in this graph's scope. */
    public Tensor allocate(DType dtype, int... shape) {
        return noted(Tensor.zeros(scope, dtype, shape));
    }

    /**
     * A new F32 tensor in this graph's scope for an op's output that the op writes in full (not accumulates into):
     * its memory is not zeroed first (tests poison it, see {@link MemoryScope#POISON_UNINITIALIZED}).
     */
    public Tensor output(int... shape) {
        return output(DType.F32, shape);
    }

    /** {@link #output(int...)} of {@code dtype}. */
    public Tensor output(DType dtype, int... shape) {
        return noted(Tensor.empty(scope, dtype, shape));
    }

    /** Inside a node's backward, remembers what it allocates: whatever no gradient holds afterwards is released. */
    private Tensor noted(Tensor t) {
        if (backwardAllocations != null) {
            backwardAllocations.add(t);
        }
        return t;
    }

    void gradientSet(Variable v) {
        withGradient.add(v);
    }

    void gradientCleared(Variable v) {
        withGradient.remove(v);
    }

    /** Wraps a tensor that no gradient flows to (data, masks, fixed embeddings). */
    public Variable constant(Tensor value) {
        return new Variable(value, false, this);
    }

    /** Wraps a tensor as a leaf that receives a gradient (in tests and gradient checks). */
    public Variable leaf(Tensor value) {
        return new Variable(value, true, this);
    }

    /**
     * The output of an op. When recording and some input wants a gradient, the op and its backward are put on
     * the tape; otherwise the result is a constant.
     */
    public Variable result(Tensor value, BackwardFunction backward, Variable... inputs) {
        boolean needsGrad = false;
        if (tape != null) {
            for (Variable input : inputs) {
                needsGrad |= input != null && input.requiresGrad();
            }
        }
        for (Variable input : inputs) {
            if (input instanceof Parameter p) {
                int position = parameterReads.getOrDefault(p, -1);
                parameterReads.put(p, position < 0 && needsGrad ? tape.size() : position);
            }
        }
        Variable out = new Variable(value, needsGrad, this);
        if (needsGrad) {
            tape.add(new Node(out, backward));
        }
        return out;
    }

    /** Back-propagates from a one-element loss, seeding its gradient with 1. */
    public void backward(Variable loss) {
        requireRecording();
        if (loss.value().numel() != 1) {
            throw new IllegalArgumentException("backward() needs a scalar loss, got " + loss.value().describe());
        }
        Tensor seed = output(loss.shape());
        backend.fill(seed, 1f);
        backward(loss, seed);
    }

    /** Back-propagates from {@code output} with the given seed gradient (of the output's shape). */
    public void backward(Variable output, Tensor seed) {
        requireRecording();
        if (!output.requiresGrad()) {
            throw new IllegalStateException("backward() from a variable that depends on no parameter");
        }
        output.addGradShared(seed, backend);
        List<List<Parameter>> finalAfter = gradientsFinal == null ? null : finalAfter();
        for (int i = tape.size() - 1; i >= 0; i--) {
            Node node = tape.get(i);
            Tensor gradOutput = node.output().grad();
            if (gradOutput != null) {
                backwardAllocations = new ArrayList<>();
                List<Tensor> temporaries;
                try {
                    node.backward().backward(gradOutput);
                } finally {
                    temporaries = backwardAllocations;
                    backwardAllocations = null;
                }
                // The node's gradient is consumed: as in PyTorch, op outputs do not keep theirs. It and whatever the
                // backward allocated that no gradient adopted (bf16 copies of dy, scratch) go back to the scope now,
                // so a step's peak is the forward's activations plus the backward's frontier, not their sum.
                node.output().clearGrad();
                releaseIfDead(gradOutput);
                for (Tensor t : temporaries) {
                    releaseIfDead(t);
                }
            }
            if (finalAfter != null && !finalAfter.get(i).isEmpty()) {
                gradientsFinal.reached(finalAfter.get(i), i);
            }
        }
        tape.clear();
    }

    /** For each tape position, the parameters whose gradients are final once its node's backward has run. */
    private List<List<Parameter>> finalAfter() {
        List<List<Parameter>> lists = new ArrayList<>(Collections.nCopies(tape.size(), List.of()));
        parameterReads.forEach((p, position) -> {
            if (position >= 0) {
                if (lists.get(position).isEmpty()) {
                    lists.set(position, new ArrayList<>());
                }
                lists.get(position).add(p);
            }
        });
        return lists;
    }

    /**
     * Releases {@code t} unless a live gradient shares its memory or it is a cached bf16 operand. The live
     * gradients are the backward's frontier (parameters keep theirs in their own scope), so this stays cheap.
     */
    private void releaseIfDead(Tensor t) {
        if (t.scope() != scope) {
            return;
        }
        // A cached operand made during this backward is the very tensor toBf16 allocated (never a view of one).
        if (bf16CopyTensors.contains(t)) {
            return;
        }
        for (Variable v : withGradient) {
            if (overlaps(v.grad(), t)) {
                return;
            }
        }
        scope.release(t);
    }

    private static boolean overlaps(Tensor a, Tensor b) {
        long a0 = a.segment().address(), b0 = b.segment().address();
        return a0 < b0 + Math.max(1, b.byteSize()) && b0 < a0 + Math.max(1, a.byteSize());
    }

    private void requireRecording() {
        if (tape == null) {
            throw new IllegalStateException("backward() outside a grad scope: wrap the forward in recordGradients()");
        }
    }
}
