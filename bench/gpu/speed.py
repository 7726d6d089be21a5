"""Checks and times microdit's CUDA kernels against PyTorch on the same GPU (called by bench/gpu/check.sh).

    python3 bench/gpu/speed.py target/native/libmicrodit_cuda.so [--table FILE] [--quick]
    python3 bench/gpu/speed.py --self-test [--emu target/native/libmicrodit_emu.so]   (CPU only, no CUDA)

The kernels are called through ctypes on PyTorch's tensors on the default (legacy) stream; the argument types
come from native/include/microdit.h, parsed here, so a call that disagrees with the header fails loudly.
1. Correctness first: every bf16 tensor-core kernel (mdt_attention_fwd_bf16, mdt_attention_bwd_bf16,
   mdt_gemm_matmul_bf16) runs on random bf16 inputs of awkward sizes (tails, 77 keys, transposes, bias, GELU,
   accumulate) and on a slice of every timed shape, with outputs poisoned by NaN; errors are max|ours − ref| /
   max|ref| against an f32 reference on the same bf16 values (attention: f32 scores, lse = logsumexp; backward:
   f32 autograd; GEMM: f32 matmul, TF32 off). Beyond 2e-2 (or non-finite) the run fails (exit 1). MoE top-k,
   dispatch, combine and token gather are checked against torch too.
2. Timing: CUDA events, warm-up first, median of >= 10 samples (each sample a few back-to-back calls when a call
   is short). Attention bf16 (head_dim 64 and 32, self T 1024/4096, cross Tk 77) against SDPA with the flash
   backend (FA2) where available, TFLOP/s by the FlashAttention convention (forward 4·N·H·Tq·Tk·Dh, backward
   2.5× that); bf16 GEMM on MicroDiT-XL shapes (D 1024, 256 tokens × batch 32) against torch.matmul bf16
   (cuBLAS, bf16 out where ours writes f32); the f32 kernels (attention, GEMM) against torch f32 (TF32 off);
   MoE routing against its expert GEMMs; token gather against torch.gather and a device-to-device copy.
3. A final table puts the issue's targets next to the measurements (attention forward >= 300 TFLOP/s,
   backward >= 200, token gather >= 85% of the D2D copy, own GEMM >= 60% of cuBLAS, routing <= 10% of the
   expert GEMMs). Targets are benchmarks: a miss prints "below" but does not fail the run.
--self-test runs the pure-Python parts on the CPU (header parsing, shape tables, FLOP formulas, references, the
table) and, where the emulator library is built, the correctness checks through it on small shapes.
"""
import argparse
import ctypes
import math
import os
import re
import statistics
import sys
import traceback

import torch

TOLERANCE = 2e-2
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HEADER = os.path.join(ROOT, "native", "include", "microdit.h")

# ---------------------------------------------------------------------------------------------------- shapes
# MicroDiT-XL (microdit-spec.md): D 1024, head_dim 64, 28 blocks (h_qkv up to 1024, SwiGLU hidden up to 2816,
# MoE hidden up to 3840, 8 experts, capacity 2), patch-mixer width 768 (MoE hidden 3072), 77 caption tokens.
# 256 tokens (256 px unmasked / 512 px masked) × batch 32 = 8192 rows.
ROWS = 256 * 32
# (label, batch, m, n, k, transpose_a, transpose_b): out[b] (m×n) = op(a[b]) (m×k) · op(b[b]) (k×n).
GEMM_SHAPES = (
    ("qkv D->3D", 1, ROWS, 3072, 1024, 0, 0),
    ("attn proj D->D", 1, ROWS, 1024, 1024, 0, 0),
    ("SwiGLU in D->2x2816", 1, ROWS, 5632, 1024, 0, 0),
    ("SwiGLU out 2816->D", 1, ROWS, 1024, 2816, 0, 0),
    ("mixer qkv 768->3x768", 1, ROWS, 2304, 768, 0, 0),
    ("MoE fc1 8x(2048x1024->3840)", 8, 2048, 3840, 1024, 0, 0),
    ("MoE fc2 8x(2048x3840->1024)", 8, 2048, 1024, 3840, 0, 0),
    ("cross kv 32x77 tok D->2D", 1, 32 * 77, 2048, 1024, 0, 0),
    ("weight grad X^T.dY (a^T)", 1, 1024, 3072, ROWS, 1, 0),
    ("input grad dY.W^T (b^T)", 1, ROWS, 1024, 3072, 0, 1),
)
# (label, samples, heads, head_dim, queries, keys): hidden 2048 and batch 16k/T as the FlashAttention benchmarks,
# so N·H·⌈T/64⌉ blocks fill the 132 SMs many times over; plus MicroDiT's own 256-token and cross shapes.
ATTENTION_SHAPES = (
    ("self Dh64 T1024", 16, 32, 64, 1024, 1024),
    ("self Dh64 T4096", 4, 32, 64, 4096, 4096),
    ("self Dh32 T1024", 16, 64, 32, 1024, 1024),
    ("self Dh32 T4096", 4, 64, 32, 4096, 4096),
    ("self Dh64 T256 (XL 256px)", 64, 16, 64, 256, 256),
    ("cross Dh64 Tq1024 Tk77", 64, 16, 64, 1024, 77),
)
# Awkward correctness shapes: (samples, heads, head_dim, queries, keys); tails in both T, 77 keys, Tk > Tq.
ATTENTION_CHECKS = (
    (2, 3, 64, 200, 200),
    (2, 3, 64, 130, 77),
    (2, 3, 32, 150, 333),
    (1, 2, 32, 64, 77),
    (1, 2, 128, 100, 77),  # forward only (the backward takes 32 and 64)
)
BACKWARD_HEAD_DIMS = (32, 64)
# (batch, m, n, k, transpose_a, transpose_b, bias, gelu, accumulate, share_b): tails in M, N, K; K = 70 takes the
# unaligned (element copy) path; share_b gives b a batch stride of 0.
GEMM_CHECKS = (
    (3, 129, 77, 70, 0, 1, True, True, False, False),
    (1, 64, 200, 96, 1, 0, False, False, True, False),
    (2, 130, 136, 64, 1, 1, True, False, False, True),
    (1, 257, 264, 200, 0, 0, True, True, True, False),
)
# MoE routing of the XL patch-mixer at 512 px: samples, tokens, experts, width, expert hidden (k = tokens/4).
ROUTING_SHAPE = (32, 1024, 8, 768, 3072)
# Token gather: samples, tokens, width (keep a quarter; 256 MiB gathered, far past the 50 MiB L2).
GATHER_SHAPE = (256, 1024, 1024)
# The f32 attention kernels (CUDA cores): samples, heads, head_dim, queries, keys.
F32_ATTENTION_SHAPES = ((8, 16, 64, 1024, 1024), (32, 16, 64, 256, 77))
TARGETS = {"attention_fwd": 300.0, "attention_bwd": 200.0, "gather_vs_copy": 0.85, "gemm_vs_cublas": 0.60,
           "routing_vs_experts": 0.10}


