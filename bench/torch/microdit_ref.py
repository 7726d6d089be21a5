"""An independent PyTorch MicroDiT (Sehwag et al. 2024), written from /work/shared/reference/microdit-spec.md.

It serves as the oracle for the Java engine's forward pass and as the PyTorch peer in benchmarks. Constructor
fields, module and state-dict names follow the official micro_diffusion `DiT`, so `load_state_dict` accepts an
official checkpoint or a safetensors file the engine wrote (buffers `pos_embed` [1,T,D] and `mask_token`
[1,1,p*p*C] included). Runs on torch 1.13: LayerNorm without bias and the attention kernel are written here.

Differences from the official code that do not change the maths: the MoE dispatches with gather/scatter-add
instead of one-hot einsums; the masked forward can take explicit `ids_keep` and a masking mode.
"""

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

FREQUENCY_EMBEDDING_SIZE = 512


# ---------------------------------------------------------------------------------------------------------------
# Configs
# ---------------------------------------------------------------------------------------------------------------

CONFIG_FIELDS = ("input_size", "patch_size", "in_channels", "dim", "depth", "head_dim", "multiple_of",
                 "caption_channels", "pos_interp_scale", "norm_eps", "depth_init", "qkv_multipliers",
                 "ffn_multipliers", "use_patch_mixer", "patch_mixer_depth", "patch_mixer_dim",
                 "patch_mixer_qkv_ratio", "patch_mixer_mlp_ratio", "use_bias", "num_experts", "expert_capacity",
                 "experts_every_n")

# The official DiT constructor defaults.
DEFAULTS = dict(input_size=32, patch_size=2, in_channels=4, dim=1152, depth=28, head_dim=64, multiple_of=256,
                caption_channels=1024, pos_interp_scale=1.0, norm_eps=1e-6, depth_init=True, qkv_multipliers=[1.0],
                ffn_multipliers=[4.0], use_patch_mixer=True, patch_mixer_depth=4, patch_mixer_dim=512,
                patch_mixer_qkv_ratio=1.0, patch_mixer_mlp_ratio=1.0, use_bias=True, num_experts=8,
                expert_capacity=1, experts_every_n=2)


def _linspace(a, b):
    return {"linspace": [a, b]}


BUILTIN = {
    "microdit-xl-2": dict(input_size=32, patch_size=2, in_channels=4, dim=1024, depth=28, head_dim=64,
                          multiple_of=256, caption_channels=1024, pos_interp_scale=1.0, norm_eps=1e-6,
                          depth_init=True, qkv_multipliers=_linspace(0.5, 1.0),
                          ffn_multipliers=_linspace(0.5, 4.0), use_patch_mixer=True, patch_mixer_depth=6,
                          patch_mixer_dim=768, patch_mixer_qkv_ratio=1.0, patch_mixer_mlp_ratio=4.0,
                          use_bias=False, num_experts=8, expert_capacity=2.0, experts_every_n=2),
    "microdit-tiny-2": dict(input_size=32, patch_size=2, in_channels=4, dim=512, depth=16, head_dim=32,
                            multiple_of=256, caption_channels=1024, pos_interp_scale=1.0, norm_eps=1e-6,
                            depth_init=True, qkv_multipliers=_linspace(0.5, 1.0),
                            ffn_multipliers=_linspace(0.5, 4.0), use_patch_mixer=True, patch_mixer_depth=4,
                            patch_mixer_dim=512, patch_mixer_qkv_ratio=1.0, patch_mixer_mlp_ratio=4.0,
                            use_bias=False, num_experts=8, expert_capacity=2.0, experts_every_n=2),
    # The engine's CPU-sized config for Fashion-MNIST (MicroDiTConfigs.fashionSmall).
    "fashion-small": dict(input_size=32, patch_size=4, in_channels=1, dim=128, depth=6, head_dim=32,
                          multiple_of=64, caption_channels=64, pos_interp_scale=1.0, norm_eps=1e-6,
                          depth_init=True, qkv_multipliers=_linspace(0.5, 1.0),
                          ffn_multipliers=_linspace(0.5, 4.0), use_patch_mixer=True, patch_mixer_depth=2,
                          patch_mixer_dim=128, patch_mixer_qkv_ratio=1.0, patch_mixer_mlp_ratio=4.0,
                          use_bias=False, num_experts=4, expert_capacity=2.0, experts_every_n=2),
}


def resolve_config(config):
    """A DiT kwargs dict from a built-in name, a JSON file path or a dict with the official field names.

    Fields left out take the official constructor defaults; multipliers may be {"linspace": [a, b]}, expanded
    to `depth` values with np.linspace as the official factories do. A "name" field is ignored.
    """
    import json
    import os
    if isinstance(config, str):
        if config in BUILTIN:
            config = BUILTIN[config]
        elif os.path.isfile(config):
            with open(config) as f:
                config = json.load(f)
        else:
            raise ValueError(f"config {config!r} is neither built-in ({', '.join(BUILTIN)}) nor a file")
    unknown = set(config) - set(CONFIG_FIELDS) - {"name"}
    if unknown:
        raise ValueError(f"unknown config fields {sorted(unknown)}")
    resolved = dict(DEFAULTS)
    resolved.update({k: v for k, v in config.items() if k != "name"})
    for field in ("qkv_multipliers", "ffn_multipliers"):
        value = resolved[field]
        if isinstance(value, dict):
            a, b = value["linspace"]
            value = np.linspace(a, b, num=resolved["depth"], dtype=float)
        resolved[field] = [float(v) for v in value]
    return resolved


