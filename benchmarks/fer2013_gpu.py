"""The fer2013 recipe's stages on a rented GPU machine: augment -> preprocess -> train.

What a CPU budget hides: how far the recipe's network goes with the epochs a GPU buys. The
GPU machines lent for a few minutes carry torch but not MLflow, DVC or Great Expectations,
and take at most 64 MiB of files per call, so the recipe crosses in parts:

    # here, in a workspace W where the recipe ran through validate (and, for the byte
    # check, preprocess): dvc exp run -S recipe=fer2013 -S ingest.path=... preprocess
    python benchmarks/fer2013_gpu.py pack --workspace W --out .gpu
    # on the GPU machine, two calls while it stays warm (each carries one part: .gpu/ is
    # git-ignored, so each call names its part to carry; the second must start within the
    # machine's warm window, or the first part staged there is gone with it):
    python benchmarks/fer2013_gpu.py stage --part .gpu/a
    python benchmarks/fer2013_gpu.py run --part .gpu/b --minutes 5 --variants V --out $OUT
    # here again, with the archive the second call sent back:
    python benchmarks/fer2013_gpu.py report --runs gpu_runs.tar.gz --pack .gpu/b/pack.json

``run`` executes dvc.yaml's own commands for augment, preprocess and configure (read from
dvc.yaml, never copied), checks the preprocessed arrays against the md5s ``pack`` took of
the workspace's, and trains each variant with the train stage (``python -m
pipelines.train``) on the GPU (``train.device: cuda``), all variants at once, each with the
recipe's time budget replaced by ``--minutes``. Tracking is off there (no MLflow): each
run's scores are its ``metrics.json``/``per_class.json`` and its measured speed is in its
uncached run record. ``report`` writes ``benchmarks/results/fer2013_gpu.{json,md}``
(``--name`` for another file). Size ``--minutes`` to the call's limit: in
``fer2013_gpu_b256.md`` a 5-minute budget made a 9.8-minute call (augment and preprocess
127 s; the one run 443 s: 28 s start-up and probe, 284 s of epochs, 130 s of test scoring on
the CPU, which the train stage now does on its training device; each log line is stamped
with the seconds since its run started, and the report says where the time went).

The same flow runs on a CPU (``stage --no-wheels``, then ``run --device cpu``): the variants
train side by side, the cores split evenly between them, so a pair compares at equal share
of the machine (``fer2013_cpu_crop40.md``). Two seeds of one variant side by side are the
members of a seed ensemble trained at once (``train.member_processes``): ``report
--ensemble A,B`` also scores their saved networks, left in the staged workspace, as one.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import lzma
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path
from typing import IO, Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.report import (  # noqa: E402
    RESULTS_DIR,
    git_commit,
    machine_facts,
    pct,
    results_name,
    write_results,
)

RECIPE = "fer2013"
ARCH = "baseline_cnn"
PIXELS = "artifacts/ingest/fer2013_pixels.npy"
STAGED = Path("/tmp/ferops-gpu")
ARCHIVE = "gpu_runs.tar.gz"
# Packages the GPU machine lacks that augment and preprocess import, pinned to this
# environment's versions (pandas too: the stages' parquet handling is tested on this one).
WHEELS = ("albumentations", "albucore", "pydantic", "pydantic_core", "annotated_types",
          "typing_inspection", "typing_extensions", "simsimd", "stringzilla", "pandas")
WHEEL_PYTHON = "3.12"
WHEEL_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64",
                   "manylinux_2_17_x86_64", "manylinux2014_x86_64")
# Settings every GPU run shares (besides ``--device``): no MLflow, the recipe's own settings
# (no tuner output travels), no progress bars in the logs.
COMMON = {"train.track": False, "train.use_tuned": False,
          "train.progress": False}
# The ``*_long`` variants lift the recipe's 120-epoch cap, so the budget, not the cap, sets
# the epoch count (width 1.0 at batch 64 trained at 4,967 images/s per run in
# fer2013_gpu_long.md, against about 6,000 at commit 9cc4414: holding the data on the GPU
# did not speed it up); ``b128`` doubles the batch
# and the peak learning rate together, ``b256`` quadruples both. A step costs about the same
# at these batch sizes on an H200 (benchmarks/results/gpu_step_rate.md), so the batch sets the
# images/s, and runs started together share the card's steps: run one variant alone for its
# full speed.
LONG = {"train.epochs": 400}
VARIANTS: dict[str, dict[str, Any]] = {
    "recipe": {},
    "width05": {f"train.overrides.{ARCH}.width": 0.5},
    "width10": {f"train.overrides.{ARCH}.width": 1.0},
    "width10_long": {f"train.overrides.{ARCH}.width": 1.0, **LONG},
    "width10_b128_long": {f"train.overrides.{ARCH}.width": 1.0, "train.batch_size": 128,
                          "train.lr": 0.1, **LONG},
    "width20_b128_long": {f"train.overrides.{ARCH}.width": 2.0, "train.batch_size": 128,
                          "train.lr": 0.1, **LONG},
    "width20_b256_long": {f"train.overrides.{ARCH}.width": 2.0, "train.batch_size": 256,
                          "train.lr": 0.2, **LONG},
    # The batch-256 run's 74 epochs scored no better than the batch-128 run's 42
    # (fer2013_gpu_b256.md): the recipe's light regularisation (set for width 0.5) may be
    # what a width-2.0 net needs more of; not yet run.
    "width20_b256_reg_long": {f"train.overrides.{ARCH}.width": 2.0,
                              f"train.overrides.{ARCH}.dropout": 0.5,
                              f"train.overrides.{ARCH}.block_dropout": 0.1,
                              "train.weight_decay": 0.001, "train.batch_size": 256,
                              "train.lr": 0.2, **LONG},
}
# A 2-core CPU without AMX (``--device cpu``, both runs at once, a core each): the width the
# recipe's comment gives such a CPU, on whole faces and on random 40 px crops (``train.crop``:
# 0.69 of the area, 1.32x the images/s at width 0.25 in train_width_baseline_cnn_crop.md),
# so at equal minutes the crops buy more epochs.
VARIANTS["width025"] = {f"train.overrides.{ARCH}.width": 0.25}
VARIANTS["width025_crop40"] = {f"train.overrides.{ARCH}.width": 0.25, "train.crop": 40}
# The same pair at another seed (weights, batch order and augmentation draws): how far one
# run's score moves from seed to seed at these budgets.
VARIANTS["width025_seed1"] = {**VARIANTS["width025"], "train.seed": 1}
VARIANTS["width025_crop40_seed1"] = {**VARIANTS["width025_crop40"], "train.seed": 1}
# Capacity where a CPU computes it well: in a profile of the width-0.25 step, batch norm and
# ReLU backward over the 48x48 maps took much of the time, the late blocks little.
# ``width025_b1`` is width 0.25 with one conv layer in the first block; ``taper96_b1`` adds
# capacity late (16-32-96-192 channels, twice width 0.25's parameters). At 60 minutes they ran
# 560 and 363 images/s, 32 and 20 epochs, and neither beat width 0.25's whole faces
# (fer2013_cpu_taper_60min.md against fer2013_cpu_crop40_60min.md).
ONE_CONV_FIRST = {f"train.overrides.{ARCH}.block_convs": [1, 2, 2, 2]}
VARIANTS["width025_b1"] = {f"train.overrides.{ARCH}.width": 0.25, **ONE_CONV_FIRST}
VARIANTS["taper96_b1"] = {f"train.overrides.{ARCH}.width": 1.0,
                          f"train.overrides.{ARCH}.channels": [16, 32, 96, 192],
                          **ONE_CONV_FIRST}
# Width 0.25 ends its hour at about 0.63 training accuracy on the augmented mix (history.csv
# in fer2013_cpu_taper_60min_runs.tar.gz): the net may underfit the recipe's augmentation.
# ``LIGHT`` halves the shift, rotation and scale ranges and drops random erasing (the occluded
# twins stay half of every epoch), on whole faces and with one conv layer in the first block.
LIGHT = {"train.shift": 2, "train.rotate": 5.0, "train.scale": 0.05, "train.erase_p": 0.0}
VARIANTS["width025_light"] = {**VARIANTS["width025"], **LIGHT}
VARIANTS["width025_b1_light"] = {**VARIANTS["width025_b1"], **LIGHT}
# Light augmentation at 60 minutes led the recipe's by 1.8 points at seed 0
# (fer2013_cpu_light_60min.md), with training accuracy still near 0.67 at the end: the same at
# seed 1, beside ``LIGHTER`` (1 px shifts, no rotation or scaling, no random erasing).
LIGHTER = {"train.shift": 1, "train.rotate": 0.0, "train.scale": 0.0, "train.erase_p": 0.0}
VARIANTS["width025_light_seed1"] = {**VARIANTS["width025_light"], "train.seed": 1}
VARIANTS["width025_lighter"] = {**VARIANTS["width025"], **LIGHTER}
# A seed ensemble (model option ``members``): two width-2.0 networks trained in turn, each
# with half the budget, scored on the mean of their logits. The batch-256 run's extra epochs
# bought nothing over the batch-128 run's 42 (fer2013_gpu_b256.md), so half of them each may
# cost a member little, while two members' partly independent errors average out.
VARIANTS["width20_b256_members2_long"] = {**VARIANTS["width20_b256_long"],
                                          f"train.overrides.{ARCH}.members": 2}
# The ``fer2013_cpu`` recipe's changes (LIGHT and ten test-time views, at the recipe's width
# 0.5) with and without an exponential moving average of the weights (``train.ema_decay``:
# 0.999 a step averages over about the last of the mix's 896-step epochs): the average led
# side by side (fer2013_cpu_ema_pair.md), so the recipe takes it.
VARIANTS["cpu_recipe"] = {**LIGHT, "train.tta_shift": 2}
VARIANTS["cpu_recipe_ema"] = {**VARIANTS["cpu_recipe"], "train.ema_decay": 0.999}
# Two seeds of it side by side on a core each: the members of a two-network seed ensemble
# trained at once rather than in turn (``report --ensemble``): two one-thread processes made
# more images/s together than one two-thread process.
VARIANTS["cpu_recipe_ema_seed1"] = {**VARIANTS["cpu_recipe_ema"], "train.seed": 1}
# The recipe with the last 3x3 map flattened into the head (``head_grid: 3``) instead of its
# global average: where in the aligned face a feature fired reaches the classifier (524,288
# more weights in the first FC layer, next to no arithmetic). Run beside ``cpu_recipe_ema``
# at the same seed, a core each, so both share the machine's moods alike.
GRID3 = {f"train.overrides.{ARCH}.head_grid": 3}
VARIANTS["cpu_recipe_ema_grid3"] = {**VARIANTS["cpu_recipe_ema"], **GRID3}
VARIANTS["cpu_recipe_ema_grid3_seed1"] = {**VARIANTS["cpu_recipe_ema_seed1"], **GRID3}
# The recipe with mixup (``train.mixup_alpha``): in the recipe's fresh-clone hour on the AMX
# Xeon (fer2013_cpu_amx_ema_recipe.md, 33 epochs) training accuracy on the mix climbed from
# 0.68 to 0.79 over the last six, low-rate epochs while validation accuracy fell from its
# 27th-epoch best: the net memorises once the rate is low. Blended faces and labels leave
# it less to memorise; 0.2 is mixup's usual mild setting. It trained 35 epochs, its best
# the last, and scored level with that run (fer2013_cpu_mixup.md): not taken.
MIXUP = {"train.mixup_alpha": 0.2}
VARIANTS["cpu_recipe_ema_mixup"] = {**VARIANTS["cpu_recipe_ema"], **MIXUP}
# The ``fer2013`` recipe's own augmentation (shift 4, rotation 10, zoom 0.1, random erasing
# 0.25) with the ``fer2013_cpu`` recipe's ten views and moving average: the light
# augmentation was chosen at width 0.25, which underfit; at width 0.5 the light runs
# memorise late, while ``fer2013.md`` (this augmentation, width 0.5, 42 epochs on the same
# kind of Xeon) kept gaining to its 41st epoch. Alone on both cores it trained 40 epochs and
# scored 71.16 % (fer2013_cpu_recipe_views_ema.md), in a faster hour than the light
# recipe's 33 epochs. Beside ``cpu_recipe_ema`` on a core each (15 epochs each in a slow
# hour) it scored 68.21 % against 69.69 % (fer2013_cpu_views_pair.md): not taken.
VARIANTS["recipe_views_ema"] = {"train.tta_shift": 2, "train.ema_decay": 0.999}
TEST_SPLITS = (("test", "PrivateTest, official (all rows)"),
               ("test_dedup", "PrivateTest minus rows flagged by validation"),
               ("test_occ25", "PrivateTest, 25 % occluded"))


def command_line(args: list[str]) -> str:
    """This invocation as a results file records it (see :func:`portable_command`)."""
    return portable_command(shlex.join(["python", "benchmarks/fer2013_gpu.py", *args]))


def portable_command(line: str) -> str:
    """``line`` with its absolute paths that exist here (a workspace beside the checkout, an
    archive in a scratch folder) written relative to the working directory, so a results
    file names no machine's folders."""
    def portable(arg: str) -> str:
        return os.path.relpath(arg) if os.path.isabs(arg) and os.path.exists(arg) else arg

    return shlex.join(map(portable, shlex.split(line)))


