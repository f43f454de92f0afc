#!/usr/bin/python3
"""PyTorch's best CPU configuration at an equal core count, and Lumen at the
same cores: the driver behind bench/run_net1_epoch.sh, bench/run_introspect.sh
and bench/run_peers.sh.

  /usr/bin/python3 bench/torch_best.py BENCH [BENCH ...] --out DIR [options]
  BENCH: net1_epoch (bench/net1_epoch.lua vs bench/net1_epoch_torch.py)
         introspect (bench/introspect.lua vs bench/introspect_torch.py)

For each core count N (--cores, default 1,2) every process is pinned to cores
0..N-1 with taskset. Lumen runs with N threads under each OpenBLAS kernel set
(bench/kernel_sets.sh's: the environment's OPENBLAS_CORETYPE and, with
AVX-512, SkylakeX). PyTorch runs under every configuration a user can pick
at N cores:
  torch.set_num_threads (intra-op threads)   1..N
  OPENBLAS_NUM_THREADS                       1..N
  OMP_WAIT_POLICY                            unset (libgomp's default: spin a
      while, then sleep), PASSIVE, ACTIVE; only with 2+ intra-op threads:
      with one, torch opens no OpenMP team and OpenBLAS (pthreads) never
      reads the variable, so the policy cannot change anything
  OPENBLAS_CORETYPE                          the kernel sets above
  ATEN_CPU_CAPABILITY                        torch's default dispatch (AVX2
      in Debian's build) and, with AVX-512, avx512
Selection: every configuration first runs a probe (--probe-steps steps after
a warm-up, best of --probe-reps chunks, scaled to an epoch); a probe whose
first chunk is --abort-factor times slower per step than the best probe so
far at that N stops there (clearly dominated). The best --top configurations
of each kernel set (by probe) then run in full (best of --epochs epochs), and
PyTorch's best at N is the fastest full run. --probe-steps 0 runs every
configuration in full instead.

Writes DIR/BENCH.json (every run, the best, the ratios), DIR/BENCH.tsv (one
line per run) and DIR/BENCH.txt (the tables printed), the logs of each run
under DIR/logs/. LUMEN (env) or --lumen names the binary (./build/lumen)."""
import argparse
import itertools
import json
import os
import shlex
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCHES = {
    "net1_epoch": ("bench/net1_epoch.lua", "bench/net1_epoch_torch.py", 468, "Net1 training epoch (MNIST, batch 128)"),
    "introspect": ("bench/introspect.lua", "bench/introspect_torch.py", 421, "InfoVAE epoch (54000 x 2400, batch 128)"),
}
PY = "/usr/bin/python3"  # Debian's python3-torch is importable only from this interpreter


def cpu_flags():
    for line in open("/proc/cpuinfo"):
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def machine_line():
    model = "unknown"
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return f"machine: {model}, {os.cpu_count()} cores; date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"


def kernel_sets():
    """bench/kernel_sets.sh's `kernels`: the environment's OPENBLAS_CORETYPE
    ('' means OpenBLAS detects the core) and SkylakeX where the CPU has
    AVX-512."""
    p = subprocess.run(["bash", "-c", 'source bench/kernel_sets.sh >/dev/null; printf "%s\\n" "${kernels[@]}"'],
                       cwd=ROOT, stdout=subprocess.PIPE, text=True)
    if p.returncode == 0 and p.stdout:
        return p.stdout.split("\n")[:-1]
    kernels = [os.environ.get("OPENBLAS_CORETYPE", "")]
    if "avx512f" in cpu_flags() and "SkylakeX" not in kernels:
        kernels.append("SkylakeX")
    return kernels


def capabilities():
    caps = [""]
    if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= cpu_flags():
        caps.append("avx512")
    return caps


def torch_configs(n, kernels, caps):
    configs = []
    for kernel, cap, intra, blas in itertools.product(kernels, caps, range(1, n + 1), range(1, n + 1)):
        for wait in (["", "PASSIVE", "ACTIVE"] if intra > 1 else [""]):
            configs.append({"kernel": kernel, "cap": cap, "intra": intra, "blas": blas, "wait": wait})
    # the likely winners first, so that the dominance cut has a bar early
    configs.sort(key=lambda c: (c["intra"] + c["blas"], c["wait"] != "", c["kernel"] != kernels[-1], c["cap"] != caps[-1]))
    return configs


def label(c):
    return (f"intra {c['intra']}, OPENBLAS_NUM_THREADS {c['blas']}, OMP_WAIT_POLICY {c['wait'] or 'unset'}, "
            f"kernels {c['kernel'] or 'detected'}, ATen {c['cap'] or 'default'}")


def cpus(n):
    return ",".join(str(i) for i in range(n))


