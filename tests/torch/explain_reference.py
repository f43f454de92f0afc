"""Attribution references for lm.explain (run by tests/lua/explain_spec.lua).

  explain_reference.py write DIR
      builds a small seeded torch.nn.Sequential conv net (the twin of the
      spec's Lumen net), saves its state_dict with PyTorch's names
      (DIR/convnet.safetensors) and, computed in float64 from those float32
      weights, DIR/explain_io.safetensors:
        x            inputs [6, 3, 8, 8]
        target       1-based classes [6] (int32) for the targeted maps
        cam_t, campp_t            Grad-CAM and Grad-CAM++ on layer 3 (the
                                  second ELU, [6, 8, 4, 4]) for `target`
        cam_p, campp_p            the same for the predicted classes
        cam_up                    cam_t upsampled to 8 x 8 (bilinear,
                                  align_corners=False)
        saliency_t                d y_target / d x
        ig_t                      integrated gradients from a zero baseline,
                                  Gauss-Legendre with 16 nodes (numpy's leggauss)

Grad-CAM (Selvaraju et al. 2017): w_k = mean_ij dy_c/dA_kij, map =
relu(sum_k w_k A_k). Grad-CAM++ (Chattopadhyay et al. 2018, Eq. 19):
alpha = g^2 / (2 g^2 + sum_ab A_ab g^3) (0 where the denominator is 0),
w_k = sum_ij alpha_kij relu(g_kij), map = relu(sum_k w_k A_k).
"""
import sys

import numpy as np
import torch
from torch import nn

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from dtype_reference import save  # noqa: E402


def convnet():
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ELU(), nn.Conv2d(6, 8, 3, stride=2, padding=1), nn.ELU(),
                         nn.Flatten(), nn.Linear(8 * 4 * 4, 5), nn.Sigmoid())


LAYER = 3


def maps(model, x, target):
    """Grad-CAM and Grad-CAM++ maps for 0-based targets (None: predictions)."""
    store = {}

    def hook(_module, _inp, out):
        out.retain_grad()
        store["a"] = out

    handle = model[LAYER].register_forward_hook(hook)
    xr = x.clone().requires_grad_(True)
    out = model(xr)
    if target is None:
        target = out.argmax(1)
    out.gather(1, target.view(-1, 1)).sum().backward()
    handle.remove()
    a, g = store["a"].detach(), store["a"].grad.detach()
    w = g.mean(dim=(2, 3))
    cam = torch.relu((w[:, :, None, None] * a).sum(1))
    g2, g3 = g * g, g * g * g
    denom = 2 * g2 + a.sum(dim=(2, 3), keepdim=True) * g3
    alpha = torch.where(denom != 0, g2 / torch.where(denom != 0, denom, torch.ones_like(denom)),
                        torch.zeros_like(denom))
    wpp = (alpha * torch.relu(g)).sum(dim=(2, 3))
    campp = torch.relu((wpp[:, :, None, None] * a).sum(1))
    return cam, campp, target


def saliency(model, x, target):
    xr = x.clone().requires_grad_(True)
    model(xr).gather(1, target.view(-1, 1)).sum().backward()
    return xr.grad


def integrated_gradients(model, x, target, steps):
    nodes, weights = np.polynomial.legendre.leggauss(steps)
    total = torch.zeros_like(x)
    for t, w in zip(nodes, weights):
        alpha = (1 - t) / 2  # the Lumen rule's order; the sum does not depend on it
        xr = (alpha * x).clone().requires_grad_(True)
        model(xr).gather(1, target.view(-1, 1)).sum().backward()
        total += xr.grad * (w / 2)
    return x * total


def write(folder):
    torch.manual_seed(7)
    model = convnet().eval()
    save(f"{folder}/convnet.safetensors", {k: v.detach().float().contiguous() for k, v in model.state_dict().items()})
    x = torch.randn(6, 3, 8, 8)
    target = torch.tensor([0, 1, 2, 3, 4, 1])
    m64 = model.double()
    x64 = x.double()
    cam_t, campp_t, _ = maps(m64, x64, target)
    cam_p, campp_p, pred = maps(m64, x64, None)
    up = torch.nn.functional.interpolate(cam_t[:, None], size=(8, 8), mode="bilinear", align_corners=False)[:, 0]
    io = {"x": x, "target": (target + 1).int(), "predicted": (pred + 1).int(), "cam_t": cam_t, "campp_t": campp_t,
          "cam_p": cam_p, "campp_p": campp_p, "cam_up": up, "saliency_t": saliency(m64, x64, target),
          "ig_t": integrated_gradients(m64, x64, target, 16)}
    save(f"{folder}/explain_io.safetensors", {k: v.float().contiguous() if v.is_floating_point() else v
                                               for k, v in io.items()})


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "write":
        write(sys.argv[2])
    else:
        sys.exit(__doc__)
