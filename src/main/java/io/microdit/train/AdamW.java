package io.microdit.train;

import io.microdit.autograd.Parameter;
import io.microdit.backend.Backend;
import io.microdit.nn.ParameterStore;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import io.microdit.tensor.DType;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Predicate;

/**
 * AdamW with decoupled weight decay on every parameter (the official trainer has no exclusions), after global
 * gradient-norm clipping as {@code torch.nn.utils.clip_grad_norm_}: the gradients are scaled by
 * {@code min(1, maxNorm / (‖g‖ + 1e-6))}, fused into the update. The moments live in their own scope of the
 * backend, as long as the optimizer.
 */
public final class AdamW implements AutoCloseable {
    /** The optimizer's hyperparameters; the official values are {@link #MICRODIT}. */
    public record Settings(double beta1, double beta2, double epsilon, double weightDecay) {
        /** Checks 0 ≤ β &lt; 1, ε > 0 and weight decay ≥ 0. */
        public Settings {
            if (!(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1 && epsilon > 0 && weightDecay >= 0)) {
                throw new IllegalArgumentException("AdamW needs 0 ≤ β < 1, eps > 0, weight decay ≥ 0; got " + this);
            }
        }
    }

    /** The official configs' AdamW: β (0.9, 0.999), ε 1e-8, weight decay 0.1. */
    public static final Settings MICRODIT = new Settings(0.9, 0.999, 1e-8, 0.1);

    private final Backend backend;
    private final ParameterStore parameters;
    private final Settings settings;
    private final MemoryScope scope;
    private final Map<String, Tensor> firstMoments = new LinkedHashMap<>();
    private final Map<String, Tensor> secondMoments = new LinkedHashMap<>();
    /** bf16 working copies of stepped parameters, in {@link #scope}: written by every update (see bf16Copies). */
    private final Map<Parameter, Tensor> copies = new LinkedHashMap<>();
    /** The copies the last update wrote, so equal to convert(value) while nothing else wrote the values. */
    private final Map<Parameter, Tensor> currentCopies = new LinkedHashMap<>();
    /**
     * A {@link #shardOf} optimizer (planning one ZeRO-2 rank): the bf16 copies of the converted parameters the other
     * ranks step, which the parameter gather brings from their owners ({@code GradientReduction.gatherParameters}).
     */
    private final Map<Parameter, Tensor> gatheredCopies = new LinkedHashMap<>();
    private final boolean plansGather;
    private long step;

    /** An optimizer of every parameter, with zeroed moments in their own scope of {@code backend}. */
    public AdamW(Backend backend, ParameterStore parameters, Settings settings) {
        this(backend, parameters, settings, p -> true);
    }

    /**
     * The optimizer of rank {@code rank} of {@code ranks} under ZeRO-2 sharding ({@link ZeroShards}): moments for the
     * parameters that rank owns only, the others never updated here. For planning one rank's memory (bench-step):
     * the converted parameters it does not step get bf16 copies too, as the trainer's parameter gather brings them
     * from their owners ({@code GradientReduction.gatherParameters}), so a planned forward converts no weight.
     */
    public static AdamW shardOf(Backend backend, ParameterStore parameters, Settings settings, int rank, int ranks) {
        Map<Parameter, Integer> owners = ZeroShards.owners(parameters.all(), ranks);
        return new AdamW(backend, parameters, settings, p -> owners.get(p) == rank, true);
    }

    /**
     * An optimizer for the parameters {@code steps} accepts only (one rank's share under ZeRO-2 sharding): the
     * others get no moments and are never updated here.
     */
    AdamW(Backend backend, ParameterStore parameters, Settings settings, Predicate<Parameter> steps) {
        this(backend, parameters, settings, steps, false);
    }

