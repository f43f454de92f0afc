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