def attention_flops(samples, heads, head_dim, queries, keys, backward=False):
    """FlashAttention convention: forward 4·N·H·Tq·Tk·Dh (two matmuls), backward 2.5× the forward."""
    forward = 4.0 * samples * heads * queries * keys * head_dim
    return 2.5 * forward if backward else forward


def gemm_flops(batch, m, n, k):
    return 2.0 * batch * m * n * k


def relative_error(value, reference):
    """max|value − reference| / max|reference| in f64; inf when value has a non-finite element."""
    value, reference = value.double(), reference.double()
    if not torch.isfinite(value).all():
        return math.inf
    return (value - reference).abs().max().item() / max(reference.abs().max().item(), 1e-30)


# ------------------------------------------------------------------------------------------- the C ABI (ctypes)
C_TYPES = {"int": ctypes.c_int, "int32_t": ctypes.c_int32, "int64_t": ctypes.c_int64, "uint64_t": ctypes.c_uint64,
           "size_t": ctypes.c_size_t, "float": ctypes.c_float, "double": ctypes.c_double,
           "mdt_stream_t": ctypes.c_void_p, "mdt_event_t": ctypes.c_void_p}


def parse_header(path=HEADER):
    """{name: [ctypes argument types]} of every `MDT_API int name(...)` declaration (one per line)."""
    signatures = {}
    with open(path) as header:
        for line in header:
            match = re.match(r"MDT_API\s+int\s+(\w+)\s*\((.*)\)\s*;", line.strip())
            if not match:
                continue
            arguments = []
            for parameter in match.group(2).split(","):
                parameter = parameter.replace("const ", "").strip()
                if parameter == "void":
                    continue
                if "*" in parameter:
                    arguments.append(ctypes.c_void_p)
                    continue
                base = parameter.rsplit(None, 1)[0]
                if base not in C_TYPES:
                    raise ValueError(f"{path}: unknown parameter type {base!r} in {match.group(1)}")
                arguments.append(C_TYPES[base])
            signatures[match.group(1)] = arguments
    return signatures


class Library:
    """libmicrodit_*.so with argument types from the header; call() raises on a non-zero status."""

    def __init__(self, path):
        self.lib = ctypes.CDLL(path)
        for name, arguments in parse_header().items():
            function = getattr(self.lib, name, None)
            if function is not None:
                function.argtypes, function.restype = arguments, ctypes.c_int
        self.lib.mdt_last_error_message.restype = ctypes.c_char_p
        self.lib.mdt_last_error_message.argtypes = []

    def call(self, name, *arguments):
        status = getattr(self.lib, name)(*arguments)
        if status != 0:
            raise RuntimeError(f"{name}: status {status}: {(self.lib.mdt_last_error_message() or b'').decode()}")


def ptr(tensor):
    return tensor.data_ptr() if tensor is not None else None


# --------------------------------------------------------------------------------------------------- kernels
def attention_forward(lib, q, k, v, out, lse, samples, queries, keys, heads, head_dim):
    lib.call("mdt_attention_fwd_bf16", None, ptr(q), ptr(k), ptr(v), ptr(out), ptr(lse), samples, queries, keys,
             heads, head_dim)


def attention_backward(lib, d_out, q, k, v, out, lse, delta, d_out_bf16, dq, dk, dv, samples, queries, keys, heads,
                       head_dim):
    lib.call("mdt_attention_bwd_bf16", None, ptr(d_out), ptr(q), ptr(k), ptr(v), ptr(out), ptr(lse), ptr(delta),
             ptr(d_out_bf16), ptr(dq), ptr(dk), ptr(dv), samples, queries, keys, heads, head_dim)


_workspaces = {}


def gemm_workspace(lib, query, batch, m, n, k, device):
    """(pointer, floats) of a split-K workspace for this GEMM shape (query: mdt_gemm_matmul[_bf16]_workspace),
    allocated once per shape outside the timed calls, as the engine keeps one grow-only workspace."""
    key = (query, batch, m, n, k, str(device))
    if key not in _workspaces:
        floats = ctypes.c_int64()
        lib.call(query, batch, m, n, k, ctypes.byref(floats))
        buffer = torch.empty(max(floats.value, 1), dtype=torch.float32, device=device)
        _workspaces[key] = (buffer, floats.value)
    buffer, floats = _workspaces[key]
    return (ptr(buffer) if floats else None), floats


def gemm_bf16(lib, a, ta, b, tb, bias, out, batch, m, n, k, stride_a, stride_b, accumulate, gelu):
    workspace, floats = gemm_workspace(lib, "mdt_gemm_matmul_bf16_workspace", batch, m, n, k, out.device)
    lib.call("mdt_gemm_matmul_bf16", None, ptr(a), ta, ptr(b), tb, ptr(bias), ptr(out), batch, m, n, k, stride_a,
             stride_b, int(accumulate), int(gelu), workspace, floats)


def gemm_f32(lib, a, b, out, m, n, k):
    workspace, floats = gemm_workspace(lib, "mdt_gemm_matmul_workspace", 1, m, n, k, out.device)
    lib.call("mdt_gemm_matmul", None, ptr(a), 0, ptr(b), 0, None, ptr(out), 1, m, n, k, 0, 0, 0, workspace, floats)


# ------------------------------------------------------------------------------------------------ references
def heads_view(x, tokens, heads, head_dim):
    """[N, T, H·Dh] → [N, H, T, Dh] (a view)."""
    return x.view(x.shape[0], tokens, heads, head_dim).transpose(1, 2)