class Runner:
    def __init__(self, args, bench):
        self.args, self.bench = args, bench
        self.logdir = os.path.join(args.out, "logs")
        os.makedirs(self.logdir, exist_ok=True)
        self.count = 0
        self.seconds = 0.0

    def run(self, name, cmd, env_set, env_unset=()):
        env = dict(os.environ)
        for k in env_unset:
            env.pop(k, None)
        for k, v in env_set.items():
            if v == "":
                env.pop(k, None)
            else:
                env[k] = str(v)
        self.count += 1
        log = os.path.join(self.logdir, f"{self.bench}-{self.count:03d}-{name}.log")
        t0 = time.perf_counter()
        p = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=self.args.run_timeout)
        wall = time.perf_counter() - t0
        self.seconds += wall
        shown_env = " ".join(f"{k}={shlex.quote(str(v))}" for k, v in sorted(env_set.items()) if v != "")
        with open(log, "w") as f:
            f.write(f"$ {shown_env} {' '.join(shlex.quote(c) for c in cmd)}\n{p.stdout}\nexit {p.returncode}, {wall:.1f} s\n")
        record = None
        for line in p.stdout.splitlines():
            if line.startswith("json: "):
                record = json.loads(line[6:])
        if p.returncode != 0 or record is None:
            print(f"  !! {name}: exit {p.returncode}, no result; see {log}", flush=True)
            return {"error": f"exit {p.returncode}", "log": log, "wall_s": wall}
        record.update({"log": log, "wall_s": wall})
        return record


