"""A minimal GPT in PyTorch with nanoGPT's shakespeare_char CPU recipe (4 layers, 4 heads, width
128, context 64, batch 12, AdamW, warm-up + cosine schedule, clip 1.0, tied embeddings, no biases),
used to check cllm against an independent implementation. It reads cllm's prepared token shards.

  python3 torch_gpt.py replay DUMP_DIR SHARD_DIR [STEPS]   start from cllm's initial weights, feed
                                                           cllm's batches, compare losses per step
  python3 torch_gpt.py train SEED SHARD_DIR                an independent run (torch init and
                                                           batches), val loss at step 2000
  python3 torch_gpt.py speed THREADS SHARD_DIR             median ms per training step
  python3 torch_gpt.py nanogpt SEED SHARD_DIR [STEPS [EVERY]]
                                                           nanoGPT's own run, random stream
                                                           included: its module tree and
                                                           init order, batch prefetch, evals
                                                           every EVERY steps (default 250)
                                                           drawing fresh batches; STEPS
                                                           (default 2000) also ends the decay

DUMP_DIR comes from `cargo run --release -p cllm-train --example reference_dump`, which also
prints SHARD_DIR. See README.md beside this file.
"""
import json, math, os, sys, time
import numpy as np, torch, torch.nn as nn, torch.nn.functional as F

V, T, C, L, NH, B = 65, 64, 128, 4, 4, 12
LR, MIN_LR, WARM, DECAY, WD, CLIP = 1e-3, 1e-4, 100, 2000, 0.1, 1.0
GELU_APPROX = "tanh"  # GPT-2's form, as cllm
NANOGPT_GELU = os.environ.get("NANOGPT_GELU", "none")
# nanoGPT's dropout (the `nanogpt` mode only): DROPOUT=0.2 as its baby GPT recipe.
DROPOUT = float(os.environ.get("DROPOUT", "0"))

def load_shard(path):
    raw = np.fromfile(path, dtype=np.uint8)
    assert raw[:8].tobytes() == b"CLLMTOKS"
    return torch.from_numpy(raw[24:].view(np.uint16).astype(np.int64))

