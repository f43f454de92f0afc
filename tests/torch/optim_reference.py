"""PyTorch reference for tests/lua/torch_optim_spec.lua: optimisers, the
cyclic learning rate and torch.optim.lr_scheduler's closed-form schedules
(StepLR, MultiStepLR, ExponentialLR, CosineAnnealingLR, LinearLR, LambdaLR).

Every case starts from seeded float32 parameters (tensors of different
shapes) and applies a fixed, pre-generated sequence of gradients (no loss:
both sides see exactly the same gradients), with torch.optim. Schedule cases
record torch.optim.lr_scheduler.CyclicLR's learning rate at every iteration,
lr_schedule cases another scheduler's (torch's own recursive get_lr, stepped
as a training loop steps it); the combined cases drive an optimiser with a
schedule.

Writes one safetensors file:
  <case>.init.<k>          parameter k before the first step
  <case>.grad.<s>.<k>      the gradient of parameter k at step s (1-based)
  <case>.param.<s>.<k>     parameter k after step s
and in __metadata__ "manifest": JSON {"cases": [{name, kind, optimizer,
options, schedule, steps, nparams, lrs}, ...]}, where "lrs" is the
learning rate used at each step (schedule and lr_schedule cases: at
iterations 0..steps-1). A schedule is CyclicLR's settings in Lumen's terms,
or {"torch": scheduler name, "options": its options} (lr_schedule cases have
"lr", the optimiser's rate when the scheduler is made, too).
Usage: optim_reference.py OUT
"""
import json
import os
import sys
import warnings

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_file import save  # noqa: E402




SHAPES = [(4, 3), (5,), (2, 3, 2)]
STEPS = 25

# name -> (torch optimiser, its options, schedule or None, steps)
#   a schedule is {min, max, period, decay, mode} in Lumen's terms
OPTIM_CASES = {
    "sgd_plain": ("SGD", {"lr": 0.1}, None, STEPS),
    "sgd_momentum": ("SGD", {"lr": 0.05, "momentum": 0.9}, None, STEPS),
    "sgd_nesterov": ("SGD", {"lr": 0.05, "momentum": 0.8, "nesterov": True}, None, STEPS),
    "sgd_weight_decay": ("SGD", {"lr": 0.1, "weight_decay": 0.3}, None, STEPS),
    "sgd_momentum_weight_decay": ("SGD", {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.1}, None, STEPS),
    "adam_defaults": ("Adam", {}, None, STEPS),
    "adam_betas_eps": ("Adam", {"lr": 0.02, "betas": (0.8, 0.99), "eps": 1e-3}, None, STEPS),
    "adam_weight_decay": ("Adam", {"lr": 0.02, "weight_decay": 0.5}, None, STEPS),
    "adamw_defaults": ("AdamW", {}, None, STEPS),
    "adamw_weight_decay": ("AdamW", {"lr": 0.02, "betas": (0.85, 0.995), "weight_decay": 0.5}, None, STEPS),
    "rmsprop_defaults": ("RMSprop", {}, None, STEPS),
    "rmsprop_alpha_eps": ("RMSprop", {"lr": 0.005, "alpha": 0.9, "eps": 1e-2}, None, STEPS),
    "rmsprop_weight_decay": ("RMSprop", {"lr": 0.005, "weight_decay": 0.5}, None, STEPS),
    # an optimiser driven by the schedule (optimizer:step() then schedule:step())
    "adam_cyclic_decay": ("Adam", {"lr": 1.0},
                          {"min": 1e-3, "max": 2e-2, "period": 8, "decay": 0.8, "mode": "triangular"}, 32),
    "sgd_momentum_cyclic": ("SGD", {"lr": 1.0, "momentum": 0.9},
                            {"min": 0.01, "max": 0.1, "period": 6, "decay": 1, "mode": "triangular"}, 24),
    "rmsprop_cyclic_sawtooth": ("RMSprop", {"lr": 1.0},
                                {"min": 1e-3, "max": 1e-2, "period": 5, "decay": 1, "mode": "sawtooth"}, 20),
    # optimisers driven by torch's closed-form schedules (the lr is the base rate)
    "adam_step_lr": ("Adam", {"lr": 0.05}, {"torch": "StepLR", "options": {"step_size": 6, "gamma": 0.5}}, 30),
    "sgd_momentum_cosine": ("SGD", {"lr": 0.1, "momentum": 0.9},
                            {"torch": "CosineAnnealingLR", "options": {"T_max": 12, "eta_min": 0.005}}, 32),
    "adamw_linear_warmup": ("AdamW", {"lr": 0.02},
                            {"torch": "LinearLR", "options": {"start_factor": 0.25, "total_iters": 8}}, 30),
    "sgd_multistep": ("SGD", {"lr": 0.2},
                      {"torch": "MultiStepLR", "options": {"milestones": [4, 9, 10, 20], "gamma": 0.5}}, 30),
}

