"""The PyTorch peer of bench/vit_step.lua: the same small vision transformer
(32x32 images, 4x4 patches, dim 96, depth 4, 3 heads, MLP 192, pre-norm
encoder layers with GELU, LayerNorm eps 1e-6), one inference batch and one
training step (cross-entropy, backward, AdamW), ms per batch, best of
BENCH_REPS (default 5) after two untimed. Inference is timed both ways a
user can run it under no_grad: in eval mode, where torch 1.13 takes its
fused "fast path" for encoder layers, and in train mode, where it does not
(dropout is 0, so the outputs are the same); the faster is torch's best.
A forward pass with gradients runs first (see below).
    /usr/bin/python3 bench/vit_step_torch.py [threads] [batch]
Threads: torch.set_num_threads; the caller sets OMP/OpenBLAS variables."""
import os
import sys

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(__file__))
from best_ms import best_ms  # noqa: E402

threads = int(sys.argv[1]) if len(sys.argv) > 1 else torch.get_num_threads()
batch = int(sys.argv[2]) if len(sys.argv) > 2 else 128
torch.set_num_threads(threads)
torch.manual_seed(1)


class ViT(nn.Module):
    def __init__(self, image=32, patch=4, classes=10, dim=96, depth=4, heads=3, mlp=192):
        super().__init__()
        self.conv_proj = nn.Conv2d(3, dim, patch, stride=patch)
        self.class_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embedding = nn.Parameter(torch.randn(1, (image // patch) ** 2 + 1, dim) * 0.02)
        self.layers = nn.Sequential(*[nn.TransformerEncoderLayer(
            dim, heads, mlp, dropout=0.0, activation="gelu", batch_first=True, norm_first=True,
            layer_norm_eps=1e-6) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        t = self.conv_proj(x).flatten(2).transpose(1, 2)
        t = torch.cat([self.class_token.expand(x.shape[0], -1, -1), t], 1) + self.pos_embedding
        return self.head(self.norm(self.layers(t))[:, 0])



x = torch.rand(batch, 3, 32, 32)
y = torch.tensor([(i * 7) % 10 for i in range(1, batch + 1)])
net = ViT()
opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=0.05)
# one forward pass with gradients first: until one has run, torch 1.13's
# no_grad forward of this model takes about 4x longer on this machine
# (340-390 ms against 87 ms at 1 thread, whichever path), a state a user's
# training loop would leave behind
net(x)
net.eval()


def infer():
    with torch.no_grad():
        net(x)


t_fast = best_ms(infer)
net.train()
t_plain = best_ms(infer)
t_infer = min(t_fast, t_plain)


def step():
    opt.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(net(x), y).backward()
    opt.step()


t_train = best_ms(step)
print(f"torch vit, {threads} thread(s), batch {batch}: inference {t_infer:.1f} ms, "
      f"training step {t_train:.1f} ms (torch {torch.__version__}; inference with the fast path "
      f"{t_fast:.1f} ms, without {t_plain:.1f} ms)")