# ---- pack (here) -----------------------------------------------------------------------
def file_md5s(root: Path) -> dict[str, str]:
    """md5 of every .npy file under ``root`` (relative paths): the byte check's reference."""
    return {str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*.npy"))}


def download_wheels(dest: Path) -> list[str]:
    """The pinned wheels for the GPU machine's Python, fetched with pip."""
    from importlib.metadata import version

    dest.mkdir(parents=True, exist_ok=True)
    platforms = [arg for p in WHEEL_PLATFORMS for arg in ("--platform", p)]
    pins = [f"{name}=={version(name)}" for name in WHEELS]
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                    "--only-binary=:all:", "--python-version", WHEEL_PYTHON,
                    "--implementation", "cp", *platforms, "-d", str(dest), *pins], check=True)
    return pins


def pack(workspace: Path, out: Path) -> None:
    """Split what ``run`` needs into two parts of under 64 MiB each."""
    from components.recipes import write_params

    missing = [p for p in (PIXELS, "artifacts/ingest/manifest.parquet",
                           "artifacts/validate/manifest.parquet")
               if not (workspace / p).exists()]
    if missing:
        raise SystemExit(f"{workspace}: missing {missing}; run the {RECIPE} recipe through "
                         "validate there first (dvc exp run -S recipe=fer2013 ... validate)")
    shutil.rmtree(out, ignore_errors=True)
    part_a, part_b = out / "a", out / "b"
    pins = download_wheels(part_a / "wheels")
    packed = lzma.compress((workspace / PIXELS).read_bytes(), preset=6)
    half = len(packed) // 2
    (part_a / "pixels.xz.0").write_bytes(packed[:half])
    (part_b / "artifacts").mkdir(parents=True)
    (part_b / "pixels.xz.1").write_bytes(packed[half:])
    ingest = part_b / "artifacts" / "ingest"
    ingest.mkdir()
    for name in ("manifest.parquet", "summary.json"):
        shutil.copy2(workspace / "artifacts/ingest" / name, ingest / name)
    shutil.copytree(workspace / "artifacts/validate", part_b / "artifacts" / "validate")
    write_params(REPO_ROOT, RECIPE, part_b / "params.yaml")
    preprocessed = workspace / "artifacts/preprocess"
    (part_b / "pack.json").write_text(json.dumps({
        "commit": git_commit(REPO_ROOT), "recipe": RECIPE, "wheels": pins,
        "preprocess_md5": file_md5s(preprocessed) if preprocessed.is_dir() else {},
        "pack_command": command_line(sys.argv[1:]),
    }, indent=2))
    for part in (part_a, part_b):
        size = sum(p.stat().st_size for p in part.rglob("*") if p.is_file())
        print(f"{part}: {size / 2**20:.1f} MiB")