# ---------------------------------------------------------------------------------------------------------------
# Layers
# ---------------------------------------------------------------------------------------------------------------

class LayerNorm(nn.Module):
    """LayerNorm without bias: weight only (affine) or no parameters at all (the QK-norm)."""

    def __init__(self, dim, eps=1e-6, affine=True, device=None):
        super().__init__()
        self.dim = dim
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim, device=device)) if affine else None

    def forward(self, x):
        mean = x.mean(dim=-1, keepdim=True)
        centred = x - mean
        variance = (centred * centred).mean(dim=-1, keepdim=True)
        out = centred * torch.rsqrt(variance + self.eps)
        return out * self.weight if self.weight is not None else out


def attention(q, k, v):
    """softmax(q kᵀ/√d) v over [B, H, N, d] tensors, with no mask."""
    scores = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(q.shape[-1]))
    return torch.matmul(torch.softmax(scores, dim=-1), v)


def modulate(x, shift, scale):
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


def gelu_tanh():
    return nn.GELU(approximate="tanh")


class SelfAttention(nn.Module):
    """Self-attention with inner width `hidden_dim`, QK-norm over all heads jointly (non-affine LN)."""

    def __init__(self, dim, num_heads, qkv_bias, norm_eps, hidden_dim=None, device=None):
        super().__init__()
        hidden_dim = hidden_dim or dim
        assert hidden_dim % num_heads == 0
        self.num_heads = num_heads
        self.head_dim = hidden_dim // num_heads
        self.qkv = nn.Linear(dim, 3 * hidden_dim, bias=qkv_bias, device=device)
        self.proj = nn.Linear(hidden_dim, dim, bias=qkv_bias, device=device)
        self.ln_q = LayerNorm(hidden_dim, norm_eps, affine=False)
        self.ln_k = LayerNorm(hidden_dim, norm_eps, affine=False)

    def forward(self, x):
        b, n, _ = x.shape
        h, d = self.num_heads, self.head_dim
        q, k, v = self.qkv(x).reshape(b, n, 3, h * d).unbind(2)
        q = self.ln_q(q).reshape(b, n, h, d).transpose(1, 2)
        k = self.ln_k(k).reshape(b, n, h, d).transpose(1, 2)
        v = v.reshape(b, n, h, d).transpose(1, 2)
        out = attention(q, k, v).transpose(1, 2).reshape(b, n, h * d)
        return self.proj(out)


class CrossAttention(nn.Module):
    """Queries from the image tokens, keys and values from the caption tokens; QK-norm as SelfAttention."""

    def __init__(self, dim, num_heads, qkv_bias, norm_eps, hidden_dim=None, device=None):
        super().__init__()
        hidden_dim = hidden_dim or dim
        assert hidden_dim % num_heads == 0
        self.num_heads = num_heads
        self.head_dim = hidden_dim // num_heads
        self.q_linear = nn.Linear(dim, hidden_dim, bias=qkv_bias, device=device)
        self.kv_linear = nn.Linear(dim, 2 * hidden_dim, bias=qkv_bias, device=device)
        self.proj = nn.Linear(hidden_dim, dim, bias=qkv_bias, device=device)
        self.ln_q = LayerNorm(hidden_dim, norm_eps, affine=False)
        self.ln_k = LayerNorm(hidden_dim, norm_eps, affine=False)

    def forward(self, x, cond):
        b, n, _ = x.shape
        length = cond.shape[1]
        h, d = self.num_heads, self.head_dim
        q = self.ln_q(self.q_linear(x)).reshape(b, n, h, d).transpose(1, 2)
        k, v = self.kv_linear(cond).reshape(b, length, 2, h * d).unbind(2)
        k = self.ln_k(k).reshape(b, length, h, d).transpose(1, 2)
        v = v.reshape(b, length, h, d).transpose(1, 2)
        out = attention(q, k, v).transpose(1, 2).reshape(b, n, h * d)
        return self.proj(out)


