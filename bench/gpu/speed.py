"""Times microdit's CUDA kernels against PyTorch on the same shapes and prints TFLOP/s, GB/s and the ratio.

Usage: python3 bench/gpu/speed.py target/native/libmicrodit_cuda.so   (called by bench/gpu/check.sh)
The kernels are called through ctypes on PyTorch's tensors (the default stream), timed with CUDA events as
the median of several runs after a warm-up. microdit's kernels are f32 (CUDA cores); PyTorch runs f32 with TF32
off, and bf16 is shown for reference.
"""
import ctypes
import sys

import torch

lib = ctypes.CDLL(sys.argv[1])
P, L, I = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
lib.mdt_error_string.restype = ctypes.c_char_p
lib.mdt_last_error_message.restype = ctypes.c_char_p
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False


def call(name, *args):
    status = getattr(lib, name)(*args)
    if status != 0:
        raise RuntimeError(f"{name}: {lib.mdt_last_error_message().decode()}")


def ptr(t):
    return P(t.data_ptr())


def timed(fn, repeats=10):
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return sorted(times)[len(times) // 2]


def report(what, ours, theirs, work, unit):
    scale = 1e12 if unit == "TFLOP/s" else 1e9
    print(f"{what:44s} microdit {work / ours / scale:8.2f} {unit}  torch {work / theirs / scale:8.2f} {unit}"
          f"  ratio {theirs / ours:5.2f}")


dev = torch.device("cuda")
print(torch.cuda.get_device_name(0), "torch", torch.__version__)

# Attention: N 8, H 16, Dh 64, T 1024 (self) and 77 caption keys (cross).
for n, h, dh, tq, tk in ((8, 16, 64, 1024, 1024), (32, 16, 64, 256, 77)):
    q = torch.randn(n, tq, h * dh, device=dev)
    k, v = torch.randn(n, tk, h * dh, device=dev), torch.randn(n, tk, h * dh, device=dev)
    out, lse = torch.empty_like(q), torch.empty(n, h, tq, device=dev)
    d_out = torch.randn_like(q)
    dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
    delta = torch.empty(n, h, tq, device=dev)
    fwd = lambda: call("mdt_attention_fwd", None, ptr(q), ptr(k), ptr(v), ptr(out), ptr(lse), L(n), L(tq), L(tk),
                       L(h), L(dh))
    bwd = lambda: call("mdt_attention_bwd", None, ptr(d_out), ptr(q), ptr(k), ptr(v), ptr(out), ptr(lse), ptr(delta),
                       ptr(dq), ptr(dk), ptr(dv), L(n), L(tq), L(tk), L(h), L(dh))
    heads = lambda t, tokens: t.view(n, tokens, h, dh).transpose(1, 2)
    qh, kh, vh = (heads(t, s).contiguous().requires_grad_() for t, s in ((q, tq), (k, tk), (v, tk)))
    sdpa = lambda: torch.nn.functional.scaled_dot_product_attention(qh, kh, vh)
    y = sdpa()
    flops = 4.0 * n * h * tq * tk * dh
    fwd()
    reference = y.detach().transpose(1, 2).reshape(n, tq, h * dh)
    print(f"attention max |difference| to torch: {(out - reference).abs().max().item():.2e}")
    report(f"attention fwd f32 N{n} H{h} Dh{dh} Tq{tq} Tk{tk}", timed(fwd), timed(sdpa), flops, "TFLOP/s")
    report(f"attention bwd f32 N{n} H{h} Dh{dh} Tq{tq} Tk{tk}", timed(bwd),
           timed(lambda: torch.autograd.grad(y, (qh, kh, vh), heads(d_out, tq), retain_graph=True)), 2.5 * flops,
           "TFLOP/s")
    qb, kb, vb = (t.detach().bfloat16() for t in (qh, kh, vh))
    t_bf16 = timed(lambda: torch.nn.functional.scaled_dot_product_attention(qb, kb, vb))
    print(f"{'  (torch bf16 sdpa forward)':44s} {flops / t_bf16 / 1e12:8.2f} TFLOP/s")

# GEMM: MicroDiT-XL shapes (tokens × D into the 4·D MLP, and its projection back).
for m, nn, kk in ((8192, 4608, 1152), (8192, 1152, 4608)):
    a, b, c = torch.randn(m, kk, device=dev), torch.randn(kk, nn, device=dev), torch.empty(m, nn, device=dev)
    ours = timed(lambda: call("mdt_gemm_matmul", None, ptr(a), I(0), ptr(b), I(0), None, ptr(c), L(1), L(m), L(nn),
                              L(kk), L(0), L(0), I(0)))
    report(f"gemm f32 {m}x{nn}x{kk}", ours, timed(lambda: torch.matmul(a, b)), 2.0 * m * nn * kk, "TFLOP/s")
    ab, bb = a.bfloat16(), b.bfloat16()
    t_bf16 = timed(lambda: torch.matmul(ab, bb))
    print(f"{'  (torch bf16 matmul)':44s} {2.0 * m * nn * kk / t_bf16 / 1e12:8.2f} TFLOP/s")

# MoE routing: top-k per (sample, expert) over tokens, then the expert-major gather.
n, t, e, d, k = 64, 1024, 8, 1152, 256
probs = torch.softmax(torch.randn(n, t, e, device=dev), dim=-1)
x = torch.randn(n, t, d, device=dev)
gates, indices = torch.empty(n, e, k, device=dev), torch.empty(n, e, k, device=dev, dtype=torch.int32)
routed = torch.empty(e, n * k, d, device=dev)
ours_topk = timed(lambda: call("mdt_moe_topk_fwd", None, ptr(probs), ptr(gates), ptr(indices), L(n), L(t), L(e), L(k)))
reference_gates, reference_indices = torch.topk(probs.transpose(1, 2), k, dim=-1)
print("top-k gates equal torch's:", torch.equal(gates, reference_gates))
theirs_topk = timed(lambda: torch.topk(probs.transpose(1, 2), k, dim=-1))
report(f"moe top-k N{n} T{t} E{e} k{k}", ours_topk, theirs_topk, probs.numel() * 4.0, "GB/s")
ours_dispatch = timed(lambda: call("mdt_moe_dispatch_fwd", None, ptr(x), ptr(indices), ptr(routed), L(n), L(t), L(e),
                                   L(k), L(d)))
index64 = indices.long()
torch_dispatch = lambda: torch.gather(x, 1, index64.reshape(n, e * k, 1).expand(n, e * k, d))
report(f"moe dispatch (gather) E{e} N{n}·k{k} D{d}", ours_dispatch, timed(torch_dispatch), 2.0 * routed.numel() * 4,
       "GB/s")
expert_gemm = timed(lambda: torch.bmm(routed[:, :, :], torch.randn(e, d, 4 * d, device=dev)))
print(f"routing overhead (top-k + dispatch) vs one expert bmm: {(ours_topk + ours_dispatch) / expert_gemm:.1%}")

# Token gather of the deferred mask: keep 25% of 1024 tokens.
kept = t // 4
ids = torch.stack([torch.randperm(t, device=dev)[:kept] for _ in range(n)]).int()
gathered = torch.empty(n, kept, d, device=dev)
ours = timed(lambda: call("mdt_tokens_gather_rows", None, ptr(x), ptr(ids), ptr(gathered), L(n), L(t), L(kept), L(d)))
ids64 = ids.long()
theirs = timed(lambda: torch.gather(x, 1, ids64.unsqueeze(-1).expand(n, kept, d)))
report(f"token gather N{n} T{t} kept {kept} D{d}", ours, theirs, 2.0 * gathered.numel() * 4, "GB/s")
source = torch.empty(gathered.numel(), device=dev)
copy = timed(lambda: source.copy_(gathered.view(-1)))
print(f"{'  device-to-device copy':44s} {2.0 * gathered.numel() * 4 / copy / 1e9:8.2f} GB/s;"
      f" gather at {copy / ours:.0%} of it")