# ---- stage and run (on the GPU machine) ------------------------------------------------
def stage(part: Path, to: Path, wheels: bool = True) -> None:
    """Call 1: install the wheels under ``to/site`` and keep the first half of the pixels.

    ``wheels`` False stages the pixels alone, for a machine whose Python already has the
    packages (this project's environment: a CPU run of the whole flow); the wheels are
    built for the GPU machine's Python and would shadow them."""
    started = time.perf_counter()
    (to / "site").mkdir(parents=True, exist_ok=True)
    if wheels:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-index",
                        "--no-deps", "--no-compile", "--no-cache-dir", "--upgrade", "--target",
                        str(to / "site"), *map(str, sorted((part / "wheels").glob("*.whl")))],
                       check=True)
    shutil.copy2(part / "pixels.xz.0", to / "pixels.xz.0")
    print(f"staged under {to} in {time.perf_counter() - started:.1f} s")


def stage_env(staged: Path, threads: int | None = None) -> dict[str, str]:
    """The environment the stages run in: the staged wheels ahead of the machine's own."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(staged / "site"), str(REPO_ROOT)]),
           "PYTHONUNBUFFERED": "1"}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def stage_command(name: str) -> list[str]:
    """dvc.yaml's command for stage ``name``, run with this interpreter."""
    import yaml

    stages = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]
    words = shlex.split(stages[name]["cmd"])
    return [sys.executable, *words[1:]] if words[0] == "python" else words


