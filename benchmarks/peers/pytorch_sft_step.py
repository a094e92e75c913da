"""One SFT training step of a LLaMA in PyTorch, the peer figure for `saferlhf profile --stage sft`.

Same model and step as the profile: RMSNorm, rotary embeddings, causal multi-head attention, SwiGLU feed-forward,
untied output matrix; cross-entropy over the response tokens (the last 3/4 of each sequence), backward, AdamW.
Prints the median wall time of the measured steps after a warm-up.

    python3 benchmarks/peers/pytorch_sft_step.py --dim 288 --layers 6 --heads 6 --hidden 768 --vocab 32000 \
        --seq 256 --batch 8 --threads 2
"""
import argparse
import statistics
import time

import torch
import torch.nn.functional as F


class Block(torch.nn.Module):
    def __init__(self, dim, heads, hidden):
        super().__init__()
        self.heads = heads
        self.attn_norm = torch.nn.Parameter(torch.ones(dim))
        self.ffn_norm = torch.nn.Parameter(torch.ones(dim))
        self.wq = torch.nn.Linear(dim, dim, bias=False)
        self.wk = torch.nn.Linear(dim, dim, bias=False)
        self.wv = torch.nn.Linear(dim, dim, bias=False)
        self.wo = torch.nn.Linear(dim, dim, bias=False)
        self.w1 = torch.nn.Linear(dim, hidden, bias=False)
        self.w2 = torch.nn.Linear(hidden, dim, bias=False)
        self.w3 = torch.nn.Linear(dim, hidden, bias=False)

    @staticmethod
    def rms(x, w, eps=1e-5):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w

    def forward(self, x, cos, sin):
        b, t, d = x.shape
        h = self.rms(x, self.attn_norm)
        q, k, v = (m(h).view(b, t, self.heads, d // self.heads).transpose(1, 2) for m in (self.wq, self.wk, self.wv))
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        a = causal_attention(q, k, v)
        x = x + self.wo(a.transpose(1, 2).reshape(b, t, d))
        h = self.rms(x, self.ffn_norm)
        return x + self.w2(F.silu(self.w1(h)) * self.w3(h))


def causal_attention(q, k, v):
    """softmax(q·kᵀ / √d + causal mask)·v, written out (PyTorch 1.13 has no fused attention)."""
    t = q.shape[-2]
    scores = q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5
    mask = torch.ones(t, t, dtype=torch.bool).triu(1)
    return scores.masked_fill(mask, float("-inf")).softmax(-1) @ v


def rotate(x, cos, sin):
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)


class Llama(torch.nn.Module):
    def __init__(self, dim, layers, heads, hidden, vocab, seq):
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, dim)
        self.blocks = torch.nn.ModuleList(Block(dim, heads, hidden) for _ in range(layers))
        self.norm = torch.nn.Parameter(torch.ones(dim))
        self.out = torch.nn.Linear(dim, vocab, bias=False)
        half = dim // heads // 2
        freqs = 1.0 / (10000.0 ** (torch.arange(half).float() / half))
        angles = torch.outer(torch.arange(seq).float(), freqs)
        self.register_buffer("cos", angles.cos())
        self.register_buffer("sin", angles.sin())

    def forward(self, tokens):
        x = self.embed(tokens)
        for blk in self.blocks:
            x = blk(x, self.cos[: tokens.shape[1]], self.sin[: tokens.shape[1]])
        return self.out(Block.rms(x, self.norm))


def main():
    p = argparse.ArgumentParser()
    for name, default in [("dim", 288), ("layers", 6), ("heads", 6), ("hidden", 768), ("vocab", 32000),
                          ("seq", 256), ("batch", 8), ("threads", 2), ("steps", 5)]:
        p.add_argument(f"--{name}", type=int, default=default)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = Llama(a.dim, a.layers, a.heads, a.hidden, a.vocab, a.seq)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    prompt = max(1, a.seq // 4)
    times = []
    for step in range(a.steps + 1):
        tokens = torch.randint(1, a.vocab, (a.batch, a.seq))
        targets = tokens[:, 1:].clone()
        targets[:, : prompt - 1] = -100
        start = time.perf_counter()
        logits = model(tokens)[:, :-1]
        loss = F.cross_entropy(logits.reshape(-1, a.vocab), targets.reshape(-1), ignore_index=-100)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step > 0:
            times.append(time.perf_counter() - start)
    params = sum(p.numel() for p in model.parameters())
    print(f"torch {torch.__version__}, {a.threads} threads, {params / 1e6:.1f} M parameters: "
          f"median step {statistics.median(times) * 1e3:.1f} ms over {len(times)} steps "
          f"(min {min(times) * 1e3:.1f}, max {max(times) * 1e3:.1f})")


if __name__ == "__main__":
    main()
