"""Checks the Java engine against the independent PyTorch MicroDiT (microdit_ref.py).

For each config:
  params   the Python parameter count equals `microdit params`;
  init     `microdit export-init` weights load into the Python model with strict load_state_dict, the stored
           config equals ours, pos_embed equals our 2-D sin-cos table, and each tensor follows the official
           initialisation (zeros, ones, or a normal/xavier/trunc-normal with the right std);
  forward  random non-trivial weights (official init + N(0, 0.05) on every parameter) and random inputs are
           written as safetensors, `microdit forward` and the Python model run on them, and the output `sample`
           must agree: max|Java − torch| / max|torch| ≤ tolerance.
Large configs (microdit-xl-2, microdit-tiny-2) get the parameter count only, counted on the meta device.
Before all that, the reference checks itself (masked paths, MoE, EDM loss) against direct formulations.

Run with Debian's torch: /usr/bin/python3 bench/torch/check_forward.py  (bench/compare-forward.sh does this).
"""

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import microdit_ref as ref  # noqa: E402
import safetensors_io  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MICRODIT = os.path.join(ROOT, "src", "main", "scripts", "microdit")
CONFIG_DIR = os.path.join(ROOT, "bench", "torch", "configs")

# (config, caption length L, batch N) for the forward comparison.
FORWARD_CASES = [
    ("fashion-small", 77, 2),
    (os.path.join(CONFIG_DIR, "tiny-reduced.json"), 19, 2),
    (os.path.join(CONFIG_DIR, "mixer-wide-bias.json"), 7, 3),
]
COUNT_ONLY = ["microdit-xl-2", "microdit-tiny-2"]


