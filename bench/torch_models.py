"""The reference networks in PyTorch, for the benchmark peers (the same
layers, sizes and order as lua/lumen/models.lua)."""
import torch.nn as nn


def net1(dropout=0.1):
    layers, width = [], 784
    for _ in range(12):
        layers += [nn.Linear(width, 200), nn.ELU(), nn.Dropout(dropout)]
        width = 200
    layers += [nn.Linear(200, 10), nn.Sigmoid()]
    return nn.Sequential(*layers)


def mlp(sizes):
    """Linear layers with ELU between them and a linear output."""
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.ELU())
    return nn.Sequential(*layers)


def net2(dropout=0.2, classes=10):
    """The all-convolutional Net2 of lua/lumen/models.lua at width 1."""
    layers = []

    def add(module, activate=True):
        layers.append(module)
        if activate:
            layers.extend([nn.ELU(), nn.Dropout(dropout)])

    def conv(cin, cout, k, stride=1):
        return nn.Conv2d(cin, cout, k, stride=stride, padding=1 if k == 3 else 0)

    add(conv(3, 96, 3))
    add(conv(96, 96, 3))
    add(conv(96, 96, 3, 2))
    add(conv(96, 192, 3))
    add(conv(192, 192, 3))
    add(conv(192, 192, 3, 2))
    add(conv(192, 192, 1))
    add(nn.AdaptiveAvgPool2d(1), activate=False)
    add(nn.Flatten(), activate=False)
    add(nn.Linear(192, 512))
    add(nn.Linear(512, 512))
    add(nn.Linear(512, 512))
    add(nn.Linear(512, classes), activate=False)
    add(nn.Sigmoid(), activate=False)
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    """torchvision's BasicBlock: two 3x3 convolutions with batch norms, the
    skip branch a 1x1 convolution and batch norm where the shape changes."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + (self.downsample(x) if self.downsample is not None else x))


def resnet18_cifar(classes=10, width=64):
    """ResNet-18 with the CIFAR stem (a 3x3 stride-1 first convolution, no
    max pool), as lm.models.resnet18{stem = 'cifar', width = width}:
    torchvision's layers and names (width 64 is torchvision's), written out so
    that the device machine needs no torchvision."""
    model = nn.Sequential()
    model.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
    model.bn1 = nn.BatchNorm2d(width)
    model.relu = nn.ReLU(inplace=True)
    cin = width
    for i, (cout, stride) in enumerate([(width, 1), (2 * width, 2), (4 * width, 2), (8 * width, 2)]):
        setattr(model, f"layer{i + 1}", nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)))
        cin = cout
    model.avgpool = nn.AdaptiveAvgPool2d(1)
    model.flatten = nn.Flatten()
    model.fc = nn.Linear(8 * width, classes)
    for m in model.modules():  # torchvision's initialisation
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return model


def squared_distances(a, b):
    """||a_i - b_j||^2 as ||a_i||^2 + ||b_j||^2 - 2 a_i.b_j (Lumen's form),
    the product and the sum in one addmm."""
    import torch

    return torch.addmm((a * a).sum(1, keepdim=True) + (b * b).sum(1, keepdim=True).t(), a, b.t(), alpha=-2)


def mmd_multiscale(z, p, bws=(0.1, 1, 10, 100, 1000)):
    """MMD of DESIGN.md and Lumen's F.mmd: mean k(z,z') + mean k(p,p') -
    2 mean k(z,p), k(a,b) = sum over bw of exp(-||a-b||^2 / (bw D)), all
    pairs (i = j included). Each of the three squared-distance matrices is
    computed once and the five kernels are summed over it. Measured here
    (batch 128, forward + backward, 1 thread): this form ~0.7-1.0 ms, the
    same with torch.cdist(...)**2 ~1.2 ms, one stacked 256 x 256 matrix of
    [z; p] with block weights 1.3-1.8 ms (its 256 KB temporaries), the old
    per-bandwidth recomputation 1.7-1.9 ms."""
    dim = z.shape[1]
    zz, pp, zp = squared_distances(z, z), squared_distances(p, p), squared_distances(z, p)
    kz = kp = kzp = 0
    for bw in bws:
        s = -1.0 / (bw * dim)
        kz = kz + (zz * s).exp()
        kp = kp + (pp * s).exp()
        kzp = kzp + (zp * s).exp()
    return kz.mean() + kp.mean() - 2 * kzp.mean()


def infovae_loss(enc, dec, x, prior, mmd_weight=500, bws=(0.1, 1, 10, 100, 1000)):
    """Lumen's InfoVAE:loss: 1/2 ||dec(enc(x)) - x||^2 summed over units,
    mean over the batch (one fused mse_loss), + mmd_weight * MMD(z, prior)."""
    import torch.nn.functional as F

    z = enc(x)
    recon = F.mse_loss(dec(z), x, reduction="sum") * (0.5 / x.shape[0])
    return recon + mmd_weight * mmd_multiscale(z, prior, bws)