def attention_reference(q, k, v, heads, head_dim, d_out=None):
    """f32 attention on the given (bf16) values, [N, T, H·Dh] layout: (out, lse) and, with d_out, (dq, dk, dv)
    by autograd."""
    n, tq, tk = q.shape[0], q.shape[1], k.shape[1]
    qf, kf, vf = (t.float().contiguous().requires_grad_(d_out is not None) for t in (q, k, v))
    qh, kh, vh = heads_view(qf, tq, heads, head_dim), heads_view(kf, tk, heads, head_dim), heads_view(vf, tk, heads,
                                                                                                      head_dim)
    scores = torch.matmul(qh, kh.transpose(-1, -2)) * (1.0 / math.sqrt(head_dim))
    lse = torch.logsumexp(scores, dim=-1)
    out = torch.matmul(torch.softmax(scores, dim=-1), vh).transpose(1, 2).reshape(n, tq, heads * head_dim)
    if d_out is None:
        return out.detach(), lse.detach()
    grads = torch.autograd.grad(out, (qf, kf, vf), d_out.float())
    return out.detach(), lse.detach(), grads


def gemm_reference(a, ta, b, tb, bias, out_before, batch, gelu, accumulate, share_b):
    a_op = a.float().transpose(-1, -2) if ta else a.float()
    b_op = b.float().transpose(-1, -2) if tb else b.float()
    if share_b:
        b_op = b_op.expand(batch, *b_op.shape[-2:])
    result = torch.matmul(a_op, b_op)
    if bias is not None:
        result = result + bias
    if gelu:
        result = torch.nn.functional.gelu(result, approximate="tanh")
    if accumulate:
        result = result + out_before
    return result


# ------------------------------------------------------------------------------------------------- reporting
class Run:
    def __init__(self):
        self.failures = []
        self.rows = []  # (what, measured, unit, target text, verdict, note)

    def check(self, what, errors):
        """errors: {name: relative error}; prints them and records a failure beyond TOLERANCE (names in
        parentheses are shown for scale only)."""
        worst = max(error for name, error in errors.items() if not name.startswith("("))
        text = "  ".join(f"{name} {error:.2e}" for name, error in errors.items())
        verdict = "ok" if worst <= TOLERANCE else "FAIL"
        print(f"  check {what:46s} {text}  [{verdict}]", flush=True)
        if verdict != "ok":
            self.failures.append(f"{what}: {text}")

    def exact(self, what, equal):
        print(f"  check {what:46s} {'equal' if equal else 'DIFFERENT'}  [{'ok' if equal else 'FAIL'}]", flush=True)
        if not equal:
            self.failures.append(f"{what}: differs from torch")

    def section(self, name, function, *arguments):
        print(f"\n--- {name}", flush=True)
        try:
            function(*arguments)
        except Exception:  # noqa: BLE001 — one broken section must not hide the others
            traceback.print_exc()
            self.failures.append(f"{name}: raised (see above)")

    def target(self, what, value, unit, ratio=None, versus="", minimum=None, maximum=None, on_ratio=False,
               note=""):
        """A row of the final table: value (unit), its ratio to a reference (versus), and the issue's target on
        the value or (on_ratio) on the ratio."""
        measured = ratio if on_ratio else value
        if minimum is not None:
            goal, met = f">= {minimum:g}", measured >= minimum
        elif maximum is not None:
            goal, met = f"<= {maximum:g}", measured <= maximum
        else:
            goal, met = "", None
        if goal:
            goal += f"x {versus}" if on_ratio else f" {unit}"
        ratio_text = f"{ratio:.2f}x {versus}" if ratio is not None else ""
        verdict = "" if met is None else ("met" if met else "below")
        self.rows.append((what, value, unit, ratio_text, goal, verdict, note))

    def table(self):
        lines = [f"{'what':38s} {'measured':>17s}  {'ratio':18s} {'target':20s} {'verdict':7s} note"]
        for what, value, unit, ratio_text, goal, verdict, note in self.rows:
            lines.append(f"{what:38s} {value:9.2f} {unit:7s}  {ratio_text:18s} {goal:20s} {verdict:7s} {note}")
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ checks
def check_attention_case(run, lib, device, samples, heads, head_dim, queries, keys, backward, label=None,
                         check_heads=None):
    """Our bf16 forward (and backward) on random inputs against the f32 reference; returns the tensors so the
    timing can reuse them. check_heads limits the reference to sample 0 and its first heads (large shapes)."""
    width = heads * head_dim
    q = torch.randn(samples, queries, width, device=device).bfloat16()
    k = torch.randn(samples, keys, width, device=device).bfloat16()
    v = torch.randn(samples, keys, width, device=device).bfloat16()
    out = torch.full((samples, queries, width), math.nan, device=device)
    lse = torch.full((samples, heads, queries), math.nan, device=device)
    attention_forward(lib, q, k, v, out, lse, samples, queries, keys, heads, head_dim)
    tensors = {"q": q, "k": k, "v": v, "out": out, "lse": lse}
    if check_heads is None:
        sl, hs = slice(None), heads
    else:
        sl, hs = slice(0, 1), min(check_heads, heads)
    columns = slice(0, hs * head_dim)
    qs, ks, vs = q[sl, :, columns], k[sl, :, columns], v[sl, :, columns]
    name = label or f"N{samples} H{heads} Dh{head_dim} Tq{queries} Tk{keys}"

    def torch_error(errors, ref_out):
        """For scale: torch's own bf16 SDPA against the same f32 reference (not checked)."""
        sdpa = getattr(torch.nn.functional, "scaled_dot_product_attention", None)
        if sdpa is not None:
            qc, kc, vc = (t.contiguous() for t in (qs, ks, vs))
            torch_out = sdpa(heads_view(qc, queries, hs, head_dim), heads_view(kc, keys, hs, head_dim),
                             heads_view(vc, keys, hs, head_dim))
            errors["(torch sdpa out)"] = relative_error(torch_out.transpose(1, 2).reshape(ref_out.shape), ref_out)
        return errors

    if not backward:
        ref_out, ref_lse = attention_reference(qs, ks, vs, hs, head_dim)
        errors = {"out": relative_error(out[sl, :, columns], ref_out), "lse": relative_error(lse[sl, :hs], ref_lse)}
        run.check(f"attn fwd bf16 {name}", torch_error(errors, ref_out))
        return tensors
    d_out = torch.randn(samples, queries, width, device=device)
    delta = torch.full((samples, heads, queries), math.nan, device=device)
    d_out_bf16 = torch.empty(samples, queries, width, device=device, dtype=torch.bfloat16)
    dq = torch.full_like(out, math.nan)
    dk, dv = torch.full((samples, keys, width), math.nan, device=device), torch.full((samples, keys, width), math.nan,
                                                                                     device=device)
    attention_backward(lib, d_out, q, k, v, out, lse, delta, d_out_bf16, dq, dk, dv, samples, queries, keys, heads,
                       head_dim)
    ref_out, ref_lse, (ref_dq, ref_dk, ref_dv) = attention_reference(qs, ks, vs, hs, head_dim,
                                                                     d_out[sl, :, columns])
    errors = {"out": relative_error(out[sl, :, columns], ref_out), "lse": relative_error(lse[sl, :hs], ref_lse),
              "dq": relative_error(dq[sl, :, columns], ref_dq), "dk": relative_error(dk[sl, :, columns], ref_dk),
              "dv": relative_error(dv[sl, :, columns], ref_dv)}
    run.check(f"attn fwd+bwd bf16 {name}", torch_error(errors, ref_out))
    tensors.update(d_out=d_out, delta=delta, d_out_bf16=d_out_bf16, dq=dq, dk=dk, dv=dv)
    return tensors


