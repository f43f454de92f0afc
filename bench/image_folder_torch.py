"""The peer of bench/image_folder.lua: PIL + torchvision's ImageFolder with
Resize(32) and ToTensor, a DataLoader of batch 128 with 0, 1 and 2 worker
processes, best of 3 epochs, on the same folder.
  /usr/bin/python3 bench/image_folder_torch.py DIR"""
import sys
import time

import torch
import torchvision
from torchvision import transforms

root = sys.argv[1] if len(sys.argv) > 1 else "/tmp/lumen-bench-images"
torch.set_num_threads(1)
tf = transforms.Compose([transforms.Resize((32, 32)), transforms.ToTensor()])
data = torchvision.datasets.ImageFolder(root, transform=tf)
for workers in (0, 1, 2):
    loader = torch.utils.data.DataLoader(data, batch_size=128, shuffle=True, num_workers=workers)
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for x, _ in loader:
            pass
        best = min(best, time.perf_counter() - t0)
    print(f"torchvision ImageFolder, {workers} worker process(es): {len(data)} images in {best:.3f} s: "
          f"{len(data) / best:.0f} images/s")