def run_stage(name: str, work: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(stage_command(name), cwd=work, env=env, check=True)
    return time.perf_counter() - started


def assemble(part: Path, staged: Path, work: Path) -> None:
    """The workspace: ingest and validate outputs, the recipe's params, the pixels."""
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(part / "artifacts", work / "artifacts")
    shutil.copy2(part / "params.yaml", work / "params.yaml")
    halves = (staged / "pixels.xz.0").read_bytes() + (part / "pixels.xz.1").read_bytes()
    (work / PIXELS).write_bytes(lzma.decompress(halves))


def variant_params(work: Path, name: str, minutes: float, device: str) -> Path:
    """The train stage's params file for ``name``: configure's, with the overrides set."""
    import yaml

    values = yaml.safe_load((work / f"artifacts/config/train/{ARCH}.yaml").read_text())
    settings = {**COMMON, "train.device": device, "train.budget_minutes": minutes,
                **VARIANTS[name]}
    for key, value in settings.items():
        node = values
        *parents, leaf = key.split(".")
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = value
    path = work / "variants" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(values, sort_keys=True))
    return path


def copy_stamped(stream: IO[str], log: Path, started: float) -> None:
    """Copy a run's output into its log, each line prefixed with the seconds since the run
    started: the pipeline's own lines carry no clock, and a GPU call's time outside the
    training budget (start-up, data loading, test scoring) is only visible this way."""
    with log.open("w") as sink:
        for line in stream:
            sink.write(f"[{time.perf_counter() - started:7.1f} s] {line}")
            sink.flush()


def train_variants(work: Path, names: list[str], minutes: float, staged: Path,
                   device: str, on_done: Any) -> dict[str, dict[str, Any]]:
    """Every variant's train stage at once on the GPU; wall time and exit code of each.
    ``on_done(name, entry)`` runs as each one ends (so a call cut short keeps the finished)."""
    threads = max(1, (os.cpu_count() or 1) // max(1, len(names)))
    started, procs, copiers = {}, {}, []
    (work / "runs/logs").mkdir(parents=True, exist_ok=True)
    for name in names:
        cmd = [sys.executable, "-m", "pipelines.train", "--arch", ARCH, "--params",
               str(variant_params(work, name, minutes, device)), "--data",
               "artifacts/preprocess", "--out", f"runs/train/{name}", "--tune-dir",
               "runs/no-tuner"]
        started[name] = time.perf_counter()
        procs[name] = subprocess.Popen(cmd, cwd=work, env=stage_env(staged, threads),
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                       text=True, bufsize=1)
        copiers.append(threading.Thread(
            target=copy_stamped, daemon=True,
            args=(procs[name].stdout, work / f"runs/logs/{name}.log", started[name])))
        copiers[-1].start()
    done: dict[str, dict[str, Any]] = {}
    while len(done) < len(procs):
        for (name, proc), copier in zip(procs.items(), copiers, strict=True):
            if name in done or proc.poll() is None:
                continue
            copier.join(timeout=10.0)
            done[name] = {"returncode": proc.returncode, "overrides": VARIANTS[name],
                          "wall_seconds": time.perf_counter() - started[name],
                          "threads": threads}
            on_done(name, done[name])
        time.sleep(1.0)
    return done


def gpu_facts() -> dict[str, Any]:
    facts = machine_facts()
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
                              "--format=csv,noheader"], capture_output=True, text=True,
                             timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        smi = None
    return {**facts, "nvidia_smi": smi}


def run(part: Path, staged: Path, out: Path, minutes: float, names: list[str],
        device: str = "cuda") -> None:
    """Call 2: assemble, augment, preprocess, configure, check the bytes, train, archive.

    The summary and the archive are rewritten in ``out`` before training and as each run
    ends: a call stopped at its time limit still sends back what had finished."""
    missing = [str(p) for p in (staged / "pixels.xz.0", part / "pack.json") if not p.exists()]
    if missing:
        raise SystemExit(f"run: missing {missing}; `stage --part .gpu/a` must run first on this "
                         "machine (a machine that went cold between the calls has lost it)")
    work = staged / "ws"
    env = stage_env(staged)
    pack_info = json.loads((part / "pack.json").read_text())
    assemble(part, staged, work)
    seconds = {name: run_stage(name, work, env)
               for name in ("augment", "preprocess", "configure")}
    reference = pack_info.get("preprocess_md5") or {}
    mine = file_md5s(work / "artifacts/preprocess")
    differing = sorted(k for k in reference if mine.get(k) != reference[k])
    # the code that trains is this checkout as it is now, which may be later than the pack's
    # (a GPU machine's copy has no git: None there, and ``report --code-commit`` names it)
    summary = {"commit": pack_info["commit"], "code_commit": git_commit(REPO_ROOT),
               "recipe": RECIPE, "minutes": minutes,
               "pack_command": pack_info.get("pack_command"), "wheels": pack_info["wheels"],
               "run_command": shlex.join(["python", "benchmarks/fer2013_gpu.py", "run",
                                          "--part", str(part), "--minutes", str(minutes),
                                          "--variants", ",".join(names), "--device", device,
                                          "--out", "$OUT"]),
               "device": device, "complete": False,
               "stage_seconds": seconds, "machine": gpu_facts(), "runs": {},
               "preprocess_bytes": {"compared_files": len(reference), "differing": differing}}
    out.mkdir(parents=True, exist_ok=True)
    archive(work, out, summary)
    print(json.dumps({k: summary[k] for k in ("stage_seconds", "preprocess_bytes")}, indent=1),
          flush=True)

    def finished(name: str, entry: dict[str, Any]) -> None:
        summary["runs"][name] = entry
        archive(work, out, summary)
        print(f"{name}: exit {entry['returncode']} after {entry['wall_seconds']:.0f} s",
              flush=True)

    train_variants(work, names, minutes, staged, device, finished)
    summary["complete"] = True
    archive(work, out, summary)