def gemm_operands(batch, m, n, k, ta, tb, share_b, device):
    a = torch.randn(batch, *((k, m) if ta else (m, k)), device=device).bfloat16()
    b = torch.randn(1 if share_b else batch, *((n, k) if tb else (k, n)), device=device).bfloat16()
    return a, b


def check_gemm_case(run, lib, device, batch, m, n, k, ta, tb, with_bias, gelu, accumulate, share_b, label=None):
    a, b = gemm_operands(batch, m, n, k, ta, tb, share_b, device)
    bias = torch.randn(n, device=device) if with_bias else None
    out = torch.randn(batch, m, n, device=device) if accumulate else torch.full((batch, m, n), math.nan,
                                                                                 device=device)
    before = out.clone()
    stride_a = m * k if batch > 1 else 0
    stride_b = 0 if share_b or batch == 1 else n * k
    gemm_bf16(lib, a, ta, b, tb, bias, out, batch, m, n, k, stride_a, stride_b, accumulate, gelu)
    reference = gemm_reference(a, ta, b, tb, bias, before, batch, gelu, accumulate, share_b)
    name = label or (f"b{batch} {m}x{n}x{k} ta{ta} tb{tb}" + (" bias" if with_bias else "") +
                     (" gelu" if gelu else "") + (" acc" if accumulate else "") + (" shared-b" if share_b else ""))
    run.check(f"gemm bf16 {name}", {"out": relative_error(out, reference)})
    return a, b, out


def run_checks(run, lib, device):
    """The bf16 correctness checks on awkward shapes (also what --self-test runs on the emulator)."""
    for samples, heads, head_dim, queries, keys in ATTENTION_CHECKS:
        check_attention_case(run, lib, device, samples, heads, head_dim, queries, keys,
                             backward=head_dim in BACKWARD_HEAD_DIMS)
    for case in GEMM_CHECKS:
        check_gemm_case(run, lib, device, *case)


# ------------------------------------------------------------------------------------------------ timing (GPU)
def timed(function, samples=10, sample_seconds=2e-3):
    """Median seconds per call by CUDA events: 3 warm-up calls, then >= samples samples of `inner` back-to-back
    calls each (inner so that a sample lasts about sample_seconds, which hides the Python launch cost)."""
    for _ in range(3):
        function()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    function()
    end.record()
    end.synchronize()
    once = max(start.elapsed_time(end) / 1e3, 1e-7)
    inner = max(1, min(50, int(sample_seconds / once)))
    times = []
    for _ in range(samples):
        start.record()
        for _ in range(inner):
            function()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3 / inner)
    return statistics.median(times)


def line(what, ours, theirs, work, unit, theirs_name="torch"):
    scale = 1e12 if unit == "TFLOP/s" else 1e9
    theirs_text = f"{theirs_name} {work / theirs / scale:8.2f}" if theirs else f"{'':{len(theirs_name) + 9}s}"
    ratio = f"ratio {theirs / ours:5.2f}" if theirs else ""
    print(f"  {what:46s} microdit {work / ours / scale:8.2f}  {theirs_text} {unit}  {ratio}", flush=True)
    return work / ours / scale


def flash_context():
    """A context selecting SDPA's flash backend (FA2), or None when this torch has no way to ask for it."""
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
        return sdpa_kernel(SDPBackend.FLASH_ATTENTION)
    except ImportError:
        pass
    try:  # torch 2.0-2.2
        return torch.backends.cuda.sdp_kernel(enable_flash=True, enable_math=False, enable_mem_efficient=False)
    except (AttributeError, TypeError):  # older (1.13's private version takes other names) or removed
        return None


def time_torch_attention(q, k, v, d_out, heads, head_dim):
    """(forward s, backward s, backend) of SDPA on the same [N, T, H·Dh] bf16 storage (head views, no copies)."""
    sdpa = torch.nn.functional.scaled_dot_product_attention
    tq, tk = q.shape[1], k.shape[1]
    leaves = [t.detach().clone().requires_grad_() for t in (q, k, v)]
    views = [heads_view(leaves[0], tq, heads, head_dim)] + [heads_view(t, tk, heads, head_dim) for t in leaves[1:]]
    grad = heads_view(d_out.bfloat16(), tq, heads, head_dim)
    for backend in ("flash", "default"):
        context = flash_context() if backend == "flash" else None
        if backend == "flash" and context is None:
            continue
        try:
            if context is not None:
                context.__enter__()
            try:
                y = sdpa(*views)
                forward = timed(lambda: sdpa(*views))
                backward = timed(lambda: torch.autograd.grad(y, leaves, grad, retain_graph=True))
            finally:
                if context is not None:
                    context.__exit__(None, None, None)
            return forward, backward, backend
        except Exception as error:  # noqa: BLE001 — no flash kernel for this shape/build: the default backend
            print(f"  (torch sdpa {backend} backend unavailable: {(str(error).splitlines() or [''])[0]})")
    raise RuntimeError("torch sdpa failed on every backend")