    private AdamW(Backend backend, ParameterStore parameters, Settings settings, Predicate<Parameter> steps,
                  boolean plansGather) {
        this.plansGather = plansGather;
        this.backend = backend;
        this.parameters = parameters;
        this.settings = settings;
        this.scope = backend.scope("adamw-moments");
        for (Parameter p : parameters.all()) {
            if (steps.test(p)) {
                firstMoments.put(p.name(), scope.zeros(p.value().shape()));
                secondMoments.put(p.name(), scope.zeros(p.value().shape()));
            }
        }
    }

    /**
     * Keeps a bf16 working copy of each of {@code converted} that this optimizer steps (the parameters a bf16 graph
     * converted for its matrix products, {@code Graph.convertedParameters}), written by every later update in the
     * update's own pass: the next forward reads the copy instead of converting every weight again. Idempotent;
     * the F32 values stay the master weights.
     */
    public void keepBf16Copies(Collection<Parameter> converted) {
        for (Parameter p : converted) {
            if (firstMoments.containsKey(p.name()) && !copies.containsKey(p)) {
                copies.put(p, Tensor.empty(scope, DType.BF16, p.value().shape()));
            } else if (plansGather && !firstMoments.containsKey(p.name()) && !gatheredCopies.containsKey(p)) {
                // What the gather would bring, made once: exact, as this optimizer never changes the value.
                Tensor copy = Tensor.empty(scope, DType.BF16, p.value().shape());
                backend.convert(p.value(), copy);
                gatheredCopies.put(p, copy);
            }
        }
    }

    /**
     * {@link #keepBf16Copies(Collection)} with the copies in the caller's tensors ({@code places}: parameter → a BF16
     * tensor of its shape): under ZeRO-2 the parameter gather's buffer, which sends them to the other ranks
     * ({@code GradientReduction.keepBf16Copies}). Parameters this optimizer does not step, or already has a copy of,
     * are left out.
     */
    public void keepBf16Copies(Map<Parameter, Tensor> places) {
        places.forEach((p, place) -> {
            if (firstMoments.containsKey(p.name()) && !copies.containsKey(p)) {
                if (place.dtype() != DType.BF16 || !Arrays.equals(place.shape(), p.value().shape())) {
                    throw new IllegalArgumentException("keepBf16Copies: the copy of " + p.name() + " needs a BF16 "
                            + "tensor of its shape, got " + place.describe());
                }
                copies.put(p, place);
            }
        });
    }

    /**
     * The bf16 working copies the last update wrote (convert's bits of each updated value), for the next step's
     * graphs ({@code Graph.useBf16Copies}); empty before the first update. They stay exact only while nothing but this
     * optimizer writes the parameters' values: a caller that loads or changes weights between an update and the next
     * forward must not pass them (restoring the very bits, as sampling with the EMA weights does, keeps them exact).
     * A {@link #shardOf} optimizer adds the copies the gather brings of the parameters it does not step.
     */
    public Map<Parameter, Tensor> bf16Copies() {
        if (gatheredCopies.isEmpty()) {
            return Collections.unmodifiableMap(currentCopies);
        }
        Map<Parameter, Tensor> all = new LinkedHashMap<>(gatheredCopies);
        all.putAll(currentCopies);
        return Collections.unmodifiableMap(all);
    }

    /** Steps taken so far. */
    public long step() {
        return step;
    }

    /**
     * The L2 norm of the gradients of the parameters this optimizer steps (parameters without a gradient count as
     * zero): the global norm when it steps every parameter. A {@link #shardOf} optimizer, planning one ZeRO-2 rank,
     * reads its own shard's gradients only, as that rank does: the sharded trainer adds the other ranks' sums of
     * squares, exchanged as numbers ({@code GradientReduction.gradientNorm}), so their gradients never pass through
     * this rank's memory for the norm.
     */
    public double gradientNorm() {
        List<Tensor> gradients = new ArrayList<>();
        for (Parameter p : parameters.all()) {
            if (p.grad() != null && firstMoments.containsKey(p.name())) {
                gradients.add(p.grad());
            }
        }
        return Math.sqrt(backend.sumOfSquares(gradients));
    }