def archive(work: Path, out: Path, summary: dict[str, Any]) -> None:
    """``summary.json`` and the runs' reports (no weights) into ``out``'s archive."""
    (work / "runs").mkdir(parents=True, exist_ok=True)
    (work / "runs/summary.json").write_text(json.dumps(summary, indent=2))
    keep = ("metrics.json", "per_class.json", "history.csv", "learning_curves.png")
    partial = out / f".{ARCHIVE}"
    with tarfile.open(partial, "w:gz") as tar:
        for path in sorted((work / "runs").rglob("*")):
            if path.is_file() and (path.name in keep or path.suffix in (".log", ".json")):
                tar.add(path, arcname=str(path.relative_to(work)))
    partial.replace(out / ARCHIVE)
    shutil.copy2(work / "runs/summary.json", out / "summary.json")


# ---- report (here) ---------------------------------------------------------------------
def read_archive(path: Path, pack_info: dict[str, Any]) -> dict[str, Any]:
    """summary.json plus each variant's metrics, per-class recall, run record and log tail.

    An archive without a summary (a call stopped before ``run`` wrote one, its outputs
    copied back as they were) is read from the runs it holds: the settings from their
    params files, the commit from ``pack_info``; what only the summary records (stage
    times, the byte check, exit codes) is reported as not recorded."""
    with tarfile.open(path) as tar:
        names = set(tar.getnames())

        def load(name: str) -> Any:
            member = tar.extractfile(name) if name in names else None
            return json.loads(member.read()) if member is not None else None

        summary = load("runs/summary.json") or salvaged_summary(tar, names, pack_info)
        for name, entry in summary["runs"].items():
            base = f"runs/train/{name}"
            entry["metrics"] = load(f"{base}/metrics.json")
            entry["per_class"] = load(f"{base}/per_class.json")
            entry["record"] = load(f"runs/tracking/train/{name}.json")
            log = tar.extractfile(f"runs/logs/{name}.log") \
                if f"runs/logs/{name}.log" in names else None
            text = log.read().decode() if log is not None else ""
            entry["log_tail"], entry["timeline"] = text[-1500:], log_timeline(text)
    return summary


STAMP = re.compile(r"^\[\s*(\d+(?:\.\d+)?) s\] (.*)$")


def log_timeline(text: str) -> dict[str, float] | None:
    """Seconds since the run started at which its log (stamped by :func:`copy_stamped`)
    says the epoch plan was made (start-up and the speed probe done), the last epoch ended,
    and the run's last line came (test scoring and files written); None for a log without
    stamps (runs before the logs carried them)."""
    stamped = [(float(m.group(1)), m.group(2)) for m in map(STAMP.match, text.splitlines()) if m]
    if not stamped:
        return None
    planned = next((t for t, line in stamped if "planned" in line and "of at most" in line),
                   None)
    epochs = [t for t, line in stamped if re.search(r"\bepoch \d+/\d+ ", line)]
    return {"planned": planned, "last_epoch": epochs[-1] if epochs else None,
            "last_line": stamped[-1][0]}


def salvaged_summary(tar: tarfile.TarFile, names: set[str],
                     pack_info: dict[str, Any]) -> dict[str, Any]:
    """What an archive without ``runs/summary.json`` still tells (see :func:`read_archive`)."""
    import yaml

    variants = sorted({n.split("/")[2] for n in names
                       if n.startswith("runs/train/") and n.count("/") >= 3})
    settings = {}
    for name in variants:
        member = tar.extractfile(f"variants/{name}.yaml") \
            if f"variants/{name}.yaml" in names else None
        settings[name] = (yaml.safe_load(member.read()) or {}).get("train", {}) \
            if member is not None else {}
    first = settings[variants[0]] if variants else {}
    return {"commit": pack_info.get("commit"), "recipe": RECIPE, "complete": False,
            "salvaged": True, "minutes": first.get("budget_minutes"),
            "device": first.get("device"), "pack_command": pack_info.get("pack_command"),
            "run_command": None, "wheels": pack_info.get("wheels"), "stage_seconds": None,
            "machine": None, "preprocess_bytes": None,
            "runs": {name: {"overrides": VARIANTS.get(name, {}), "returncode": None,
                            "wall_seconds": None} for name in variants}}