def bench_attention_bf16(run, lib, device, quick):
    for label, samples, heads, head_dim, queries, keys in ATTENTION_SHAPES[:2] if quick else ATTENTION_SHAPES:
        t = check_attention_case(run, lib, device, samples, heads, head_dim, queries, keys, backward=True,
                                 label=label, check_heads=4)
        args = (samples, queries, keys, heads, head_dim)
        ours_fwd = timed(lambda: attention_forward(lib, t["q"], t["k"], t["v"], t["out"], t["lse"], *args))
        ours_bwd = timed(lambda: attention_backward(lib, t["d_out"], t["q"], t["k"], t["v"], t["out"], t["lse"],
                                                    t["delta"], t["d_out_bf16"], t["dq"], t["dk"], t["dv"], *args))
        torch_fwd, torch_bwd, backend = time_torch_attention(t["q"], t["k"], t["v"], t["d_out"], heads, head_dim)
        flops = attention_flops(samples, heads, head_dim, queries, keys)
        shape = f"N{samples} H{heads}"
        fwd = line(f"attn fwd bf16 {label} {shape}", ours_fwd, torch_fwd, flops, "TFLOP/s", f"sdpa-{backend}")
        bwd = line(f"attn bwd bf16 {label} {shape}", ours_bwd, torch_bwd, 2.5 * flops, "TFLOP/s", f"sdpa-{backend}")
        target = head_dim == 64 and queries >= 1024 and keys >= 1024
        run.target(f"attn fwd {label}", fwd, "TFLOP/s", torch_fwd / ours_fwd, f"sdpa-{backend}",
                   minimum=TARGETS["attention_fwd"] if target else None, note=shape)
        run.target(f"attn bwd {label}", bwd, "TFLOP/s", torch_bwd / ours_bwd, f"sdpa-{backend}",
                   minimum=TARGETS["attention_bwd"] if target else None, note=shape)
        del t
        torch.cuda.empty_cache()


def bench_gemm_bf16(run, lib, device, quick):
    for label, batch, m, n, k, ta, tb in GEMM_SHAPES[:3] if quick else GEMM_SHAPES:
        a, b = gemm_operands(batch, m, n, k, ta, tb, False, device)
        out = torch.full((batch, m, n), math.nan, device=device)
        stride_a, stride_b = (m * k, n * k) if batch > 1 else (0, 0)
        ours = lambda: gemm_bf16(lib, a, ta, b, tb, None, out, batch, m, n, k, stride_a, stride_b, False, False)
        ours()
        reference = gemm_reference(a, ta, b, tb, None, None, batch, False, False, False)
        run.check(f"gemm bf16 {label} {batch}x{m}x{n}x{k}", {"out": relative_error(out, reference)})
        del reference
        a_op = a.transpose(-1, -2) if ta else a
        b_op = b.transpose(-1, -2) if tb else b
        if batch == 1:
            a_op, b_op = a_op[0], b_op[0]
        theirs, ours_s = timed(lambda: torch.matmul(a_op, b_op)), timed(ours)
        flops = gemm_flops(batch, m, n, k)
        rate = line(f"gemm bf16 {label} {batch}x{m}x{n}x{k}", ours_s, theirs, flops, "TFLOP/s", "cublas")
        run.target(f"gemm {label}", rate, "TFLOP/s", theirs / ours_s, "cuBLAS", minimum=TARGETS["gemm_vs_cublas"],
                   on_ratio=True, note=f"{batch}x{m}x{n}x{k}")
        del a, b, out
    torch.cuda.empty_cache()


def bench_f32(run, lib, device, quick):
    """The f32 (CUDA-core) kernels against torch f32, TF32 off: the reference path when operands are f32."""
    for n, h, dh, tq, tk in F32_ATTENTION_SHAPES:
        q = torch.randn(n, tq, h * dh, device=device)
        k, v = torch.randn(n, tk, h * dh, device=device), torch.randn(n, tk, h * dh, device=device)
        out, lse = torch.full_like(q, math.nan), torch.full((n, h, tq), math.nan, device=device)
        d_out = torch.randn_like(q)
        dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
        delta = torch.empty(n, h, tq, device=device)
        fwd = lambda: lib.call("mdt_attention_fwd", None, ptr(q), ptr(k), ptr(v), ptr(out), ptr(lse), n, tq, tk, h, dh)
        bwd = lambda: lib.call("mdt_attention_bwd", None, ptr(d_out), ptr(q), ptr(k), ptr(v), ptr(out), ptr(lse),
                               ptr(delta), ptr(dq), ptr(dk), ptr(dv), n, tq, tk, h, dh)
        fwd()
        ref_out, ref_lse = attention_reference(q[:1], k[:1], v[:1], h, dh)
        run.check(f"attn fwd f32 N{n} H{h} Dh{dh} Tq{tq} Tk{tk}",
                  {"out": relative_error(out[:1], ref_out), "lse": relative_error(lse[:1], ref_lse)})
        leaves = [t.clone().requires_grad_() for t in (q, k, v)]
        views = [heads_view(leaves[0], tq, h, dh)] + [heads_view(t, tk, h, dh) for t in leaves[1:]]
        sdpa = torch.nn.functional.scaled_dot_product_attention
        y = sdpa(*views)
        flops = attention_flops(n, h, dh, tq, tk)
        line(f"attn fwd f32 N{n} H{h} Dh{dh} Tq{tq} Tk{tk}", timed(fwd), timed(lambda: sdpa(*views)), flops,
             "TFLOP/s")
        line(f"attn bwd f32 N{n} H{h} Dh{dh} Tq{tq} Tk{tk}", timed(bwd),
             timed(lambda: torch.autograd.grad(y, leaves, heads_view(d_out, tq, h, dh), retain_graph=True)),
             2.5 * flops, "TFLOP/s")
    for label, _, m, nn, kk, _, _ in GEMM_SHAPES[:1] if quick else GEMM_SHAPES[:2]:
        a, b = torch.randn(m, kk, device=device), torch.randn(kk, nn, device=device)
        c = torch.full((m, nn), math.nan, device=device)
        ours = lambda: gemm_f32(lib, a, b, c, m, nn, kk)
        ours()
        run.check(f"gemm f32 {label} {m}x{nn}x{kk}", {"out": relative_error(c, torch.matmul(a, b))})
        line(f"gemm f32 {label} {m}x{nn}x{kk}", timed(ours), timed(lambda: torch.matmul(a, b)), gemm_flops(1, m, nn, kk),
             "TFLOP/s")
    torch.cuda.empty_cache()