def round_up(value, multiple):
    return multiple * ((value + multiple - 1) // multiple)


class FeedForward(nn.Module):
    """SwiGLU: w3(silu(w1 x) · w2 x), hidden = round_up(int(2·hidden/3), multiple_of)."""

    def __init__(self, dim, hidden_dim, multiple_of, use_bias, device=None):
        super().__init__()
        self.hidden_dim = round_up(int(2 * hidden_dim / 3), multiple_of)
        self.w1 = nn.Linear(dim, self.hidden_dim, bias=use_bias, device=device)
        self.w2 = nn.Linear(dim, self.hidden_dim, bias=use_bias, device=device)
        self.w3 = nn.Linear(self.hidden_dim, dim, bias=use_bias, device=device)

    def forward(self, x):
        return self.w3(F.silu(self.w1(x)) * self.w2(x))


class FeedForwardECMoe(nn.Module):
    """Expert-choice MoE with exact-GELU experts, per sample: softmax over experts, each expert takes its top-k
    tokens, k = int(capacity·t/E); outputs weighted by the raw probabilities and summed per token."""

    def __init__(self, num_experts, expert_capacity, dim, hidden_dim, multiple_of, device=None):
        super().__init__()
        self.num_experts = num_experts
        self.expert_capacity = expert_capacity
        self.hidden_dim = round_up(hidden_dim, multiple_of)
        self.w1 = nn.Parameter(torch.ones(num_experts, dim, self.hidden_dim, device=device))
        self.w2 = nn.Parameter(torch.ones(num_experts, self.hidden_dim, dim, device=device))
        self.gate = nn.Linear(dim, num_experts, bias=False, device=device)

    def forward(self, x):
        n, t, d = x.shape
        k = int(self.expert_capacity * t / self.num_experts)
        # The router runs in f32 even under autocast (as microdit's does): bf16 logits would change which tokens
        # an expert takes, and the two engines would then route differently.
        with torch.autocast(device_type=x.device.type, enabled=False):
            probs = torch.softmax(self.gate(x.float()), dim=-1)            # [n, t, E]
        weights, chosen = torch.topk(probs.transpose(1, 2), k, dim=-1)     # [n, E, k]
        index = chosen.reshape(n, self.num_experts * k, 1).expand(-1, -1, d)
        picked = torch.gather(x, 1, index).reshape(n, self.num_experts, k, d)
        hidden = F.gelu(torch.einsum("nekd,edf->nekf", picked, self.w1))
        out = torch.einsum("nekf,efd->nekd", hidden, self.w2) * weights.unsqueeze(-1)
        result = torch.zeros_like(x)
        result.scatter_add_(1, index, out.reshape(n, self.num_experts * k, d).to(result.dtype))
        return result


class Mlp(nn.Module):
    """fc1 → act → norm → fc2 (timm's Mlp without dropout; the norm sits after the activation)."""

    def __init__(self, in_features, hidden_features, out_features, norm_eps, device=None):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features, bias=True, device=device)
        self.act = gelu_tanh()
        self.norm = LayerNorm(hidden_features, norm_eps, device=device)
        self.fc2 = nn.Linear(hidden_features, out_features, bias=True, device=device)

    def forward(self, x):
        return self.fc2(self.norm(self.act(self.fc1(x))))


class CaptionProjection(nn.Module):
    def __init__(self, in_channels, hidden_size, norm_eps, device=None):
        super().__init__()
        self.y_proj = Mlp(in_channels, hidden_size, hidden_size, norm_eps, device=device)

    def forward(self, caption):
        return self.y_proj(caption)


class TimestepEmbedder(nn.Module):
    """[cos(t·f), sin(t·f)] with f_k = exp(−ln(10000)·k/256), then Linear → GELU(tanh) → Linear."""

    def __init__(self, hidden_size, device=None):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(FREQUENCY_EMBEDDING_SIZE, hidden_size, bias=True, device=device),
            gelu_tanh(),
            nn.Linear(hidden_size, hidden_size, bias=True, device=device))

    @staticmethod
    def timestep_embedding(t, dim=FREQUENCY_EMBEDDING_SIZE, max_period=10000):
        half = dim // 2
        freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
        args = t[:, None].float() * freqs[None]
        return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)

    def forward(self, t):
        return self.mlp(self.timestep_embedding(t).to(self.mlp[0].weight.dtype))