def run_lumen(r, args, n, kernel):
    lua = BENCHES[r.bench][0]
    env = {"OPENBLAS_CORETYPE": kernel, "BENCH_EPOCHS": args.epochs, "BENCH_MAX_STEPS": args.max_steps or "",
           "BENCH_ROWS": args.rows or ""}
    rec = r.run(f"lumen-N{n}-{kernel or 'detected'}", ["taskset", "-c", cpus(n), args.lumen, lua, str(n)], env,
                env_unset=("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "OMP_WAIT_POLICY"))
    rec.update({"cores": n, "kernel": kernel})
    return rec


def run_torch(r, args, n, c, probe, abort_step_s=None):
    script = BENCHES[r.bench][1]
    env = {"OPENBLAS_CORETYPE": c["kernel"], "OPENBLAS_NUM_THREADS": c["blas"], "OMP_NUM_THREADS": c["intra"],
           "OMP_WAIT_POLICY": c["wait"], "ATEN_CPU_CAPABILITY": c["cap"], "BENCH_EPOCHS": args.epochs,
           "BENCH_MAX_STEPS": args.max_steps or "", "BENCH_ROWS": args.rows or "",
           "BENCH_PROBE_STEPS": args.probe_steps if probe else "", "BENCH_PROBE_REPS": args.probe_reps if probe else "",
           "BENCH_ABORT_STEP_S": abort_step_s if (probe and abort_step_s) else ""}
    if probe and r.bench == "introspect" and not args.rows:
        env["BENCH_ROWS"] = args.probe_rows
    name = f"torch-N{n}-i{c['intra']}-b{c['blas']}-{c['wait'] or 'unset'}-{c['kernel'] or 'detected'}-{c['cap'] or 'default'}"
    rec = r.run(name + ("-probe" if probe else "-full"), ["taskset", "-c", cpus(n), PY, script, str(c["intra"])], env)
    rec.update({"cores": n, "config": c, "label": label(c)})
    return rec


def fmt_s(rec):
    if "error" in rec:
        return "failed"
    return f"{rec['epoch_s']:.2f} s" + (" (stopped)" if rec.get("aborted") else "")


def extra(bench, rec):
    if "error" in rec or rec.get("mode") != "full":
        return ""
    if bench == "net1_epoch":
        return f"inference 10k: {rec['infer_s']:.3f} s"
    return f"interrogation: {rec['interrogate_one_per_s']:.0f}/s one at a time, {rec['interrogate_batch_per_s']:.0f}/s in batches of 1000"


def bench_one(args, bench, out_lines):
    def say(s=""):
        print(s, flush=True)
        out_lines.append(s)

    r = Runner(args, bench)
    kernels, caps = kernel_sets(), capabilities()
    say(f"== {bench}: {BENCHES[bench][3]}; best of {args.epochs} epochs")
    say(machine_line())
    say(f"OpenBLAS kernel sets: {', '.join(k or 'detected' for k in kernels)}; ATen CPU capabilities: "
        f"{', '.join(c or 'default' for c in caps)}; Lumen: {args.lumen}")
    result = {"bench": bench, "machine": machine_line(), "kernels": kernels, "capabilities": caps, "cores": {},
              "settings": vars(args)}
    for n in args.cores:
        say(f"\n-- {n} core(s) (taskset -c {cpus(n)})")
        lumen = []
        if not args.no_lumen:
            for kernel in kernels:
                rec = run_lumen(r, args, n, kernel)
                lumen.append(rec)
                say(f"lumen, {n} thread(s), kernels {kernel or 'detected'}: {fmt_s(rec)}  {extra(bench, rec)}")
        torch_runs, full = [], []
        if not args.no_torch:
            configs = [c for c in torch_configs(n, kernels, caps) if args.only in label(c)][: args.max_configs or None]
            probe = args.probe_steps > 0
            best_step = None
            say(f"PyTorch: {len(configs)} configurations" + (f", probes of {args.probe_steps} steps x {args.probe_reps}" if probe else ", each in full"))
            for c in configs:
                bar = best_step * args.abort_factor if (probe and best_step and args.abort_factor > 0) else None
                rec = run_torch(r, args, n, c, probe, bar)
                torch_runs.append(rec)
                if "error" not in rec and not rec.get("aborted"):
                    best_step = rec["step_s"] if best_step is None else min(best_step, rec["step_s"])
                say(f"  {'probe' if probe else 'full '} {fmt_s(rec):>18s}  {label(c)}  {extra(bench, rec)}")
            if probe:
                chosen = []
                for kernel in kernels:
                    ok = [x for x in torch_runs if "error" not in x and not x.get("aborted") and x["config"]["kernel"] == kernel]
                    chosen += sorted(ok, key=lambda x: x["step_s"])[: args.top]
                for x in chosen:
                    rec = run_torch(r, args, n, x["config"], False)
                    rec["probe_epoch_s"] = x["epoch_s"]
                    full.append(rec)
                    say(f"  full  {fmt_s(rec):>18s}  {label(x['config'])}  {extra(bench, rec)}")
            else:
                full = torch_runs
        full_ok = [x for x in full if "error" not in x]
        lumen_ok = [x for x in lumen if "error" not in x]
        entry = {"lumen": lumen, "torch_search": torch_runs if args.probe_steps > 0 else [], "torch_full": full}
        tbest = min(full_ok, key=lambda x: x["epoch_s"]) if full_ok else None
        lbest = min(lumen_ok, key=lambda x: x["epoch_s"]) if lumen_ok else None
        entry["torch_best"], entry["lumen_best"] = tbest, lbest
        if tbest:
            say(f"PyTorch's best at {n} core(s): {tbest['epoch_s']:.2f} s  ({tbest['label']})  {extra(bench, tbest)}")
        if lbest:
            say(f"Lumen's best at {n} core(s): {lbest['epoch_s']:.2f} s  (kernels {lbest['kernel'] or 'detected'})  {extra(bench, lbest)}")
        ratios = {}
        if tbest and lbest:
            ratios["best"] = lbest["epoch_s"] / tbest["epoch_s"]
            say(f"RATIO {bench} {n} core(s): Lumen / PyTorch-best = {ratios['best']:.2f} "
                f"({lbest['epoch_s']:.2f} s / {tbest['epoch_s']:.2f} s)")
            for kernel in kernels:
                lk = [x for x in lumen_ok if x["kernel"] == kernel]
                tk = [x for x in full_ok if x["config"]["kernel"] == kernel]
                if lk and tk:
                    t = min(tk, key=lambda x: x["epoch_s"])
                    ratios[kernel or "detected"] = lk[0]["epoch_s"] / t["epoch_s"]
                    say(f"  kernels {kernel or 'detected'} on both sides: {lk[0]['epoch_s']:.2f} s / {t['epoch_s']:.2f} s "
                        f"= {ratios[kernel or 'detected']:.2f}")
        entry["ratios"] = ratios
        result["cores"][str(n)] = entry
    say(f"\n{bench}: {r.count} runs, {r.seconds / 60:.1f} min of wall time")
    result["runs"], result["wall_s"] = r.count, r.seconds
    return result


def write_tsv(path, result):
    cols = ["framework", "cores", "mode", "threads", "openblas_threads", "omp_wait_policy", "kernel", "cpu_capability",
            "openblas_core", "epoch_s", "step_s", "aborted", "secondary", "wall_s", "log"]
    with open(path, "w") as f:
        f.write("\t".join(cols) + "\n")
        for n, e in result["cores"].items():
            for rec in e["lumen"] + e["torch_search"] + e["torch_full"]:
                if "error" in rec:
                    f.write(f"{rec.get('framework', '?')}\t{n}\terror\t" + "\t" * (len(cols) - 5) + f"{rec['wall_s']:.1f}\t{rec['log']}\n")
                    continue
                c = rec.get("config", {})
                sec = (f"{rec['infer_s']:.4f}" if "infer_s" in rec else
                       f"{rec['interrogate_one_per_s']:.0f}/{rec['interrogate_batch_per_s']:.0f}" if "interrogate_one_per_s" in rec else "")
                row = [rec["framework"], n, rec["mode"], rec["threads"], rec.get("openblas_threads", ""),
                       rec.get("omp_wait_policy", ""), c.get("kernel", rec.get("kernel", "")) or "detected",
                       rec.get("cpu_capability", "-"), rec.get("openblas_core", ""), f"{rec['epoch_s']:.4f}",
                       f"{rec['step_s'] * 1e3:.3f}ms", int(bool(rec.get("aborted"))), sec, f"{rec['wall_s']:.1f}", rec["log"]]
                f.write("\t".join(str(x) for x in row) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("benches", nargs="+", choices=sorted(BENCHES))
    ap.add_argument("--out", required=True, help="folder for the JSON/TSV/text results and the logs")
    ap.add_argument("--cores", default="1,2", help="core counts, comma-separated (default 1,2)")
    ap.add_argument("--lumen", default=os.environ.get("LUMEN", "./build/lumen"))
    ap.add_argument("--no-lumen", action="store_true")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--epochs", type=int, default=3, help="full runs: the best of this many epochs (3)")
    ap.add_argument("--probe-steps", type=int, default=100, help="steps per probe chunk (100); 0: every configuration in full")
    ap.add_argument("--probe-reps", type=int, default=2, help="probe chunks, the best counts (2)")
    ap.add_argument("--probe-rows", type=int, default=16384, help="introspect probes: rows of the recording (16384)")
    ap.add_argument("--abort-factor", type=float, default=2.0,
                    help="stop a probe after its first chunk when it is this many times slower than the best so far (2; 0: never)")
    ap.add_argument("--top", type=int, default=2, help="configurations per kernel set run in full after the probes (2)")
    ap.add_argument("--max-steps", type=int, default=0, help="cap the steps of full epochs (short checks only)")
    ap.add_argument("--rows", type=int, default=0, help="introspect: rows of the recording in all runs (short checks only)")
    ap.add_argument("--max-configs", type=int, default=0, help="only the first K PyTorch configurations (short checks only)")
    ap.add_argument("--only", default="", help="only the PyTorch configurations whose label contains this (short checks only)")
    ap.add_argument("--dry-run", action="store_true", help="list the PyTorch configurations and stop")
    ap.add_argument("--run-timeout", type=int, default=900)
    args = ap.parse_args()
    args.cores = [int(x) for x in args.cores.split(",")]
    if max(args.cores) > os.cpu_count():
        sys.exit(f"--cores {max(args.cores)}: this machine has {os.cpu_count()}")
    if not args.no_lumen and not os.access(os.path.join(ROOT, args.lumen) if not os.path.isabs(args.lumen) else args.lumen, os.X_OK):
        sys.exit(f"no Lumen binary at {args.lumen} (set LUMEN or --lumen)")
    os.makedirs(args.out, exist_ok=True)
    args.out = os.path.abspath(args.out)
    if not os.path.isabs(args.lumen):
        args.lumen = os.path.normpath(os.path.join(ROOT, args.lumen))
    if args.max_steps or args.rows or args.max_configs or args.only:
        print("note: --max-steps/--rows/--max-configs/--only shorten the runs: a check of the scripts, not a measurement")
    config_lines = subprocess.run([PY, "-c", "import torch; print(torch.__version__); print(torch.__config__.show())"],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True).stdout
    keep = []
    for line in config_lines.splitlines():
        line = line.strip(" -")
        if line[:1].isdigit():
            keep.append("torch " + line)
        elif line.startswith(("OpenMP", "CPU capability")):
            keep.append(line)
        elif "BLAS_INFO=" in line:
            keep += [t.strip() for t in line.split(":", 1)[1].split(", ") if t.strip().startswith(("BLAS_INFO", "USE_OPENMP", "USE_MKLDNN"))]
    if args.dry_run:
        for n in args.cores:
            for c in [c for c in torch_configs(n, kernel_sets(), capabilities()) if args.only in label(c)][: args.max_configs or None]:
                print(f"{n} core(s): {label(c)}")
        return
    for bench in args.benches:
        lines = ["; ".join(keep)]
        print(lines[0])
        result = bench_one(args, bench, lines)
        result["torch_config"] = config_lines
        with open(os.path.join(args.out, f"{bench}.json"), "w") as f:
            json.dump(result, f, indent=1)
        write_tsv(os.path.join(args.out, f"{bench}.tsv"), result)
        with open(os.path.join(args.out, f"{bench}.txt"), "w") as f:
            f.write("\n".join(lines) + "\n")
        print(f"results: {args.out}/{bench}.json, .tsv, .txt\n", flush=True)


if __name__ == "__main__":
    main()