class Block(nn.Module):
    def __init__(s):
        super().__init__()
        s.ln_1 = nn.LayerNorm(C, bias=False); s.ln_2 = nn.LayerNorm(C, bias=False)
        s.c_attn = nn.Linear(C, 3 * C, bias=False); s.attn_proj = nn.Linear(C, C, bias=False)
        s.c_fc = nn.Linear(C, 4 * C, bias=False); s.mlp_proj = nn.Linear(4 * C, C, bias=False)
    def forward(s, x):
        b, t, _ = x.shape
        q, k, v = s.c_attn(s.ln_1(x)).split(C, dim=2)
        q, k, v = [z.view(b, t, NH, C // NH).transpose(1, 2) for z in (q, k, v)]
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + s.attn_proj(y.transpose(1, 2).reshape(b, t, C))
        return x + s.mlp_proj(F.gelu(s.c_fc(s.ln_2(x)), approximate=GELU_APPROX))

class GPT(nn.Module):
    def __init__(s):
        super().__init__()
        s.wte = nn.Embedding(V, C); s.wpe = nn.Embedding(T, C)
        s.h = nn.ModuleList([Block() for _ in range(L)]); s.ln_f = nn.LayerNorm(C, bias=False)
    def forward(s, idx, targets):
        x = s.wte(idx) + s.wpe(torch.arange(idx.shape[1]))
        for blk in s.h: x = blk(x)
        logits = s.ln_f(x) @ s.wte.weight.T
        return F.cross_entropy(logits.view(-1, V), targets.reshape(-1))

def init(m):
    for n, p in m.named_parameters():
        if p.dim() >= 2:
            std = 0.02 / math.sqrt(2 * L) if n.endswith("proj.weight") else 0.02
            nn.init.normal_(p, 0.0, std)

def load_cllm(m, d):
    names = {"wte.weight": m.wte.weight, "wpe.weight": m.wpe.weight, "ln_f.weight": m.ln_f.weight}
    for i, b in enumerate(m.h):
        names.update({f"h.{i}.ln_1.weight": b.ln_1.weight, f"h.{i}.ln_2.weight": b.ln_2.weight,
            f"h.{i}.attn.c_attn.weight": b.c_attn.weight, f"h.{i}.attn.c_proj.weight": b.attn_proj.weight,
            f"h.{i}.mlp.c_fc.weight": b.c_fc.weight, f"h.{i}.mlp.c_proj.weight": b.mlp_proj.weight})
    with torch.no_grad():
        for n, p in names.items():
            p.copy_(torch.from_numpy(np.fromfile(f"{d}/{n}.bin", dtype=np.float32)).view_as(p))

def get_lr(it):
    if it < WARM: return LR * (it + 1) / (WARM + 1)
    if it > DECAY: return MIN_LR
    r = (it - WARM) / (DECAY - WARM)
    return MIN_LR + 0.5 * (1 + math.cos(math.pi * r)) * (LR - MIN_LR)

def optimizer(m):
    decay = [p for p in m.parameters() if p.dim() >= 2]; nodecay = [p for p in m.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": WD}, {"params": nodecay, "weight_decay": 0.0}], lr=LR, betas=(0.9, 0.99))

AUTOCAST = None  # torch.bfloat16 for `speed ... bf16`: PyTorch's bf16 autocast on CPU

def step(m, opt, x, y, it):
    for g in opt.param_groups: g["lr"] = get_lr(it)
    if AUTOCAST is None:
        loss = m(x, y)
    else:
        with torch.autocast("cpu", dtype=AUTOCAST):
            loss = m(x, y)
    opt.zero_grad(set_to_none=True); loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(m.parameters(), CLIP); opt.step()
    return loss.item(), norm.item()

def windows(data, offsets):
    x = torch.stack([data[o:o + T] for o in offsets]); y = torch.stack([data[o + 1:o + 1 + T] for o in offsets])
    return x, y

class NanoBlock(nn.Module):
    """nanoGPT's Block with its attribute names and construction order (which fixes the order
    in which nn.Linear's constructor draws from the random stream)."""
    def __init__(s):
        super().__init__()
        s.ln_1 = nn.LayerNorm(C, bias=False)
        s.attn = nn.Module(); s.attn.c_attn = nn.Linear(C, 3 * C, bias=False); s.attn.c_proj = nn.Linear(C, C, bias=False)
        s.ln_2 = nn.LayerNorm(C, bias=False)
        s.mlp = nn.Module(); s.mlp.c_fc = nn.Linear(C, 4 * C, bias=False); s.mlp.c_proj = nn.Linear(4 * C, C, bias=False)
    def forward(s, x):
        b, t, _ = x.shape
        q, k, v = s.attn.c_attn(s.ln_1(x)).split(C, dim=2)
        q, k, v = [z.view(b, t, NH, C // NH).transpose(1, 2) for z in (q, k, v)]
        p = DROPOUT if s.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        x = x + F.dropout(s.attn.c_proj(y.transpose(1, 2).reshape(b, t, C)), p, s.training)
        # nn.GELU() is the erf form; NANOGPT_GELU=tanh tries cllm's.
        h = s.mlp.c_proj(F.gelu(s.mlp.c_fc(s.ln_2(x)), approximate=NANOGPT_GELU))
        return x + F.dropout(h, p, s.training)

class NanoGPT(nn.Module):
    """nanoGPT's GPT: lm_head built after the blocks and tied to wte, then every Linear and
    Embedding re-drawn from N(0, 0.02) in module order, then the c_proj weights re-drawn scaled."""
    def __init__(s):
        super().__init__()
        s.transformer = nn.ModuleDict(dict(wte=nn.Embedding(V, C), wpe=nn.Embedding(T, C),
            h=nn.ModuleList([NanoBlock() for _ in range(L)]), ln_f=nn.LayerNorm(C, bias=False)))
        s.lm_head = nn.Linear(C, V, bias=False)
        s.transformer.wte.weight = s.lm_head.weight
        s.apply(lambda m: nn.init.normal_(m.weight, 0.0, 0.02) if isinstance(m, (nn.Linear, nn.Embedding)) else None)
        for n, p in s.named_parameters():
            if n.endswith("c_proj.weight"): nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * L))
    def forward(s, idx, targets):
        tr = s.transformer
        x = F.dropout(tr.wte(idx) + tr.wpe(torch.arange(idx.shape[1])), DROPOUT, s.training)
        for blk in tr.h: x = blk(x)
        logits = s.lm_head(tr.ln_f(x))
        return F.cross_entropy(logits.view(-1, V), targets.reshape(-1))

mode = sys.argv[1] if len(sys.argv) > 1 else ""
if mode == "replay":
    torch.set_num_threads(1)
    d, shard = sys.argv[2], sys.argv[3]
    train = load_shard(shard + "/train.bin")
    m = GPT(); load_cllm(m, d); opt = optimizer(m)
    cllm = [json.loads(l) for l in open(f"{d}/cllm.jsonl")]
    n = int(sys.argv[4]) if len(sys.argv) > 4 else len(cllm)
    worst = 0.0
    for r in cllm[:n]:
        x, y = windows(train, r["offsets"])
        loss, norm = step(m, opt, x, y, r["step"])
        worst = max(worst, abs(loss - r["loss"]))
        if r["step"] % 25 == 0 or r["step"] == n - 1:
            print(f"step {r['step']:4d}: torch loss {loss:.6f} cllm {r['loss']:.6f} diff {loss - r['loss']:+.2e}  norm torch {norm:.5f} cllm {r['norm']:.5f}")
    print(f"max |loss difference| over {n} steps: {worst:.3e}")
elif mode == "train":
    seed, shard = int(sys.argv[2]), sys.argv[3]; torch.manual_seed(seed); torch.set_num_threads(1)
    train, val = load_shard(shard + "/train.bin"), load_shard(shard + "/val.bin")
    m = GPT(); init(m); opt = optimizer(m)
    def batch(data): return windows(data, torch.randint(len(data) - T, (B,)).tolist())
    def estimate(iters):
        m.eval(); out = {}
        with torch.no_grad():
            for name, data in (("train", train), ("val", val)):
                out[name] = sum(m(*batch(data)).item() for _ in range(iters)) / iters
        m.train(); return out
    t0 = time.time()
    for it in range(2001):
        if it % 250 == 0:
            e = estimate(20); print(f"step {it}: train loss {e['train']:.4f}, val loss {e['val']:.4f} ({time.time()-t0:.0f}s)", flush=True)
        if it == 2000:
            e = estimate(1000); print(f"step 2000 (1000 batches): train loss {e['train']:.4f}, val loss {e['val']:.4f}", flush=True)
            break
        step(m, opt, *batch(train), it)
elif mode == "speed":
    # speed THREADS SHARD_DIR [bf16]
    torch.set_num_threads(int(sys.argv[2])); torch.manual_seed(0)
    if len(sys.argv) > 4 and sys.argv[4] == "bf16": AUTOCAST = torch.bfloat16
    train = load_shard(sys.argv[3] + "/train.bin")
    m = GPT(); init(m); opt = optimizer(m)
    times = []
    for it in range(80):
        x, y = windows(train, torch.randint(len(train) - T, (B,)).tolist())
        t = time.perf_counter(); step(m, opt, x, y, it); times.append(time.perf_counter() - t)
    times = sorted(times[20:]); print(f"threads {sys.argv[2]}: median {1000 * times[len(times)//2]:.1f} ms/step")
elif mode == "nanogpt":
    # nanoGPT's train.py order of draws: seed, model, optimiser, first batch; then per iteration
    # an evaluation every 250 (20 fresh train batches, then 20 val), forward, the next batch
    # drawn before backward, clip, step.
    seed, shard = int(sys.argv[2]), sys.argv[3]; torch.manual_seed(seed); torch.set_num_threads(1)
    train, val = load_shard(shard + "/train.bin"), load_shard(shard + "/val.bin")
    m = NanoGPT()
    decay = [p for p in m.parameters() if p.dim() >= 2]; nodecay = [p for p in m.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WD}, {"params": nodecay, "weight_decay": 0.0}], lr=LR, betas=(0.9, 0.99))
    def batch(data): return windows(data, torch.randint(len(data) - T, (B,)).tolist())
    steps = int(sys.argv[4]) if len(sys.argv) > 4 else 2000
    every = int(sys.argv[5]) if len(sys.argv) > 5 else 250
    DECAY = steps  # nanoGPT's lr_decay_iters = max_iters, as cllm's --max-steps
    x, y = batch(train); t0 = time.time()
    for it in range(steps + 1):
        for g in opt.param_groups: g["lr"] = get_lr(it)
        if it % every == 0:
            m.eval(); out = {}
            with torch.no_grad():
                for name, data in (("train", train), ("val", val)):
                    out[name] = sum(m(*batch(data)).item() for _ in range(20)) / 20
            m.train(); print(f"step {it}: train loss {out['train']:.4f}, val loss {out['val']:.4f} ({time.time()-t0:.0f}s)", flush=True)
        if it == steps:
            m.eval()
            with torch.no_grad(): ls = [m(*batch(val)).item() for _ in range(1000)]
            print(f"step {steps} (1000 val batches, after nanoGPT's run): val loss {sum(ls) / 1000:.4f}", flush=True)
            # How much a 20-batch evaluation of this one model varies: 50 disjoint draws.
            g = sorted(sum(ls[i:i + 20]) / 20 for i in range(0, 1000, 20))
            mean = sum(g) / 50; sd = (sum((x - mean) ** 2 for x in g) / 49) ** 0.5
            print(f"  50 disjoint 20-batch estimates: min {g[0]:.4f}, median {(g[24] + g[25]) / 2:.4f}, max {g[-1]:.4f}, "
                  f"sd {sd:.4f}; {sum(x <= 1.89 for x in g)} of 50 are <= 1.89", flush=True)
            break
        loss = m(x, y); x, y = batch(train); loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), CLIP); opt.step(); opt.zero_grad(set_to_none=True)
else:
    sys.exit(__doc__)