def run_java(*args, threads=None):
    command = [MICRODIT, *args]
    if threads is not None:
        command += ["--threads", str(threads)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


def label(config):
    return os.path.basename(config).removesuffix(".json")


def java_param_count(config):
    out = run_java("params", "--config", config)
    match = re.search(r":\s*(\d+) parameters", out)
    if not match:
        raise RuntimeError(f"cannot parse `microdit params` output:\n{out}")
    return int(match.group(1))


def check_params(config):
    python_count = ref.count_parameters(ref.DiT.from_config(config, device="meta"))
    java_count = java_param_count(config)
    ok = python_count == java_count
    print(f"[params ] {label(config):18s} torch {python_count:>13,}  java {java_count:>13,}  "
          f"{'OK' if ok else 'MISMATCH'}")
    return ok


# -- initialisation ------------------------------------------------------------------------------------------------

def expected_init(model, config):
    """name -> ("zeros",) | ("ones",) | ("std", s) for every parameter, from the official initialisation."""
    expect = {}
    depth = config["depth"]
    mixer_std = 0.02 / math.sqrt(2 * depth)

    def block(prefix, module, std):
        for norm in ("norm1", "norm2", "norm3"):
            expect[f"{prefix}.{norm}.weight"] = ("ones",)
        expect[f"{prefix}.attn.qkv.weight"] = ("std", 0.02)
        expect[f"{prefix}.attn.proj.weight"] = ("std", std)
        expect[f"{prefix}.cross_attn.q_linear.weight"] = ("std", 0.02)
        expect[f"{prefix}.cross_attn.kv_linear.weight"] = ("std", 0.02)
        expect[f"{prefix}.cross_attn.proj.weight"] = ("std", std)
        if isinstance(module.mlp, ref.FeedForwardECMoe):
            expect[f"{prefix}.mlp.gate.weight"] = ("std", 0.02)
            expect[f"{prefix}.mlp.w1"] = ("std", 0.02)
            expect[f"{prefix}.mlp.w2"] = ("std", std)
        else:
            expect[f"{prefix}.mlp.w1.weight"] = ("std", 0.02)
            expect[f"{prefix}.mlp.w2.weight"] = ("std", std)
            expect[f"{prefix}.mlp.w3.weight"] = ("std", std)
        expect[f"{prefix}.adaLN_modulation.1.weight"] = ("zeros",)

    for i, module in enumerate(model.blocks):
        block(f"blocks.{i}", module, 0.02 / math.sqrt(2 * (i + 1)) if config["depth_init"] else mixer_std)
    for i, module in enumerate(model.patch_mixer):
        block(f"patch_mixer.{i}", module, mixer_std)
    for name in ("t_embedder.mlp.0.weight", "t_embedder.mlp.2.weight", "pooled_y_emb_process.fc1.weight",
                 "pooled_y_emb_process.fc2.weight", "y_embedder.y_proj.fc1.weight", "y_embedder.y_proj.fc2.weight",
                 "y_emb_preprocess.attn.qkv.weight", "y_emb_preprocess.mlp.w1.weight",
                 "y_emb_preprocess.mlp.w2.weight"):
        expect[name] = ("std", 0.02)
    for name in ("y_emb_preprocess.attn.proj.weight", "y_emb_preprocess.mlp.w3.weight",
                 "final_layer.linear.weight", "final_layer.adaLN_modulation.1.weight"):
        expect[name] = ("zeros",)
    conv = model.x_embedder.proj.weight
    fan_out, fan_in = conv.shape[0], conv[0].numel()
    expect["x_embedder.proj.weight"] = ("std", math.sqrt(2.0 / (fan_in + fan_out)))
    # PyTorch's default conv bias: U(±1/√fan_in).
    expect["x_embedder.proj.bias"] = ("std", 1.0 / math.sqrt(fan_in) / math.sqrt(3.0))
    for name, parameter in model.named_parameters():
        if name.startswith("patch_mixer_map_") and name.endswith(".1.weight"):
            expect[name] = ("std", math.sqrt(2.0 / (parameter.shape[0] + parameter.shape[1])))
        elif name.endswith(".bias") and name not in expect:
            expect[name] = ("zeros",)   # every Linear bias
        elif name.endswith("norm.weight") or re.search(r"(norm\d?|norm_final|map_\w+\.0)\.weight$", name):
            expect.setdefault(name, ("ones",))
    missing = [name for name, _ in model.named_parameters() if name not in expect]
    assert not missing, f"no init rule for {missing}"
    return expect


def check_init(config, workdir, seed=7):
    resolved = ref.resolve_config(config)
    path = os.path.join(workdir, f"init-{label(config)}.safetensors")
    run_java("export-init", "--config", config, "--seed", str(seed), "--out", path)
    tensors, metadata = safetensors_io.read(path)
    problems = []

    stored = ref.resolve_config(json.loads(metadata["microdit.config"]))
    for field in ref.CONFIG_FIELDS:
        a, b = stored[field], resolved[field]
        same = np.allclose(a, b, rtol=0, atol=1e-12) if isinstance(a, list) else a == b
        if not same:
            problems.append(f"config field {field}: file {a}, ours {b}")

    model = ref.DiT(**resolved)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        problems.append(f"strict load_state_dict failed: {e}")
        return report_init(config, problems)

    ours = ref.sincos_2d(resolved["dim"], resolved["input_size"] // resolved["patch_size"],
                         resolved["pos_interp_scale"], resolved["input_size"] // resolved["patch_size"])
    pos_error = float(np.abs(tensors["pos_embed"][0].numpy() - ours).max())
    if pos_error > 2e-6:
        problems.append(f"pos_embed differs from the 2-D sin-cos table by {pos_error:.3g}")
    if tensors["mask_token"].abs().max() != 0:
        problems.append("mask_token is not zero")

    for name, rule in expected_init(model, resolved).items():
        value = tensors[name].double()
        if rule[0] == "zeros" and value.abs().max() != 0:
            problems.append(f"{name}: expected zeros, max |w| {value.abs().max():.3g}")
        elif rule[0] == "ones" and (value - 1).abs().max() != 0:
            problems.append(f"{name}: expected ones")
        elif rule[0] == "std" and value.numel() >= 256:
            std, mean = float(value.std()), float(value.mean())
            # Sampling error of a std estimate is about s/√(2n); allow 6 of those plus 2 %.
            tolerance = rule[1] * (0.02 + 6 / math.sqrt(2 * value.numel()))
            if abs(std - rule[1]) > tolerance or abs(mean) > 6 * rule[1] / math.sqrt(value.numel()):
                problems.append(f"{name}: std {std:.5g} (expected {rule[1]:.5g} ± {tolerance:.2g}), "
                                f"mean {mean:.3g}")
    return report_init(config, problems)


def report_init(config, problems):
    print(f"[init   ] {label(config):18s} " + ("OK (strict load, config, pos_embed, init statistics)"
                                             if not problems else "FAILED"))
    for p in problems:
        print(f"            {p}")
    return not problems


# -- the reference's own masked path, MoE and loss -----------------------------------------------------------------

def check_reference(seed=5):
    """Checks of microdit_ref that need no Java: pieces against direct formulations of the spec."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    problems = []

    def close(name, a, b, tolerance=1e-5):
        error = float((a.double() - b.double()).abs().max() / max(float(b.abs().max()), 1e-12))
        if not error <= tolerance:
            problems.append(f"{name}: relative difference {error:.3g}")

    x = torch.randn(3, 5, 40, generator=generator)
    norm = ref.LayerNorm(40, 1e-6)
    norm.weight.data.normal_(1, 0.3, generator=generator)
    close("LayerNorm vs F.layer_norm", norm(x), torch.nn.functional.layer_norm(x, (40,), norm.weight, None, 1e-6))

    # MoE: gather/scatter against the official dense one-hot formulation (spec §1.6).
    moe = ref.FeedForwardECMoe(4, 1.5, 24, 40, 8)
    for p in moe.parameters():
        p.data.normal_(0, 0.2, generator=generator)
    h = torch.randn(2, 22, 24, generator=generator)
    k = int(1.5 * 22 / 4)
    g, m = torch.topk(torch.softmax(moe.gate(h), dim=-1).permute(0, 2, 1), k, dim=-1)
    one_hot = torch.nn.functional.one_hot(m, 22).double()
    picked = torch.einsum("nekt,ntd->nekd", one_hot, h.double())
    hidden = torch.nn.functional.gelu(torch.einsum("nekd,edf->nekf", picked, moe.w1.double()))
    dense = torch.einsum("nekt,nekd->ntd", one_hot,
                         g.double().unsqueeze(-1) * torch.einsum("nekf,efd->nekd", hidden, moe.w2.double()))
    close("MoE vs one-hot einsum", moe(h), dense)

    config = dict(ref.resolve_config("fashion-small"), patch_size=2, depth=2, patch_mixer_depth=2, input_size=8,
                  qkv_multipliers=[0.5, 1.0], ffn_multipliers=[1.0, 4.0])
    model = ref.DiT(**config)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * 0.05)
    n, tokens = 3, 16
    x = torch.randn(n, 1, 8, 8, generator=generator)
    t = torch.rand(n, generator=generator) * 3 - 2
    y = torch.randn(n, 1, 5, 64, generator=generator)
    with torch.no_grad():
        full = model.forward_without_cfg(x, t, y)["sample"]
        permutation = torch.stack([torch.randperm(tokens, generator=generator) for _ in range(n)])
        for mode in ("deferred", "naive"):
            # Keeping every token in any order is the unmasked forward (attention and MoE are permutation
            # equivariant, positions were added before).
            close(f"{mode}, all tokens kept shuffled", model.forward_without_cfg(
                x, t, y, ids_keep=permutation, masking=mode)["sample"], full)
        close("masking 'none' ignores ids_keep",
              model.forward_without_cfg(x, t, y, ids_keep=permutation[:, :4], masking="none")["sample"], full)

        # Masks as the official get_mask: same kept ids give the same mask; removed patches are zero.
        noise = torch.rand(n, tokens, generator=generator)
        ids_shuffle = torch.argsort(noise, dim=1)
        keep = int(tokens * (1 - 0.75))
        official_mask = torch.gather(torch.cat([torch.zeros(n, keep), torch.ones(n, tokens - keep)], dim=1), 1,
                                     torch.argsort(ids_shuffle, dim=1))
        result = model.forward_without_cfg(x, t, y, ids_keep=ids_shuffle[:, :keep])
        if not torch.equal(result["mask"], official_mask):
            problems.append("mask differs from the official get_mask construction")
        patches = result["sample"].reshape(n, 1, 4, 2, 4, 2).permute(0, 2, 4, 1, 3, 5).reshape(n, tokens, -1)
        if patches[official_mask.bool()].abs().max() != 0:
            problems.append("removed patches are not zero")

    # EDM loss at the official init (F ≡ 0, so D = c_skip·(x0 + σε)), against a direct evaluation of §3.1–3.2.
    model = ref.DiT(**config)
    sigma = torch.exp(torch.randn(n, generator=generator) * 1.2 - 0.6)
    noise = torch.randn(n, 1, 8, 8, generator=generator)
    x0 = torch.randn(n, 1, 8, 8, generator=generator)
    sd = 0.9
    s = sigma.double().view(-1, 1, 1, 1)
    direct = (s ** 2 + sd ** 2) / (s * sd) ** 2 * (sd ** 2 / (s ** 2 + sd ** 2) * (x0 + s * noise) - x0) ** 2
    with torch.no_grad():
        close("EDM loss, unmasked", ref.edm_loss(model, x0, y, sigma, noise)[0], direct.mean())
        per_patch = direct.reshape(n, 1, 4, 2, 4, 2).mean(dim=(1, 3, 5)).reshape(n, tokens)
        kept = 1 - official_mask.double()
        close("EDM loss, masked", ref.edm_loss(model, x0, y, sigma, noise, ids_keep=ids_shuffle[:, :keep])[0],
              ((per_patch * kept).sum(1) / kept.sum(1)).mean())
    print("[ref    ] " + ("OK (LayerNorm, MoE vs one-hot, masked paths, official mask, EDM loss)" if not problems
                          else "FAILED"))
    for p in problems:
        print(f"            {p}")
    return not problems


# -- forward -------------------------------------------------------------------------------------------------------

def moe_margin(model, x, t, y):
    """The smallest gap, over all MoE layers, samples and experts, between the k-th and (k+1)-th routing
    probability: a gap near float32 rounding would make the two implementations' top-k choices legitimately
    differ."""
    gaps = []

    def hook(module, inputs, _output):
        h = inputs[0]
        k = int(module.expert_capacity * h.shape[1] / module.num_experts)
        probs = torch.softmax(module.gate(h), dim=-1).transpose(1, 2)
        if k < h.shape[1]:
            top = torch.topk(probs, k + 1, dim=-1).values
            gaps.append(float((top[..., k - 1] - top[..., k]).min()))

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, ref.FeedForwardECMoe)]
    try:
        model.forward_without_cfg(x, t, y)
    finally:
        for h in handles:
            h.remove()
    return min(gaps) if gaps else float("inf")


def check_forward(config, caption_length, batch, workdir, tolerance, noise_std, seed, threads):
    resolved = ref.resolve_config(config)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = ref.DiT(**resolved)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * noise_std)
    model.eval()
    weights = os.path.join(workdir, f"weights-{label(config)}.safetensors")
    safetensors_io.write(weights, model.state_dict(), {"microdit.config": json.dumps(resolved)})

    size, channels = resolved["input_size"], resolved["in_channels"]
    x = torch.randn(batch, channels, size, size, generator=generator)
    t = torch.rand(batch, generator=generator) * 3 - 2              # ln σ / 4 in [-2, 1]
    y = torch.randn(batch, 1, caption_length, resolved["caption_channels"], generator=generator)
    inputs = os.path.join(workdir, f"inputs-{label(config)}.safetensors")
    safetensors_io.write(inputs, {"x": x, "t": t, "y": y})

    # The Python side reads back what it wrote, so both sides see identical bits.
    loaded, _ = safetensors_io.read(weights)
    model.load_state_dict(loaded, strict=True)
    read_inputs, _ = safetensors_io.read(inputs)
    with torch.no_grad():
        expected = model.forward_without_cfg(read_inputs["x"], read_inputs["t"], read_inputs["y"])["sample"]
        margin = moe_margin(model, read_inputs["x"], read_inputs["t"], read_inputs["y"])

    output = os.path.join(workdir, f"sample-{label(config)}.safetensors")
    run_java("forward", "--config", config, "--weights", weights, "--inputs", inputs, "--out", output,
             threads=threads)
    actual = safetensors_io.read(output)[0]["sample"]
    if actual.shape != expected.shape:
        print(f"[forward] {label(config):18s} FAILED: java sample {list(actual.shape)}, torch {list(expected.shape)}")
        return False
    difference = (actual.double() - expected.double()).abs()
    scale = float(expected.abs().max())
    max_abs = float(difference.max())
    normalised = max_abs / scale
    # Elementwise relative difference, with a floor so values near zero do not dominate.
    max_rel = float((difference / expected.double().abs().clamp_min(1e-3 * scale)).max())
    ok = normalised <= tolerance and bool(torch.isfinite(actual).all())
    print(f"[forward] {label(config):18s} N={batch} L={caption_length:<3d} max|F|={scale:9.4g}  "
          f"max abs diff={max_abs:9.3g}  max abs/max|F|={normalised:9.3g}  max rel (floor 1e-3·max)={max_rel:9.3g}  "
          f"min MoE top-k gap={margin:8.2g}  {'OK' if ok else 'FAILED'}")
    if not ok:
        worst = int(difference.argmax())
        index = np.unravel_index(worst, tuple(expected.shape))
        print(f"            worst element {tuple(int(i) for i in index)}: java {float(actual.flatten()[worst]):.6g}, "
              f"torch {float(expected.flatten()[worst]):.6g}")
    return ok


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tolerance", type=float, default=1e-4, help="max |diff| / max |F| (default 1e-4)")
    parser.add_argument("--noise", type=float, default=0.05, help="std of the noise added to every weight")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--threads", type=int, default=2, help="torch and Java threads (default 2)")
    parser.add_argument("--only", help="run one forward case: a built-in name or JSON path")
    parser.add_argument("--workdir", help="where to keep the files (default: a temporary directory)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    cases = FORWARD_CASES if args.only is None else [c for c in FORWARD_CASES if label(c[0]) == label(args.only)]
    if args.only is not None and not cases:
        cases = [(args.only, 77, 2)]
    workdir = args.workdir or tempfile.mkdtemp(prefix="microdit-compare-")
    os.makedirs(workdir, exist_ok=True)
    results = [check_reference()]
    if args.only is None:
        for config in COUNT_ONLY:
            results.append(check_params(config))
    for config, _, _ in cases:
        results.append(check_params(config))
    for config, _, _ in cases:
        results.append(check_init(config, workdir))
    for config, length, batch in cases:
        results.append(check_forward(config, length, batch, workdir, args.tolerance, args.noise, args.seed,
                                     args.threads))
    failed = results.count(False)
    print(f"{len(results) - failed} of {len(results)} checks passed (files in {workdir})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