def bench_routing(run, lib, device, quick):
    """Expert-choice routing of the XL patch-mixer at 512 px (T 1024, width 768, 8 experts, k = T/4, MoE hidden
    3072): top-k + dispatch + combine against the expert GEMMs (ours, bf16, fc1 and fc2 batched over experts)."""
    n, t, e, d, hidden = ROUTING_SHAPE
    k = t // 4
    probs = torch.softmax(torch.randn(n, t, e, device=device), dim=-1)
    x = torch.randn(n, t, d, device=device)
    gates = torch.full((n, e, k), math.nan, device=device)
    indices = torch.full((n, e, k), -1, device=device, dtype=torch.int32)
    routed = torch.full((e, n * k, d), math.nan, device=device)
    combined = torch.full((n, t, d), math.nan, device=device)
    offsets = torch.full((n, t + 1), -1, device=device, dtype=torch.int32)
    slots = torch.full((n, e * k), -1, device=device, dtype=torch.int32)
    # The top-k and the routing's token→slot map, which the CUDA backend builds with it, once per routing.
    topk = lambda: (lib.call("mdt_moe_topk_fwd", None, ptr(probs), ptr(gates), ptr(indices), n, t, e, k),
                    lib.call("mdt_moe_token_slots", None, ptr(indices), ptr(offsets), ptr(slots), n, t, e, k, 0, None))
    # error_record NULL: indices come from our top-k, and the check itself still runs (skip, no report).
    dispatch = lambda: lib.call("mdt_moe_dispatch_fwd", None, ptr(x), ptr(indices), ptr(routed), n, t, e, k, d,
                                None)
    combine = lambda: lib.call("mdt_moe_combine_fwd", None, ptr(routed), ptr(gates), ptr(offsets), ptr(slots),
                               ptr(combined), n, t, e, k, d)
    topk()
    dispatch()
    combine()
    reference_gates, _ = torch.topk(probs.transpose(1, 2), k, dim=-1)
    run.exact("moe top-k gates vs torch.topk", torch.equal(gates, reference_gates))
    index64 = indices.long()
    gathered = torch.gather(x, 1, index64.reshape(n, e * k, 1).expand(n, e * k, d)).view(n, e, k, d)
    run.exact("moe dispatch vs torch.gather", torch.equal(routed.view(e, n, k, d).permute(1, 0, 2, 3), gathered))
    reference = torch.zeros(n * t, d, device=device)
    rows = (index64 + torch.arange(n, device=device).view(n, 1, 1) * t).reshape(-1)
    reference.index_add_(0, rows, (gates.unsqueeze(-1) * gathered).reshape(-1, d))
    run.check("moe combine vs index_add_", {"out": relative_error(combined.view(n * t, d), reference)})
    ours_topk, ours_dispatch, ours_combine = timed(topk), timed(dispatch), timed(combine)
    line(f"moe top-k + token→slot map N{n} T{t} E{e} k{k}", ours_topk, timed(lambda: torch.topk(probs.transpose(1, 2), k, dim=-1)),
         probs.numel() * 4.0, "GB/s")
    line(f"moe dispatch E{e} N{n}·k{k} D{d}", ours_dispatch,
         timed(lambda: torch.gather(x, 1, index64.reshape(n, e * k, 1).expand(n, e * k, d))), 2.0 * routed.numel() * 4,
         "GB/s", "torch.gather")
    line(f"moe combine E{e} N{n}·k{k} D{d}", ours_combine, None, (2.0 * routed.numel() + combined.numel()) * 4, "GB/s")
    routed_bf16 = routed.bfloat16()
    w1 = torch.randn(e, d, hidden, device=device).bfloat16()
    w2 = torch.randn(e, hidden, d, device=device).bfloat16()
    h1 = torch.empty(e, n * k, hidden, device=device)
    h1_bf16 = torch.randn(e, n * k, hidden, device=device).bfloat16()
    h2 = torch.empty(e, n * k, d, device=device)
    rows_e = n * k
    fc1 = lambda: gemm_bf16(lib, routed_bf16, 0, w1, 0, None, h1, e, rows_e, hidden, d, rows_e * d, d * hidden, False,
                            True)
    fc2 = lambda: gemm_bf16(lib, h1_bf16, 0, w2, 0, None, h2, e, rows_e, d, hidden, rows_e * hidden, hidden * d,
                            False, False)
    experts = timed(fc1) + timed(fc2)
    routing = ours_topk + ours_dispatch + ours_combine
    print(f"  expert GEMMs (bf16 fc1+GELU, fc2) {experts * 1e3:.3f} ms; routing (top-k + dispatch + combine)"
          f" {routing * 1e3:.3f} ms = {routing / experts:.1%}", flush=True)
    run.target("moe routing (top-k+dispatch+combine)", routing * 1e3, "ms", routing / experts, "expert GEMMs",
               maximum=TARGETS["routing_vs_experts"], on_ratio=True,
               note=f"N{n} T{t} E{e} D{d} hidden {hidden}: experts {experts * 1e3:.3f} ms")
    torch.cuda.empty_cache()


def bench_gather(run, lib, device, quick):
    """The deferred mask's token gather (keep 25% of 1024 tokens, width 1024; 256 MiB out, far past L2) against
    torch.gather and a device-to-device copy of the same bytes."""
    n, t, d = GATHER_SHAPE
    kept = t // 4
    x = torch.randn(n, t, d, device=device)
    ids = torch.stack([torch.randperm(t, device=device)[:kept] for _ in range(n)]).int()
    gathered = torch.full((n, kept, d), math.nan, device=device)
    ours = lambda: lib.call("mdt_tokens_gather_rows", None, ptr(x), ptr(ids), ptr(gathered), n, t, kept, d, None)
    ours()
    ids64 = ids.long()
    run.exact("token gather vs torch.gather", torch.equal(gathered, torch.gather(x, 1, ids64.unsqueeze(-1).expand(
        n, kept, d))))
    moved = 2.0 * gathered.numel() * 4
    ours_s = timed(ours)
    line(f"token gather N{n} T{t} kept {kept} D{d}", ours_s,
         timed(lambda: torch.gather(x, 1, ids64.unsqueeze(-1).expand(n, kept, d))), moved, "GB/s", "torch.gather")
    target = torch.empty_like(gathered)
    copy_s = timed(lambda: target.copy_(gathered))
    line("  device-to-device copy (same bytes)", copy_s, None, moved, "GB/s")
    run.target("token gather", moved / ours_s / 1e9, "GB/s", copy_s / ours_s, "D2D copy",
               minimum=TARGETS["gather_vs_copy"], on_ratio=True,
               note=f"N{n} T{t} kept {kept} D{d}; copy {moved / copy_s / 1e9:.0f} GB/s")
    del x, gathered, target
    torch.cuda.empty_cache()