# a parameter without a gradient at the first steps (a frozen layer unfrozen
# later): name -> (optimiser case it copies, 0-based parameter, first step
# with a gradient). torch's per-parameter state starts at that step, Adam's
# bias correction with it.
LATE_CASES = {
    "adam_late_param": ("adam_betas_eps", 1, 6),
    "adamw_late_param": ("adamw_weight_decay", 2, 4),
    "sgd_momentum_late_param": ("sgd_momentum", 0, 5),
    "rmsprop_late_param": ("rmsprop_alpha_eps", 1, 3),
}
for late_name, (base, _, _) in LATE_CASES.items():
    OPTIM_CASES[late_name] = OPTIM_CASES[base]

# schedule only: the learning rate at every iteration of 4 cycles
SCHEDULE_CASES = {
    "clr_triangular": {"min": 1e-3, "max": 1e-2, "period": 10, "decay": 1, "mode": "triangular"},
    "clr_triangular_odd_period": {"min": 0.0, "max": 0.5, "period": 7, "decay": 1, "mode": "triangular"},
    "clr_triangular_decay": {"min": 2e-3, "max": 1e-2, "period": 8, "decay": 0.7, "mode": "triangular"},
    "clr_sawtooth": {"min": 1e-4, "max": 3e-3, "period": 6, "decay": 1, "mode": "sawtooth"},
}
CYCLES = 4

# lr_lambda functions by name (the Lua spec has their twins)
LAMBDAS = {
    "warmup_decay": lambda t: min(1.0, (t + 1) / 8) * 0.97 ** t,
    "inverse": lambda t: 1 / (1 + 0.1 * t),
}

# lr_schedule cases: name -> (the optimiser's lr, torch scheduler, its options, iterations)
LR_SCHEDULE_CASES = {
    "step_lr": (0.1, "StepLR", {"step_size": 7, "gamma": 0.5}, 40),
    "step_lr_default_gamma": (1.0, "StepLR", {"step_size": 10}, 35),
    # repeated decays, two at consecutive iterations, one past the others
    "multistep_lr": (0.2, "MultiStepLR", {"milestones": [5, 12, 13, 30], "gamma": 0.5}, 40),
    "multistep_lr_default_gamma": (0.05, "MultiStepLR", {"milestones": [10, 20]}, 30),
    "exponential_lr": (0.1, "ExponentialLR", {"gamma": 0.9}, 40),
    # past T_max: torch's recursive form goes back up along the cosine (three half periods and more)
    "cosine_lr": (0.1, "CosineAnnealingLR", {"T_max": 10}, 45),
    "cosine_lr_eta_min": (0.05, "CosineAnnealingLR", {"T_max": 7, "eta_min": 1e-3}, 40),
    # past total_iters: the end factor
    "linear_lr_defaults": (0.1, "LinearLR", {}, 30),
    "linear_lr_decay": (0.3, "LinearLR", {"start_factor": 1.0, "end_factor": 0.1, "total_iters": 12}, 35),
    "lambda_lr_warmup_decay": (0.1, "LambdaLR", {"lr_lambda": "warmup_decay"}, 40),
    "lambda_lr_inverse": (0.5, "LambdaLR", {"lr_lambda": "inverse"}, 30),
}