def variant_row(name: str, entry: dict[str, Any]) -> dict[str, Any]:
    metrics = entry.get("metrics") or {}
    record = entry.get("record") or {}
    timings = record.get("timings") or {}
    recall = ((entry.get("per_class") or {}).get("splits") or {}).get("test", {})
    splits = {}
    for split, label in TEST_SPLITS:
        if f"{split}_accuracy" not in metrics:
            continue
        splits[split] = {"label": label, **{
            key: {m: metrics.get(f"{split}{suffix}_{m}") for m in ("accuracy", "uar", "macro_f1")}
            for suffix, key in (("", "tta"), ("_notta", "no_tta"))}}
    return {
        "variant": name, "overrides": entry["overrides"], "returncode": entry["returncode"],
        "wall_minutes": entry["wall_seconds"] / 60.0 if entry["wall_seconds"] else None,
        "epochs_run": metrics.get("epochs_run"), "epochs_planned": metrics.get("epochs_planned"),
        "epochs_planned_by_probe": metrics.get("epochs_planned_by_probe"),
        "best_epoch": metrics.get("best_epoch"),
        "stopped_by_budget": metrics.get("stopped_by_budget"),
        "train_images_per_second": timings.get("train_images_per_second"),
        "epoch_seconds": timings.get("epoch_seconds"),
        "computed_on": record.get("computed_on"),
        "splits": splits, "test_per_class_recall": recall.get("per_class_recall"),
        "log_tail": entry.get("log_tail") if entry["returncode"] else None,
        "threads": entry.get("threads"),
        "timeline_seconds": entry.get("timeline"),
    }


def _timeline_line(row: dict[str, Any]) -> str | None:
    """Where a run's wall time went, from its log's stamps."""
    times = row.get("timeline_seconds")
    if not times or None in times.values():
        return None
    return (f"- {row['variant']}: start-up and speed probe {times['planned']:.0f} s, epochs "
            f"{times['last_epoch'] - times['planned']:.0f} s, after the last epoch (test "
            f"scoring, files) {times['last_line'] - times['last_epoch']:.0f} s")


def _commits_line(payload: dict[str, Any]) -> str:
    """The pack's commit (data, params, wheels) and, where it differs, the code's."""
    pack, code = payload.get("commit"), payload.get("code_commit")
    if not code:
        return f"`{pack}` (the pack's; the code's not recorded)"
    if code == pack:
        return f"`{pack}`"
    return f"code `{code}`, pack (data, params, wheels) `{pack}`"


def _machine_line(payload: dict[str, Any]) -> str:
    """The GPU machine: from the summary, else from what the runs' records say they ran on."""
    machine = payload.get("machine")
    if machine and payload.get("device") == "cpu":
        return (f"{machine['cpu']}, {machine['cpu_count']} cores, no GPU used; "
                f"torch {machine['torch']}")
    if machine:
        return (f"{machine.get('nvidia_smi') or machine.get('gpu')}; {machine['cpu']}, "
                f"{machine['cpu_count']} cores; torch {machine['torch']}")
    seen = next((row["computed_on"] for row in payload["runs"] if row.get("computed_on")), {})
    return (f"{seen.get('machine.gpu')} ({seen.get('train.precision_used')}); "
            f"{seen.get('machine.cpu')} ({seen.get('machine.kernels')} kernels), "
            "from the runs' records (the summary was not written)")


def _stages_line(payload: dict[str, Any]) -> str:
    seconds, check = payload.get("stage_seconds"), payload.get("preprocess_bytes")
    if not seconds or not check:
        return ("- augment and preprocess ran there with dvc.yaml's commands; their times and "
                "the byte check of the preprocessed arrays were not recorded")
    same = ("identical to the workspace's" if not check["differing"] else
            f"{len(check['differing'])} of {check['compared_files']} files differ from the "
            "workspace's") if check["compared_files"] else "not compared (no reference)"
    return (f"- augment {seconds['augment']:.0f} s, preprocess {seconds['preprocess']:.0f} s "
            f"on that machine (dvc.yaml's commands); preprocessed arrays {same}")


def _sharing(payload: dict[str, Any]) -> str:
    """How the runs shared the machine."""
    runs = payload["runs"]
    if payload.get("device") == "cpu":
        threads = sorted({row.get("threads") for row in runs if row.get("threads")})
        each = f", {threads[0]} thread(s) each" if len(threads) == 1 else ""
        return ("all variants at once" + each) if len(runs) > 1 else "one run alone"
    return "all variants at once" if len(runs) > 1 else "one run alone on the card"