def gpu_main(arguments):
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    device = torch.device("cuda")
    properties = torch.cuda.get_device_properties(0)
    print(f"{properties.name}, {properties.multi_processor_count} SMs, {properties.total_memory / 2**30:.0f} GiB;"
          f" torch {torch.__version__}, CUDA {torch.version.cuda}", flush=True)
    lib = Library(arguments.library)
    run = Run()
    run.section("correctness: bf16 kernels on awkward shapes", run_checks, run, lib, device)
    run.section("attention bf16 (tensor cores) vs torch sdpa", bench_attention_bf16, run, lib, device, arguments.quick)
    run.section("GEMM bf16 (tensor cores) vs torch.matmul (cuBLAS)", bench_gemm_bf16, run, lib, device,
                arguments.quick)
    run.section("MoE routing", bench_routing, run, lib, device, arguments.quick)
    run.section("token gather", bench_gather, run, lib, device, arguments.quick)
    run.section("f32 kernels (CUDA cores) vs torch f32", bench_f32, run, lib, device, arguments.quick)
    return finish(run, arguments.table, properties.name)


def finish(run, table_path, device_name):
    table = (f"=== targets on {device_name} (benchmarks, not tests: 'below' does not fail the run)\n" + run.table())
    if run.failures:
        table += "\n=== FAILED checks:\n" + "\n".join(f"  {failure}" for failure in run.failures)
    else:
        table += f"\n=== every correctness check within {TOLERANCE:g}"
    print("\n" + table, flush=True)
    if table_path:
        with open(table_path, "w") as out:
            out.write(table + "\n")
    return 1 if run.failures else 0


# --------------------------------------------------------------------------------------------------- self-test
def self_test(arguments):
    """CPU only: the pure-Python parts, and the correctness checks through the emulator library when built."""
    torch.manual_seed(0)
    signatures = parse_header()
    for name, count in (("mdt_attention_fwd_bf16", 11), ("mdt_attention_bwd_bf16", 17), ("mdt_gemm_matmul_bf16", 17),
                        ("mdt_gemm_matmul", 16), ("mdt_attention_fwd", 11), ("mdt_attention_bwd", 16),
                        ("mdt_moe_topk_fwd", 8), ("mdt_moe_dispatch_fwd", 10), ("mdt_moe_combine_fwd", 11),
                        ("mdt_tokens_gather_rows", 9)):
        assert len(signatures[name]) == count, (name, signatures[name])
    assert signatures["mdt_gemm_matmul_bf16"][2] == ctypes.c_int and signatures["mdt_gemm_matmul_bf16"][7] == \
        ctypes.c_int64, "gemm bf16 signature"
    # FLOP formulas against hand values.
    assert attention_flops(1, 1, 64, 1024, 1024) == 4 * 1024 * 1024 * 64
    assert attention_flops(2, 3, 32, 10, 7, backward=True) == 2.5 * 4 * 2 * 3 * 10 * 7 * 32
    assert gemm_flops(8, 2048, 3840, 1024) == 2 * 8 * 2048 * 3840 * 1024
    # Shape tables: within the kernels' limits and filling an H100/H200 (132 SMs, 4+ waves of 64-query tiles).
    for label, samples, heads, head_dim, queries, keys in ATTENTION_SHAPES:
        assert samples * heads <= 65535 and head_dim in BACKWARD_HEAD_DIMS, label
        assert samples * heads * math.ceil(queries / 64) >= 4 * 132, label
        assert samples * queries * heads * head_dim * 4 <= 2 ** 30, label  # f32 tensors stay <= 1 GiB
    assert any(s[3] == 64 and s[4] >= 1024 for s in ATTENTION_SHAPES) and any(s[5] == 77 for s in ATTENTION_SHAPES)
    for label, batch, m, n, k, ta, tb in GEMM_SHAPES:
        assert (m + 127) // 128 <= 65535 and m % 8 == 0 and n % 8 == 0 and k % 8 == 0, label
    for samples, heads, head_dim, queries, keys in ATTENTION_CHECKS:
        assert head_dim in (32, 64, 128) and (queries % 64 or keys % 64)
    # The references against naive loops on tiny inputs.
    q, k, v = (torch.randn(2, t, 2 * 8).bfloat16() for t in (5, 3, 3))
    d_out = torch.randn(2, 5, 16)
    out, lse, (dq, dk, dv) = attention_reference(q, k, v, 2, 8, d_out)
    for n in range(2):
        for h in range(2):
            cols = slice(8 * h, 8 * h + 8)
            qs, ks, vs = (t[n, :, cols].double() for t in (q, k, v))
            scores = qs @ ks.T / math.sqrt(8)
            assert torch.allclose(lse[n, h].double(), torch.logsumexp(scores, -1), atol=1e-5)
            p = torch.softmax(scores, -1)
            assert torch.allclose(out[n, :, cols].double(), p @ vs, atol=1e-5)
            g = d_out[n, :, cols].double()
            dp = g @ vs.T
            ds = p * (dp - (dp * p).sum(-1, keepdim=True))
            assert torch.allclose(dv[n, :, cols].double(), p.T @ g, atol=1e-4)
            assert torch.allclose(dq[n, :, cols].double(), ds @ ks / math.sqrt(8), atol=1e-4)
            assert torch.allclose(dk[n, :, cols].double(), ds.T @ qs / math.sqrt(8), atol=1e-4)
    a, b = gemm_operands(2, 3, 4, 5, 1, 1, True, torch.device("cpu"))
    bias, before = torch.randn(4), torch.randn(2, 3, 4)
    result = gemm_reference(a, 1, b, 1, bias, before, 2, True, True, True)
    for i in range(2):
        x = a[i].double().T @ b[0].double().T + bias.double()
        x = 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3))) + before[i].double()
        assert torch.allclose(result[i].double(), x, atol=1e-5)
    assert relative_error(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 4.0])) == 0.5
    assert relative_error(torch.tensor([math.nan]), torch.tensor([1.0])) == math.inf
    # The table and the verdicts.
    run = Run()
    run.target("attn fwd self Dh64 T1024", 312.5, "TFLOP/s", 0.5, "sdpa-flash", minimum=300)
    run.target("token gather", 3000.0, "GB/s", 0.8, "D2D copy", minimum=0.85, on_ratio=True)
    run.target("moe routing", 0.2, "ms", 0.05, "expert GEMMs", maximum=0.10, on_ratio=True)
    run.check("deliberately wrong (must FAIL)", {"out": 0.5})
    text = run.table()
    assert " met " in text.splitlines()[1] and " below " in text.splitlines()[2] and " met " in text.splitlines()[3]
    assert len(run.failures) == 1
    print("pure-Python parts: ok")
    emu = arguments.emu or os.path.join(ROOT, "target", "native", "libmicrodit_emu.so")
    if not os.path.exists(emu):
        print(f"no emulator library at {emu}: the kernel checks were not run (make -C native emu)")
        return 0
    run = Run()
    run_checks(run, Library(emu), torch.device("cpu"))
    # And a wrong call must surface as an error, not pass silently.
    try:
        attention_forward(Library(emu), q, k, v, out, lse, 2, 5, 3, 2, 8)
        run.failures.append("head_dim 8 was accepted by mdt_attention_fwd_bf16")
    except RuntimeError as error:
        print(f"  bad head_dim reported: {error}")
    print(f"emulator checks ({emu}): {'ok' if not run.failures else run.failures}")
    failures = len(run.failures)
    mutations(run, Library(emu))
    run.failures = run.failures[:failures]
    if not run.failures:
        dry_run(Library(emu))
    return 1 if run.failures else 0


