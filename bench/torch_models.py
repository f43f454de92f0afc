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