    /**
     * Clips and applies one update at {@code learningRate}; returns the gradient norm before clipping.
     * {@code maxNorm} ≤ 0 disables clipping. A non-finite norm skips the update and throws, so one bad batch
     * never writes NaN into the weights.
     */
    public double update(double learningRate, double maxNorm) {
        return update(learningRate, maxNorm, gradientNorm());
    }

    /** {@link #update(double, double)} with the global gradient norm computed by the caller (sharded training). */
    double update(double learningRate, double maxNorm, double norm) {
        if (!Double.isFinite(norm)) {
            throw new ArithmeticException("gradient norm is " + norm + " at step " + (step + 1)
                    + "; the update was skipped");
        }
        float scale = maxNorm > 0 ? (float) Math.min(1.0, maxNorm / (norm + 1e-6)) : 1f;
        step++;
        // Two list updates (each one launch on a GPU): the parameters with working copies, which it also writes, and
        // the rest (biases, norms' weights: read as F32).
        for (boolean withCopies : new boolean[] {true, false}) {
            List<Tensor> values = new ArrayList<>(), gradients = new ArrayList<>(), m = new ArrayList<>(),
                    v = new ArrayList<>(), written = new ArrayList<>();
            for (Parameter p : parameters.all()) {
                if (p.grad() != null && firstMoments.containsKey(p.name()) && copies.containsKey(p) == withCopies) {
                    values.add(p.value());
                    gradients.add(p.grad());
                    m.add(firstMoments.get(p.name()));
                    v.add(secondMoments.get(p.name()));
                    if (withCopies) {
                        written.add(copies.get(p));
                    }
                }
            }
            float lr = (float) learningRate, beta1 = (float) settings.beta1(), beta2 = (float) settings.beta2(),
                    epsilon = (float) settings.epsilon(), decay = (float) settings.weightDecay();
            if (!withCopies) {
                backend.adamw(values, gradients, m, v, lr, beta1, beta2, epsilon, decay, step, scale);
            } else if (!values.isEmpty()) {
                backend.adamw(values, gradients, m, v, written, lr, beta1, beta2, epsilon, decay, step, scale);
            }
        }
        currentCopies.clear();
        for (Map.Entry<Parameter, Tensor> e : copies.entrySet()) {
            if (e.getKey().grad() != null) {
                currentCopies.put(e.getKey(), e.getValue());
            }
        }
        return norm;
    }

    /**
     * Moments by parameter name, for checkpoints ({@code name} + ".exp_avg" / ".exp_avg_sq"): the backend's tensors
     * (download them to write them), of the parameters this optimizer steps.
     */
    public Map<String, Tensor> state() {
        Map<String, Tensor> out = new LinkedHashMap<>();
        for (String name : firstMoments.keySet()) {
            out.put(name + ".exp_avg", firstMoments.get(name));
            out.put(name + ".exp_avg_sq", secondMoments.get(name));
        }
        return out;
    }

    /** Restores moments (host or backend tensors) and the step count from a checkpoint. */
    public void restore(Map<String, Tensor> state, long steps) {
        for (String name : firstMoments.keySet()) {
            copy(backend, state, name + ".exp_avg", firstMoments.get(name));
            copy(backend, state, name + ".exp_avg_sq", secondMoments.get(name));
        }
        this.step = steps;
    }

    private static void copy(Backend backend, Map<String, Tensor> state, String key, Tensor target) {
        Tensor source = state.get(key);
        if (source == null) {
            throw new IllegalArgumentException("optimizer state has no '" + key + "'");
        }
        if (!source.sameShape(target)) {
            throw new IllegalArgumentException("optimizer state '" + key + "' is " + source.describe()
                    + ", the parameter needs " + target.describe());
        }
        backend.copy(source, target);
    }

    @Override
    public void close() {
        scope.close();
    }
}