def cyclic(opt, s):
    """torch's CyclicLR set up as Lumen's CyclicLR with these settings."""
    period, decay = s["period"], s["decay"]
    scale = {} if decay == 1 else {"scale_fn": lambda c: decay ** (c - 1), "scale_mode": "cycle"}
    if s["mode"] == "triangular":
        # up over the first half (a half-integer for an odd period), down over the second
        return torch.optim.lr_scheduler.CyclicLR(
            opt, base_lr=s["min"], max_lr=s["max"], step_size_up=period / 2, mode="triangular",
            cycle_momentum=False, **scale)
    # sawtooth, from max down to min over the cycle: torch's rising ramp from
    # base_lr = max towards max_lr = min over the whole period. (With a decay,
    # torch would shrink the drop rather than Lumen's peak: not expressible.)
    assert s["mode"] == "sawtooth" and decay == 1
    return torch.optim.lr_scheduler.CyclicLR(
        opt, base_lr=s["max"], max_lr=s["min"], step_size_up=period, step_size_down=0,
        mode="triangular", cycle_momentum=False)


def make_schedule(opt, s):
    """The scheduler of a case: CyclicLR's settings, or {torch, options}."""
    if "torch" not in s:
        return cyclic(opt, s)
    options = dict(s["options"])
    if "lr_lambda" in options:
        options["lr_lambda"] = LAMBDAS[options["lr_lambda"]]
    return getattr(torch.optim.lr_scheduler, s["torch"])(opt, **options)


def main():
    warnings.simplefilter("ignore")  # the scheduler's "step() before optimizer.step()" notice
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(20240611)
    tensors, manifest = {}, []
    for i, (name, (kind, options, schedule, steps)) in enumerate(OPTIM_CASES.items()):
        params = [(0.5 * torch.randn(s, generator=gen)).requires_grad_(True) for s in SHAPES]
        # gradients of different scales per tensor, a few exact zeros
        grads = []
        for step in range(steps):
            row = []
            for k, s in enumerate(SHAPES):
                g = torch.randn(s, generator=gen) * (0.3 * (k + 1)) + 0.1 * (k - 1)
                g[torch.rand(s, generator=gen) < 0.1] = 0
                row.append(g)
            grads.append(row)
        for k, p in enumerate(params):
            tensors[f"{name}.init.{k + 1}"] = p.detach().clone()
        opt = getattr(torch.optim, kind)(params, **options)
        sched = make_schedule(opt, schedule) if schedule else None
        lrs = []
        late, first_step = LATE_CASES.get(name, (None, None, None))[1:]
        for step in range(steps):
            opt.zero_grad(set_to_none=True)
            for k, p in enumerate(params):
                if k == late and step + 1 < first_step:
                    continue  # no gradient: the file has none for it either
                p.grad = grads[step][k].clone()
                tensors[f"{name}.grad.{step + 1}.{k + 1}"] = grads[step][k]
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            if sched:
                sched.step()
            for k, p in enumerate(params):
                tensors[f"{name}.param.{step + 1}.{k + 1}"] = p.detach().clone()
        opts = {k: list(v) if isinstance(v, tuple) else v for k, v in opt.defaults.items()
                if k in ("lr", "momentum", "dampening", "nesterov", "weight_decay", "betas", "eps",
                         "alpha", "centered", "amsgrad", "maximize")}
        opts["lr"] = options.get("lr", opts["lr"])
        manifest.append({"name": name, "kind": "optimizer", "optimizer": kind, "options": opts,
                         "schedule": schedule, "steps": steps, "nparams": len(SHAPES), "lrs": lrs})
    for name, s in SCHEDULE_CASES.items():
        p = torch.zeros(1, requires_grad=True)
        opt = torch.optim.SGD([p], lr=1.0)
        sched = cyclic(opt, s)
        steps = CYCLES * s["period"] + 1  # iterations 0 .. 4 periods: the start of a 5th cycle too
        lrs = []
        for _ in range(steps):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        manifest.append({"name": name, "kind": "schedule", "schedule": s, "steps": steps, "lrs": lrs})
    for name, (lr, scheduler, options, steps) in LR_SCHEDULE_CASES.items():
        p = torch.zeros(1, requires_grad=True)
        opt = torch.optim.SGD([p], lr=lr)
        schedule = {"torch": scheduler, "options": options}
        sched = make_schedule(opt, schedule)
        lrs = []
        for _ in range(steps):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        manifest.append({"name": name, "kind": "lr_schedule", "lr": lr, "schedule": schedule, "steps": steps,
                         "lrs": lrs})
    save(sys.argv[1], tensors, {"manifest": json.dumps({"torch": torch.__version__, "cases": manifest})})


if __name__ == "__main__":
    main()