def mutations(run, lib):
    """The checks must fail on wrong kernels: a forward that masks one key too many, a backward that sees one key
    too few, a GEMM told the wrong transpose; each must be reported as a failure."""
    global attention_forward, attention_backward, gemm_bf16
    saved = attention_forward, attention_backward, gemm_bf16
    cases = (
        ("forward masking", "attention_forward",
         lambda lib, q, k, v, out, lse, n, tq, tk, h, dh: saved[0](lib, q, k, v, out, lse, n, tq, tk - 1, h, dh),
         lambda: check_attention_case(run, lib, torch.device("cpu"), 1, 2, 64, 70, 77, backward=False)),
        ("backward keys", "attention_backward",
         lambda lib, *rest: saved[1](lib, *rest[:-3], rest[-3] - 1, *rest[-2:]),
         lambda: check_attention_case(run, lib, torch.device("cpu"), 1, 2, 32, 70, 77, backward=True)),
        ("gemm transpose", "gemm_bf16",
         lambda lib, a, ta, b, tb, *rest: saved[2](lib, a, 1 - ta, b, tb, *rest),
         lambda: check_gemm_case(run, lib, torch.device("cpu"), 1, 64, 64, 64, 0, 0, False, False, False, False)),
    )
    print("mutations (each check below must FAIL):")
    try:
        for name, target, broken, case in cases:
            globals()[target] = broken
            before = len(run.failures)
            case()
            assert len(run.failures) == before + 1, f"the check missed the {name} mutation"
            attention_forward, attention_backward, gemm_bf16 = saved
    finally:
        attention_forward, attention_backward, gemm_bf16 = saved
    print("mutations: each caught")


def dry_run(lib):
    """Every timed section once more on the emulator with shrunk shapes and a fake clock, so their calls, layouts
    and checks run before a GPU does (torch 1.13 has no SDPA: a plain version stands in)."""
    global timed, ATTENTION_SHAPES, GEMM_SHAPES, ROUTING_SHAPE, GATHER_SHAPE, F32_ATTENTION_SHAPES
    saved = (timed, ATTENTION_SHAPES, GEMM_SHAPES, ROUTING_SHAPE, GATHER_SHAPE, F32_ATTENTION_SHAPES)
    functional = torch.nn.functional
    had_sdpa = hasattr(functional, "scaled_dot_product_attention")

    def plain_sdpa(q, k, v):
        scores = torch.matmul(q.float(), k.float().transpose(-1, -2)) / math.sqrt(q.shape[-1])
        return torch.matmul(torch.softmax(scores, dim=-1), v.float()).to(q.dtype)

    def fake_timed(function, samples=10, sample_seconds=2e-3):
        function()
        return 1e-3

    timed = fake_timed
    ATTENTION_SHAPES = (("self Dh64 T1024", 1, 2, 64, 130, 130), ("cross Dh32", 2, 1, 32, 70, 77))
    GEMM_SHAPES = (("plain", 1, 72, 64, 40, 0, 0), ("batched", 2, 40, 48, 56, 0, 0), ("a^T", 1, 40, 48, 64, 1, 0),
                   ("b^T", 1, 40, 48, 64, 0, 1))
    ROUTING_SHAPE, GATHER_SHAPE, F32_ATTENTION_SHAPES = (2, 64, 4, 32, 64), (2, 40, 24), ((1, 2, 32, 40, 77),)
    if not had_sdpa:
        functional.scaled_dot_product_attention = plain_sdpa
    run = Run()
    try:
        device = torch.device("cpu")
        run.section("dry run: attention bf16", bench_attention_bf16, run, lib, device, False)
        run.section("dry run: GEMM bf16", bench_gemm_bf16, run, lib, device, False)
        run.section("dry run: MoE routing", bench_routing, run, lib, device, False)
        run.section("dry run: token gather", bench_gather, run, lib, device, False)
        run.section("dry run: f32 kernels", bench_f32, run, lib, device, False)
    finally:
        timed, ATTENTION_SHAPES, GEMM_SHAPES, ROUTING_SHAPE, GATHER_SHAPE, F32_ATTENTION_SHAPES = saved
        if not had_sdpa:
            del functional.scaled_dot_product_attention
    finish(run, None, "the emulator (dry run, fake clock)")
    assert not run.failures, run.failures
    assert len(run.rows) == 2 * 2 + 4 + 1 + 1, run.rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("library", nargs="?", help="libmicrodit_cuda.so")
    parser.add_argument("--table", help="also write the final table to this file")
    parser.add_argument("--quick", action="store_true", help="fewer timed shapes")
    parser.add_argument("--self-test", action="store_true", help="CPU-only test of this script")
    parser.add_argument("--emu", help="libmicrodit_emu.so for --self-test")
    arguments = parser.parse_args(argv)
    if arguments.self_test:
        return self_test(arguments)
    if not arguments.library:
        parser.error("the library path is required")
    return gpu_main(arguments)


if __name__ == "__main__":
    sys.exit(main())