class PatchEmbed(nn.Module):
    """timm's PatchEmbed: Conv2d(kernel = stride = p), flattened to tokens in row-major (h, w) order."""

    def __init__(self, input_size, patch_size, in_channels, dim, device=None):
        super().__init__()
        self.patch_size = (patch_size, patch_size)
        self.num_patches = (input_size // patch_size) ** 2
        self.proj = nn.Conv2d(in_channels, dim, kernel_size=patch_size, stride=patch_size, bias=True,
                              device=device)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class AttentionBlockPromptEmbedding(nn.Module):
    """The caption refiner: one pre-LN self-attention + SwiGLU block, no conditioning."""

    def __init__(self, dim, head_dim, mlp_ratio, multiple_of, norm_eps, use_bias, device=None):
        super().__init__()
        self.norm1 = LayerNorm(dim, norm_eps, device=device)
        self.attn = SelfAttention(dim, dim // head_dim, use_bias, norm_eps, device=device)
        self.norm2 = LayerNorm(dim, norm_eps, device=device)
        self.mlp = FeedForward(dim, int(dim * mlp_ratio), multiple_of, use_bias, device=device)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class DiTBlock(nn.Module):
    """adaLN-modulated self-attention (gated), ungated unmodulated cross-attention, modulated gated FFN/MoE."""

    def __init__(self, dim, head_dim, mlp_ratio, qkv_ratio, multiple_of, pooled_emb_dim, norm_eps, init_std,
                 use_bias, moe_block, num_experts, expert_capacity, device=None):
        super().__init__()
        if qkv_ratio != 1:
            qkv_hidden = round_up(int(dim * qkv_ratio), 2 * head_dim)
        else:
            qkv_hidden = dim
        mlp_hidden = int(dim * mlp_ratio)
        self.norm1 = LayerNorm(dim, norm_eps, device=device)
        self.attn = SelfAttention(dim, qkv_hidden // head_dim, use_bias, norm_eps, qkv_hidden, device=device)
        self.cross_attn = CrossAttention(dim, dim // head_dim, use_bias, norm_eps, dim, device=device)
        self.norm2 = LayerNorm(dim, norm_eps, device=device)
        self.norm3 = LayerNorm(dim, norm_eps, device=device)
        if moe_block:
            self.mlp = FeedForwardECMoe(num_experts, expert_capacity, dim, mlp_hidden, multiple_of, device=device)
        else:
            self.mlp = FeedForward(dim, mlp_hidden, multiple_of, use_bias, device=device)
        self.adaLN_modulation = nn.Sequential(gelu_tanh(),
                                              nn.Linear(pooled_emb_dim, 6 * dim, bias=True, device=device))
        self.init_std = init_std

    def forward(self, x, y, c):
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.adaLN_modulation(c).chunk(6, dim=1)
        x = x + gate_msa.unsqueeze(1) * self.attn(modulate(self.norm1(x), shift_msa, scale_msa))
        x = x + self.cross_attn(self.norm2(x), y)
        return x + gate_mlp.unsqueeze(1) * self.mlp(modulate(self.norm3(x), shift_mlp, scale_mlp))


class T2IFinalLayer(nn.Module):
    def __init__(self, hidden_size, time_emb_dim, patch_size, out_channels, norm_eps, device=None):
        super().__init__()
        self.linear = nn.Linear(hidden_size, patch_size * patch_size * out_channels, bias=True, device=device)
        self.adaLN_modulation = nn.Sequential(gelu_tanh(),
                                              nn.Linear(time_emb_dim, 2 * hidden_size, bias=True, device=device))
        self.norm_final = LayerNorm(hidden_size, norm_eps, device=device)

    def forward(self, x, c):
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)
        return self.linear(modulate(self.norm_final(x), shift, scale))


def _map(in_dim, out_dim, norm_eps, use_bias, device):
    return nn.Sequential(LayerNorm(in_dim, norm_eps, device=device),
                         nn.Linear(in_dim, out_dim, bias=use_bias, device=device))


# ---------------------------------------------------------------------------------------------------------------
# Position embedding and masking
# ---------------------------------------------------------------------------------------------------------------

def sincos_1d(embed_dim, positions):
    omega = 1.0 / 10000 ** (np.arange(embed_dim // 2, dtype=np.float64) / (embed_dim / 2.0))
    angles = np.outer(positions.reshape(-1), omega)
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)


def sincos_2d(embed_dim, grid_size, pos_interp_scale, base_size):
    """[T, D]: the first D/2 channels encode the w (x) coordinate, the last D/2 the h (y) coordinate."""
    coords = np.arange(grid_size, dtype=np.float32) / (grid_size / base_size) / pos_interp_scale
    w_coord, h_coord = np.meshgrid(coords, coords)  # both [h, w]; w_coord varies along w
    return np.concatenate([sincos_1d(embed_dim // 2, w_coord), sincos_1d(embed_dim // 2, h_coord)], axis=1)


def random_keep_ids(batch, tokens, mask_ratio, generator=None):
    """MAE-style: argsort of uniform noise, the first int(T·(1−r)) ids kept in that (random) order."""
    keep = int(tokens * (1 - mask_ratio))
    noise = torch.rand(batch, tokens, generator=generator)
    return torch.argsort(noise, dim=1)[:, :keep]


def mask_from_keep_ids(ids_keep, tokens):
    """The official `mask` (1 = removed, original order) and an `ids_restore` consistent with ids_keep."""
    batch, keep = ids_keep.shape
    mask = torch.ones(batch, tokens, device=ids_keep.device)
    mask.scatter_(1, ids_keep, 0.0)
    # Removed ids follow the kept ones, in ascending order; any order gives the same output (mask tokens are equal).
    removed = torch.sort(mask, dim=1, stable=True).indices[:, keep:]
    ids_shuffle = torch.cat([ids_keep, removed], dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    return mask, ids_restore


def gather_tokens(x, ids_keep):
    return torch.gather(x, 1, ids_keep.unsqueeze(-1).expand(-1, -1, x.shape[2]))


def unmask_tokens(x, ids_restore, mask_token):
    fill = mask_token.expand(x.shape[0], ids_restore.shape[1] - x.shape[1], x.shape[2])
    full = torch.cat([x, fill.to(x.dtype)], dim=1)
    return torch.gather(full, 1, ids_restore.unsqueeze(-1).expand(-1, -1, x.shape[2]))


# ---------------------------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------------------------

class DiT(nn.Module):
    """MicroDiT with the official constructor fields and state-dict names. `device="meta"` builds the shapes only
    (for parameter counts of the large configs) and skips the initialisation."""

    def __init__(self, input_size=32, patch_size=2, in_channels=4, dim=1152, depth=28, head_dim=64, multiple_of=256,
                 caption_channels=1024, pos_interp_scale=1.0, norm_eps=1e-6, depth_init=True,
                 qkv_multipliers=(1.0,), ffn_multipliers=(4.0,), use_patch_mixer=True, patch_mixer_depth=4,
                 patch_mixer_dim=512, patch_mixer_qkv_ratio=1.0, patch_mixer_mlp_ratio=1.0, use_bias=True,
                 num_experts=8, expert_capacity=1, experts_every_n=2, device=None):
        super().__init__()
        self.input_size = input_size
        self.in_channels = in_channels
        self.out_channels = in_channels
        self.patch_size = patch_size
        self.pos_interp_scale = pos_interp_scale
        self.use_patch_mixer = use_patch_mixer
        self.base_size = input_size // patch_size

        self.x_embedder = PatchEmbed(input_size, patch_size, in_channels, dim, device=device)
        self.t_embedder = TimestepEmbedder(dim, device=device)
        num_patches = self.x_embedder.num_patches
        self.register_buffer("pos_embed", torch.zeros(1, num_patches, dim, device=device))
        self.y_embedder = CaptionProjection(caption_channels, dim, norm_eps, device=device)
        self.y_emb_preprocess = AttentionBlockPromptEmbedding(dim, head_dim, 4.0, multiple_of, norm_eps, use_bias,
                                                              device=device)
        self.pooled_y_emb_process = Mlp(dim, dim, dim, norm_eps, device=device)

        mixer_std = 0.02 / math.sqrt(2 * depth)
        if use_patch_mixer:
            mixer_moe = [i >= 1 and (i + 1) % experts_every_n == 0 for i in range(patch_mixer_depth)]
            self.patch_mixer = nn.ModuleList([
                DiTBlock(patch_mixer_dim, head_dim, patch_mixer_mlp_ratio, patch_mixer_qkv_ratio, multiple_of, dim,
                         norm_eps, mixer_std, use_bias, mixer_moe[i], num_experts, expert_capacity, device=device)
                for i in range(patch_mixer_depth)])
            if patch_mixer_dim != dim:
                self.patch_mixer_map_xin = _map(dim, patch_mixer_dim, norm_eps, use_bias, device)
                self.patch_mixer_map_xout = _map(patch_mixer_dim, dim, norm_eps, use_bias, device)
                self.patch_mixer_map_y = _map(dim, patch_mixer_dim, norm_eps, use_bias, device)
            else:
                self.patch_mixer_map_xin = nn.Identity()
                self.patch_mixer_map_xout = nn.Identity()
                self.patch_mixer_map_y = nn.Identity()
        else:
            self.patch_mixer = nn.ModuleList()

        qkv_multipliers = [float(m) for m in qkv_multipliers]
        ffn_multipliers = [float(m) for m in ffn_multipliers]
        assert len(qkv_multipliers) == len(ffn_multipliers)
        if len(ffn_multipliers) == depth:
            qkv_ratios, mlp_ratios = qkv_multipliers, ffn_multipliers
        else:
            assert depth % len(ffn_multipliers) == 0, "depth must be divisible by the number of multipliers"
            repeat = depth // len(ffn_multipliers)
            qkv_ratios = [m for m in qkv_multipliers for _ in range(repeat)]
            mlp_ratios = [m for m in ffn_multipliers for _ in range(repeat)]
        backbone_moe = [i < depth - 1 and (i + 1) % experts_every_n == 0 for i in range(depth)]
        self.blocks = nn.ModuleList([
            DiTBlock(dim, head_dim, mlp_ratios[i], qkv_ratios[i], multiple_of, dim, norm_eps,
                     0.02 / math.sqrt(2 * (i + 1)) if depth_init else mixer_std, use_bias, backbone_moe[i],
                     num_experts, expert_capacity, device=device)
            for i in range(depth)])

        self.register_buffer("mask_token", torch.zeros(1, 1, patch_size ** 2 * self.out_channels, device=device))
        self.final_layer = T2IFinalLayer(dim, dim, patch_size, self.out_channels, norm_eps, device=device)
        if device is None or torch.device(device).type != "meta":
            self.initialize_weights()

    @classmethod
    def from_config(cls, config, device=None):
        return cls(**resolve_config(config), device=device)

    # -- initialisation (spec §1.7) ------------------------------------------------------------------------------

    def initialize_weights(self):
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        grid = int(self.x_embedder.num_patches ** 0.5)
        embedding = sincos_2d(self.pos_embed.shape[-1], grid, self.pos_interp_scale, self.base_size)
        self.pos_embed.data.copy_(torch.from_numpy(embedding).float().unsqueeze(0))
        conv = self.x_embedder.proj.weight.data
        nn.init.xavier_uniform_(conv.view(conv.shape[0], -1))
        for linear in (self.t_embedder.mlp[0], self.t_embedder.mlp[2], self.pooled_y_emb_process.fc1,
                       self.pooled_y_emb_process.fc2, self.y_embedder.y_proj.fc1, self.y_embedder.y_proj.fc2):
            nn.init.normal_(linear.weight, std=0.02)
        for block in list(self.blocks) + list(self.patch_mixer):
            self._init_block(block)
            nn.init.zeros_(block.adaLN_modulation[-1].weight)
        refiner = self.y_emb_preprocess
        nn.init.trunc_normal_(refiner.attn.qkv.weight, std=0.02)
        nn.init.zeros_(refiner.attn.proj.weight)
        nn.init.trunc_normal_(refiner.mlp.w1.weight, std=0.02)
        nn.init.trunc_normal_(refiner.mlp.w2.weight, std=0.02)
        nn.init.zeros_(refiner.mlp.w3.weight)
        nn.init.zeros_(self.final_layer.adaLN_modulation[-1].weight)
        nn.init.zeros_(self.final_layer.linear.weight)

    @staticmethod
    def _init_block(block):
        std = block.init_std
        for norm in (block.norm1, block.norm2, block.norm3):
            nn.init.ones_(norm.weight)
        nn.init.trunc_normal_(block.attn.qkv.weight, std=0.02)
        nn.init.trunc_normal_(block.attn.proj.weight, std=std)
        nn.init.trunc_normal_(block.cross_attn.q_linear.weight, std=0.02)
        nn.init.trunc_normal_(block.cross_attn.kv_linear.weight, std=0.02)
        nn.init.trunc_normal_(block.cross_attn.proj.weight, std=std)
        if isinstance(block.mlp, FeedForwardECMoe):
            nn.init.trunc_normal_(block.mlp.gate.weight, std=0.02)
            nn.init.trunc_normal_(block.mlp.w1, std=0.02)
            nn.init.trunc_normal_(block.mlp.w2, std=std)
        else:
            nn.init.trunc_normal_(block.mlp.w1.weight, std=0.02)
            nn.init.trunc_normal_(block.mlp.w2.weight, std=std)
            nn.init.trunc_normal_(block.mlp.w3.weight, std=std)

    # -- forward -------------------------------------------------------------------------------------------------

    def forward_without_cfg(self, x, t, y, mask_ratio=0, ids_keep=None, masking="deferred", generator=None):
        """F(x, t, y). x [N,C,H,W] (already c_in-scaled), t [N] or [1] (= ln σ / 4), y [N,1,L,Cc].

        Masking applies when `ids_keep` [N, K] is given or mask_ratio > 0 (then drawn as the official get_mask).
        masking: "deferred" (mixer over all tokens, then gather; the official path), "naive" (gather before the
        mixer) or "none" (no masking at all). Returns {'sample': F [N,C,H,W], 'mask': [N,T] 1=removed or None}.
        """
        if masking not in ("deferred", "naive", "none"):
            raise ValueError(f"masking must be 'deferred', 'naive' or 'none', got {masking!r}")
        n = x.shape[0]
        tokens = self.x_embedder(x) + self.pos_embed
        num_tokens = tokens.shape[1]
        c = self.t_embedder(t.expand(n))
        caption = self.y_emb_preprocess(self.y_embedder(y).squeeze(1))   # [N, L, D]
        c = c + self.pooled_y_emb_process(caption.mean(dim=1))

        if masking == "none":
            ids_keep = None
        elif ids_keep is None and mask_ratio > 0:
            ids_keep = random_keep_ids(n, num_tokens, mask_ratio, generator)
        mask = ids_restore = None
        if ids_keep is not None:
            ids_keep = ids_keep.long()
            mask, ids_restore = mask_from_keep_ids(ids_keep, num_tokens)

        if ids_keep is not None and masking == "naive":
            tokens = gather_tokens(tokens, ids_keep)
        if self.use_patch_mixer:
            tokens = self.patch_mixer_map_xin(tokens)
            caption_mixer = self.patch_mixer_map_y(caption)
            for block in self.patch_mixer:
                tokens = block(tokens, caption_mixer, c)
        if ids_keep is not None and masking == "deferred":
            tokens = gather_tokens(tokens, ids_keep)
        if self.use_patch_mixer:
            tokens = self.patch_mixer_map_xout(tokens)
        for block in self.blocks:
            tokens = block(tokens, caption, c)
        out = self.final_layer(tokens, c)
        if ids_keep is not None:
            out = unmask_tokens(out, ids_restore, self.mask_token)
        return {"sample": self.unpatchify(out, x.shape[-2], x.shape[-1]), "mask": mask}

    def forward(self, x, t, y, **kwargs):
        return self.forward_without_cfg(x, t, y, **kwargs)

    def unpatchify(self, tokens, height, width):
        p, c = self.patch_size, self.out_channels
        h, w = height // p, width // p
        x = tokens.reshape(tokens.shape[0], h, w, p, p, c)
        return torch.einsum("nhwpqc->nchpwq", x).reshape(tokens.shape[0], c, h * p, w * p)


def count_parameters(model):
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------------------------------------------------------
# EDM objective (spec §3.1–3.2)
# ---------------------------------------------------------------------------------------------------------------

SIGMA_DATA = 0.9


def edm_coefficients(sigma, sigma_data=SIGMA_DATA):
    """c_skip, c_out, c_in, c_noise and the loss weight λ for σ (any shape)."""
    s2 = sigma * sigma + sigma_data * sigma_data
    c_skip = sigma_data ** 2 / s2
    c_out = sigma * sigma_data / torch.sqrt(s2)
    c_in = 1 / torch.sqrt(s2)
    c_noise = torch.log(sigma) / 4
    weight = s2 / (sigma * sigma_data) ** 2
    return c_skip, c_out, c_in, c_noise, weight


def edm_loss(model, x0, y, sigma, noise, ids_keep=None, masking="deferred", sigma_data=SIGMA_DATA):
    """The EDM loss with explicit σ [N], noise ε [N,C,H,W] (n = σ·ε) and kept-token ids [N,K] or None.

    Per pixel λ(σ)·(D(x0+n; σ) − x0)²; unmasked: the mean over everything; masked: per-patch mean over C and p×p,
    mean over kept patches per sample, mean over the batch. Returns (loss, D).
    """
    loss, denoised, _ = edm_loss_terms(model, x0, y, sigma, noise, ids_keep, masking, sigma_data)
    return loss, denoised


def edm_loss_terms(model, x0, y, sigma, noise, ids_keep=None, masking="deferred", sigma_data=SIGMA_DATA):
    """edm_loss, also returning the network output F: (loss, D, F)."""
    c_skip, c_out, c_in, c_noise, weight = edm_coefficients(sigma, sigma_data)
    view = (-1, 1, 1, 1)
    noisy = x0 + sigma.view(view) * noise
    result = model.forward_without_cfg(c_in.view(view) * noisy, c_noise, y, ids_keep=ids_keep, masking=masking)
    denoised = c_skip.view(view) * noisy + c_out.view(view) * result["sample"]
    per_pixel = weight.view(view) * (denoised - x0) ** 2
    mask = result["mask"]
    if mask is None:
        return per_pixel.mean(), denoised, result["sample"]
    per_patch = F.avg_pool2d(per_pixel.mean(dim=1), model.patch_size).flatten(1)  # [N, h·w]
    keep = 1 - mask
    return ((per_patch * keep).sum(dim=1) / keep.sum(dim=1)).mean(), denoised, result["sample"]


# ---------------------------------------------------------------------------------------------------------------
# Training-step harness: one batch exported by `microdit bench-step --export DIR`
# ---------------------------------------------------------------------------------------------------------------

def load_bench(directory):
    """(model, batch, reference) from DIR/weights.safetensors (config in its metadata), batch.safetensors and
    reference.json, as `microdit bench-step --export DIR` writes them."""
    import json
    import os
    import safetensors_io
    weights, metadata = safetensors_io.read(os.path.join(directory, "weights.safetensors"))
    model = DiT(**resolve_config(json.loads(metadata["microdit.config"])))
    model.load_state_dict(weights, strict=True)
    batch, batch_metadata = safetensors_io.read(os.path.join(directory, "batch.safetensors"))
    batch["masking"] = batch_metadata.get("masking", "none")
    with open(os.path.join(directory, "reference.json")) as f:
        reference = json.load(f)
    return model, batch, reference


def bench_loss(model, batch):
    """(loss, F) of the exported batch: its σ, noise and kept ids, in its masking mode."""
    ids_keep = batch.get("ids_keep")
    loss, _, output = edm_loss_terms(model, batch["x0"], batch["y"], batch["sigma"], batch["noise"],
                                     ids_keep=None if ids_keep is None else ids_keep.long(),
                                     masking=batch["masking"])
    return loss, output


def relative(a, b):
    return abs(a - b) / max(abs(b), 1e-30)


def check_bench(model, batch, reference):
    """Forward, loss and backward once; relative differences from the engine's reference values.

    F is compared by its sum over the batch, relative to the sum of |F| (the plain sum can be near zero); every
    parameter's gradient norm is compared (a zero reference norm must be zero here too)."""
    model.zero_grad(set_to_none=True)
    loss, output = bench_loss(model, batch)
    loss.backward()
    norms = {name: float(p.grad.double().norm()) if p.grad is not None else 0.0
             for name, p in model.named_parameters()}
    total = math.sqrt(sum(n * n for n in norms.values()))
    if "mask" in batch:
        mask, _ = mask_from_keep_ids(batch["ids_keep"].long(), batch["mask"].shape[1])
        mask_ok = bool(torch.equal(mask, batch["mask"]))
    else:
        mask_ok = True
    reference_norms = reference["grad_norms"]
    per_parameter = {name: relative(norms[name], value) if value > 0 else (0.0 if norms[name] == 0 else math.inf)
                     for name, value in reference_norms.items()}
    worst = max(per_parameter, key=per_parameter.get)
    model.zero_grad(set_to_none=True)
    return {
        "loss": float(loss), "loss_rel": relative(float(loss), reference["loss"]),
        "output_sum_rel": abs(float(output.double().sum()) - reference["output_sum"]) / reference["output_abs_sum"],
        "grad_norm_rel": relative(total, reference["grad_norm"]),
        "param_grad_norm_max_rel": per_parameter[worst], "param_grad_norm_worst": worst,
        "params_compared": len(per_parameter), "mask_ok": mask_ok,
    }


def time_bench(model, batch, steps, warmup, learning_rate, gradient_clip, device="cpu", autocast=None,
               loss_fn=bench_loss):
    """(wall, process CPU) milliseconds of each of `steps` training steps (zero grads, forward, loss, backward,
    global-norm clip, AdamW β (0.9, 0.999), eps 1e-8, weight decay 0.1) on the fixed batch, after `warmup`
    untimed ones. On a GPU each step ends with a synchronisation, AdamW is the fused one where this torch has it,
    and `autocast` (a torch dtype) runs the forward and loss under torch.autocast, as mixed-precision training
    does; `loss_fn(model, batch)` computes (loss, F) (e.g. torch.compile(bench_loss))."""
    import time
    cuda = device != "cpu"
    optimizer = None
    if cuda:
        try:
            optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, betas=(0.9, 0.999), eps=1e-8,
                                          weight_decay=0.1, fused=True)
        except (TypeError, RuntimeError):
            optimizer = None
    if optimizer is None:
        optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, betas=(0.9, 0.999), eps=1e-8,
                                      weight_decay=0.1)
    times, cpu_times = [], []
    for i in range(warmup + steps):
        if cuda:
            torch.cuda.synchronize()
        cpu_start = time.process_time()
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        if autocast is not None:
            with torch.autocast(device_type="cuda" if cuda else "cpu", dtype=autocast):
                loss, _ = loss_fn(model, batch)
        else:
            loss, _ = loss_fn(model, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), gradient_clip)
        optimizer.step()
        if cuda:
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu_start
        if i >= warmup:
            times.append(elapsed * 1e3)
            cpu_times.append(cpu * 1e3)
    return times, cpu_times


def bench_main(argv=None):
    """python3 microdit_ref.py --dir DIR [--check] [--threads T] [--steps S] [--warmup W] [--flops-per-step F]
    [--device cuda] [--autocast bf16] [--compile]

    Prints one JSON line: the agreement with reference.json (with --check) and the median ms/step, img/s and,
    given the engine's counted FLOPs per step, GFLOP/s. On a GPU (--device cuda) the model and batch move there;
    --autocast bf16 runs the forward and loss under torch.autocast (the check too, so it compares with a bf16
    reference); --compile times torch.compile(model) (its compilation happens in the warm-up steps)."""
    import argparse
    import json
    parser = argparse.ArgumentParser(description=bench_main.__doc__)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--flops-per-step", type=float)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--autocast", choices=["bf16"], default=None)
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args(argv)
    if args.compile and not hasattr(torch, "compile"):
        parser.error(f"--compile needs torch 2.0 or later (this is torch {torch.__version__})")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model, batch, reference = load_bench(args.dir)
    model = model.to(args.device)
    batch = {k: v.to(args.device) if torch.is_tensor(v) else v for k, v in batch.items()}
    autocast = torch.bfloat16 if args.autocast == "bf16" else None
    line = {"engine": "pytorch", "torch": torch.__version__, "config": reference["config"],
            "batch": reference["batch"], "masking": reference["masking"], "mask": reference["mask_ratio"],
            "threads": torch.get_num_threads(), "device": args.device,
            "precision": args.autocast or "f32", "compiled": bool(args.compile)}
    if args.device != "cpu":
        line["device_name"] = torch.cuda.get_device_name()
    if args.check:
        if autocast is not None:
            with torch.autocast(device_type="cuda" if args.device != "cpu" else "cpu", dtype=autocast):
                line["check"] = check_bench(model, batch, reference)
        else:
            line["check"] = check_bench(model, batch, reference)
    # The whole loss (model and EDM terms) is compiled as one function: compiling the module alone would not
    # cover forward_without_cfg, which the loss calls.
    loss_fn = torch.compile(bench_loss) if args.compile else bench_loss
    times, cpu_times = time_bench(model, batch, args.steps, args.warmup, reference["learning_rate"],
                                  reference["gradient_clip"], args.device, autocast, loss_fn)
    if times:
        median = float(np.median(times))
        line.update(ms_per_step=median, img_per_s=reference["batch"] / (median / 1e3))
        if args.flops_per_step:
            line["gflop_per_s"] = args.flops_per_step / (median / 1e3) / 1e9
    if args.device != "cpu":
        line["peak_memory_bytes"] = torch.cuda.max_memory_allocated()
    line["step_ms"] = times
    line["step_cpu_ms"] = cpu_times
    print(json.dumps(line))


if __name__ == "__main__":
    import os
    import sys
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    bench_main()