def markdown(payload: dict[str, Any]) -> str:
    run_command = (f"`{payload['run_command']}`" if payload.get("run_command")
                   else "`python benchmarks/fer2013_gpu.py run ...`")
    on_cpu = payload.get("device") == "cpu"
    lines = [
        f"# {RECIPE} recipe on the CPU: the GPU driver's flow, its runs side by side" if on_cpu
        else f"# {RECIPE} recipe on a GPU: the train stage with the epochs a GPU buys", "",
        f"- commands: `{payload['pack_command']}`, then "
        + ("here `python benchmarks/fer2013_gpu.py stage --part .gpu/a --no-wheels`" if on_cpu
           else "on the GPU machine `python benchmarks/fer2013_gpu.py stage --part .gpu/a`")
        + f" and {run_command}, then `{payload['command']}`",
        f"- commit: {_commits_line(payload)}; recipe `{RECIPE}` (conf/recipe/{RECIPE}.yaml) with "
        f"`train.device: {payload['device']}`, tracking off ("
        + ("as on the GPU machine" if on_cpu else "no MLflow on that machine")
        + f"), `train.budget_minutes: {payload['minutes']}` per run, {_sharing(payload)}",
        f"- machine: {_machine_line(payload)}",
        _stages_line(payload),
        "- scores: the official PrivateTest (3,589 faces) and its de-duplicated subset, "
        "with the run's test-time averaging (TTA: the mirror, and where `tta_shift` is set "
        "both faces shifted towards the four corners too, ten views) and without; these runs "
        "are not registered ("
        + ("tracking off)" if on_cpu else "no MLflow there)"),
    ]
    if payload.get("salvaged"):
        lines.append("- this call was stopped at the GPU machine's per-call time limit before "
                     "`run` wrote its summary and archive; every run's train stage had written "
                     "its outputs, which were copied back as they were and are read here "
                     "(exit codes and wall times not recorded)")
    lines += [
        "",
        "| variant | overrides | epochs run / planned | best epoch | images/s | s/epoch "
        "| PrivateTest acc (TTA) | UAR (TTA) | acc (no TTA) | de-dup acc (TTA) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in payload["runs"]:
        test = row["splits"].get("test", {})
        dedup = row["splits"].get("test_dedup", {})
        overrides = ", ".join(f"{k.split('.')[-1]}={v}" for k, v in row["overrides"].items())
        lines.append(
            f"| {row['variant']} | {overrides or 'the recipe (width 0.25)'} | "
            f"{_num(row['epochs_run'])} / {_num(row['epochs_planned'])} | "
            f"{_num(row['best_epoch'])} | {_num(row['train_images_per_second'], ',.0f')} | "
            f"{_num(row['epoch_seconds'], '.1f')} | "
            f"{pct(test.get('tta', {}).get('accuracy'))} | {pct(test.get('tta', {}).get('uar'))}"
            f" | {pct(test.get('no_tta', {}).get('accuracy'))} | "
            f"{pct(dedup.get('tta', {}).get('accuracy'))} |")
    failed = [row for row in payload["runs"] if row["returncode"]]
    for row in failed:
        lines += ["", f"{row['variant']} failed (exit {row['returncode']}):", "", "```",
                  (row["log_tail"] or "").strip(), "```"]
    timelines = [line for line in map(_timeline_line, payload["runs"]) if line]
    if timelines:
        lines += ["", "Where each run's time went (seconds since it started, from the stamps "
                  "on its log lines):", "", *timelines]
    lines += ["", "Per-class recall on the official PrivateTest (TTA):", ""]
    for row in payload["runs"]:
        recall = row.get("test_per_class_recall") or {}
        lines.append(f"- {row['variant']}: " + ", ".join(f"{k} {pct(v)}"
                                                       for k, v in recall.items()))
    lines += _ensemble_lines(payload)
    lines += ["", f"Target (documented, not asserted): {payload['target']}."]
    return "\n".join(lines) + "\n"


def _num(value: Any, spec: str = ".0f") -> str:
    return "n/a" if value is None else format(value, spec)


def score_ensemble(work: Path, names: list[str]) -> dict[str, Any]:
    """The named runs' networks as one seed ensemble, scored by the platform.

    What the model option ``members`` trains with ``train.member_processes`` set to their
    number (each member a process with its share of the cores and the whole budget) is what
    runs side by side on a CPU (``run --device cpu``) train: so their saved networks, read
    from the staged workspace ``work`` (the archive carries no weights), are wrapped as a
    :class:`~components.models.ensemble.SeedEnsemble` (the mean of their logits) and scored
    on the test splits with the runs' test-time views and without.
    """
    from components.errors import DataError, one_line
    from components.models import TorchClassifier, load_trained
    from components.models.ensemble import SeedEnsemble
    from components.training.run import score

    try:
        loaded = [load_trained(work / "runs" / "train" / n) for n in names]
    except DataError as exc:
        raise SystemExit(f"--ensemble: {one_line(str(exc))}; the weights stay in the staged "
                         "workspace of a CPU run (--work)") from None
    spec = loaded[0][0]
    views = {(s.arch, s.tta_mirror, s.tta_shift, tuple(s.classes)) for s, _ in loaded}
    if len(views) != 1:
        raise SystemExit(f"--ensemble: {names} differ in architecture, classes or test-time "
                         "views; an ensemble averages networks of one kind")
    net = SeedEnsemble([classifier.net for _, classifier in loaded]).eval()
    needs = loaded[0][1].needs
    task = work / "artifacts" / "preprocess" / "image"
    splits: dict[str, Any] = {}
    for split, label in TEST_SPLITS[:2]:
        splits[split] = {"label": label}
        for key, mirror, shift in (("tta", spec.tta_mirror, spec.tta_shift),
                                   ("no_tta", False, 0)):
            started = time.perf_counter()
            result = score(TorchClassifier(net, needs, mirror=mirror, shift=shift), spec,
                           task, split)
            splits[split][key] = {m: result[m] for m in ("accuracy", "uar", "macro_f1")}
            if split == "test" and key == "tta":
                splits["test_per_class_recall"] = result["per_class_recall"]
            print(f"ensemble {'+'.join(names)}: {split} {key} accuracy "
                  f"{pct(result['accuracy'])}, UAR {pct(result['uar'])} "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)
    recall = splits.pop("test_per_class_recall")
    return {"members": names, "tta_mirror": spec.tta_mirror, "tta_shift": spec.tta_shift,
            "splits": splits, "test_per_class_recall": recall}


def _ensemble_lines(payload: dict[str, Any]) -> list[str]:
    """The ensemble of the runs, beside them."""
    ensemble = payload.get("ensemble")
    if not ensemble:
        return []
    runs = {row["variant"]: row for row in payload["runs"]}
    members = ensemble["members"]
    epochs = " and ".join(_num(runs[n]["epochs_run"]) for n in members if n in runs)
    rate = sum(runs[n]["train_images_per_second"] or 0 for n in members if n in runs)
    test, dedup = ensemble["splits"]["test"], ensemble["splits"]["test_dedup"]
    views = "mirror" + (f" + shift {ensemble['tta_shift']}" if ensemble["tta_shift"] else "")
    return [
        "", f"## The runs as one seed ensemble ({' + '.join(members)})", "",
        "Their saved networks averaged (the mean of their logits, a `SeedEnsemble`), scored "
        "by the platform: the ensemble that `members: "
        f"{len(members)}` with `train.member_processes: {len(members)}` trains, each member "
        f"with the whole budget and its share of the cores (members of {epochs} epochs; "
        f"{rate:,.0f} training images/s together).", "",
        "| test split | TTA | accuracy | UAR | macro-F1 |", "|---|---|---|---|---|",
        *(f"| {block['label']} | {name} | {pct(block[key]['accuracy'])} | "
          f"{pct(block[key]['uar'])} | {pct(block[key]['macro_f1'])} |"
          for block in (test, dedup) for key, name in (("tta", views), ("no_tta", "none"))),
        "", "Per-class recall on the official PrivateTest (" + views + "): "
        + ", ".join(f"{k} {pct(v)}" for k, v in ensemble["test_per_class_recall"].items()),
    ]


def report(runs: Path, pack_json: Path, name: str, out_dir: Path = RESULTS_DIR,
           ensemble: list[str] | None = None, work: Path = STAGED / "ws",
           code_commit: str | None = None) -> None:
    """``<out_dir>/<name>.{json,md}`` from the archive the GPU machine sent back; with
    ``ensemble``, also those runs as one seed ensemble (:func:`score_ensemble`, from the
    weights in the staged workspace ``work`` of a CPU run). ``code_commit`` names the
    checkout the runs trained with where the summary could not (a GPU machine has no git)."""
    if not runs.is_file():
        raise SystemExit(f"report: {runs} is not a file; pass the {ARCHIVE} the run call sent "
                         "back")
    pack_info = json.loads(pack_json.read_text()) if pack_json.exists() else {}
    summary = read_archive(runs, pack_info)
    payload = {
        "command": command_line(sys.argv[1:]),
        "code_commit": code_commit or summary.get("code_commit"),
        **{k: summary.get(k) for k in ("commit", "minutes", "device", "run_command", "wheels",
                                       "stage_seconds", "machine", "preprocess_bytes",
                                       "complete", "salvaged")},
        # the pack command travelled in the archive as typed here
        "pack_command": portable_command(summary["pack_command"])
        if summary.get("pack_command") else None,
        "recipe": RECIPE, "target": ">= 72 % accuracy and >= 66 % UAR on the official "
        "PrivateTest (issue 11)",
        "runs": [variant_row(n, e) for n, e in summary["runs"].items()],
    }
    if ensemble:
        missing = sorted(set(ensemble) - set(summary["runs"]))
        if missing:
            raise SystemExit(f"--ensemble: {missing} are not runs of {runs}")
        payload["ensemble"] = score_ensemble(work, ensemble)
    write_results(name, payload, markdown(payload), out_dir)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="here: split the recipe's inputs into two parts")
    p.add_argument("--workspace", type=Path, required=True,
                   help="a checkout where the recipe ran through validate (and preprocess)")
    p.add_argument("--out", type=Path, default=Path(".gpu"))
    s = sub.add_parser("stage", help="GPU machine, call 1: wheels and the first part")
    s.add_argument("--part", type=Path, default=Path(".gpu/a"))
    s.add_argument("--to", type=Path, default=STAGED)
    s.add_argument("--no-wheels", dest="wheels", action="store_false",
                   help="stage the pixels only (a machine whose Python has the packages)")
    r = sub.add_parser("run", help="GPU machine, call 2: the stages and the training runs")
    r.add_argument("--part", type=Path, default=Path(".gpu/b"))
    r.add_argument("--staged", type=Path, default=STAGED)
    r.add_argument("--minutes", type=float, required=True, help="each run's training budget")
    r.add_argument("--variants", default=",".join(VARIANTS),
                   help=f"comma-separated, of {sorted(VARIANTS)}")
    r.add_argument("--out", type=Path, required=True, help="where the archive goes ($OUT)")
    r.add_argument("--device", default="cuda", choices=("cuda", "cpu"),
                   help="train.device of every run (cpu: the whole flow on this machine's "
                   "cores, after `stage --no-wheels`; the runs share them)")
    w = sub.add_parser("report", help="here: the results files from the returned archive")
    w.add_argument("--runs", type=Path, required=True, help=f"the returned {ARCHIVE}")
    w.add_argument("--pack", type=Path, default=Path(".gpu/b/pack.json"),
                   help="pack's record (the commit), for an archive without a summary")
    w.add_argument("--name", default="fer2013_gpu", type=results_name,
                   help="benchmarks/results/<name>.{json,md}")
    w.add_argument("--code-commit", default=None, type=commit_hash,
                   help="the commit the runs trained with, where the archive does not record "
                   "it (a GPU machine's copy has no git)")
    w.add_argument("--ensemble", default="",
                   help="comma-separated runs to score as one seed ensemble as well (a CPU "
                   "run's: their weights stay in the staged workspace)")
    w.add_argument("--work", type=Path, default=STAGED / "ws",
                   help="the staged workspace holding the runs' weights (--ensemble)")
    return parser.parse_args(argv)


def commit_hash(text: str) -> str:
    """``--code-commit`` as a git hash (7-40 hex digits, ``-dirty`` allowed): anything else
    would be written into the results file as the code that trained."""
    if not re.fullmatch(r"[0-9a-f]{7,40}(-dirty)?", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a commit hash (7-40 hex digits)")
    return text


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "pack":
        pack(args.workspace, args.out)
    elif args.command == "stage":
        stage(args.part, args.to, args.wheels)
    elif args.command == "run":
        names = [n for n in args.variants.split(",") if n]
        unknown = sorted(set(names) - set(VARIANTS))
        if unknown:
            raise SystemExit(f"--variants: unknown {unknown}; choose from {sorted(VARIANTS)}")
        run(args.part, args.staged, args.out, args.minutes, names, args.device)
    else:
        report(args.runs, args.pack, args.name,
               ensemble=[n for n in args.ensemble.split(",") if n] or None, work=args.work,
               code_commit=args.code_commit)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
