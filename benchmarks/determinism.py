"""Same params, same bytes on another machine: the instruction-set cap, checked.

``python benchmarks/determinism.py [--against REV] [--subjects N] [--name NAME]``

1. Renders a small demo set (``--subjects`` subjects, the demo's other settings) twice, each
   in a fresh process: once under the pipelines' instruction-set cap (:mod:`components.isa`)
   and once with ``FEROPS_NATIVE_ISA=1``, and counts the files whose bytes differ: what the
   cap changes on this CPU (nothing on a CPU without AVX-512, where there is nothing to cap).
2. Compares ``data.dvc`` and every output hash of the working ``dvc.lock`` (run ``make repro``
   first) with ``REV``'s committed files, written by ``make repro`` on the machine that made
   that commit: each output is *same*, *differs (expected)* for the files meant to change on
   every run (wall-clock timings under ``artifacts/timings/``, the MLflow run ids under
   ``artifacts/tracking/``), *differs (inputs changed)* where the stage's recorded code, data
   or params differ between the two locks (a commit since ``REV`` changed them), or
   *differs*: same recorded inputs, different bytes, the machine made the difference.

Writes ``benchmarks/results/<name>.{json,md}`` (``determinism`` unless ``--name``). No timings:
the figures are counts.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.report import git_commit, publish, results_name  # noqa: E402
from components.isa import CAPS, NATIVE  # noqa: E402
from components.machine import cpu_model, cpuinfo_field  # noqa: E402

EXPECTED_TO_DIFFER = ("artifacts/timings/", "artifacts/tracking/")


def cpu_flags() -> set[str]:
    """The CPU's feature flags (``/proc/cpuinfo``; empty where it does not exist)."""
    return set((cpuinfo_field("flags") or "").split())


def render(params: Path, out: Path, native: bool) -> None:
    """``ferops data synth`` in a fresh process, capped or (``native``) not."""
    env = {k: v for k, v in os.environ.items()
           if k not in {variable for variable, _ in CAPS.values()} | {NATIVE}}
    if native:
        env[NATIVE] = "1"
    subprocess.run([sys.executable, "-m", "pipelines.cli", "data", "synth", "--params",
                    str(params), "--out", str(out)], cwd=REPO_ROOT, env=env, check=True,
                   capture_output=True)


def differing_files(left: Path, right: Path) -> tuple[int, list[str]]:
    """(files compared, relative paths whose bytes differ or that one side lacks)."""
    names = sorted({p.relative_to(root).as_posix() for root in (left, right)
                    for p in root.rglob("*") if p.is_file()})
    differ = [n for n in names if not ((left / n).is_file() and (right / n).is_file()
                                       and filecmp.cmp(left / n, right / n, shallow=False))]
    return len(names), differ


def render_check(subjects: int) -> dict[str, Any]:
    """Part 1: the cap's effect on a rendered set on this CPU."""
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params["synthetic"].update(subjects=subjects, workers=1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "params.yaml"
        path.write_text(yaml.safe_dump(params, sort_keys=False))
        render(path, Path(tmp) / "capped", native=False)
        render(path, Path(tmp) / "native", native=True)
        total, differ = differing_files(Path(tmp) / "capped", Path(tmp) / "native")
    return {"subjects": subjects, "files": total, "differ": len(differ),
            "examples": differ[:5]}


def _stages(text: str) -> dict[str, Any]:
    return (yaml.safe_load(text) or {}).get("stages", {})


def _outputs(stage: dict[str, Any]) -> dict[str, str | None]:
    return {out["path"]: out.get("md5") for out in stage.get("outs", [])}


def changed_inputs(then: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """The deps and params of a stage whose recorded values differ between two locks
    (a dep only one lock records, such as a newly declared file, is not a change of input:
    it is what is being compared)."""
    old_deps = {d["path"]: d.get("md5") for d in then.get("deps", [])}
    changed = [d["path"] for d in now.get("deps", [])
               if d["path"] in old_deps and old_deps[d["path"]] != d.get("md5")]
    old_params = {(f, k): v for f, keys in (then.get("params") or {}).items()
                  for k, v in keys.items()}
    changed += [f"{f}:{k}" for f, keys in (now.get("params") or {}).items()
                for k, v in keys.items() if (f, k) in old_params and old_params[(f, k)] != v]
    return changed


def _committed(rev: str, path: str) -> str:
    done = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=REPO_ROOT,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"error: --against {rev}: no committed {path} there "
                         f"({done.stderr.strip().splitlines()[-1]})")
    return done.stdout


def compare_locks(then_text: str, now_text: str) -> list[dict[str, Any]]:
    """One row per output of the ``now`` lock: ``same``; ``differs (expected)`` for timings
    and run ids; ``differs (inputs changed)`` when the stage's recorded code, data or params
    differ between the locks (listed); ``differs`` when they do not (the machine made the
    difference); ``not in the reference lock``."""
    then, now = _stages(then_text), _stages(now_text)
    rows = []
    for name, stage in now.items():
        old = then.get(name)
        inputs = changed_inputs(old, stage) if old else []
        old_outs = _outputs(old) if old else {}
        for path, md5 in _outputs(stage).items():
            if path not in old_outs:
                verdict = "not in the reference lock"
            elif old_outs[path] == md5:
                verdict = "same"
            elif path.startswith(EXPECTED_TO_DIFFER):
                verdict = "differs (expected)"
            elif inputs:
                verdict = "differs (inputs changed)"
            else:
                verdict = "differs"
            rows.append({"stage": name, "output": path, "verdict": verdict,
                         "changed_inputs": inputs if verdict == "differs (inputs changed)"
                         else []})
    return rows


def lock_check(rev: str) -> dict[str, Any]:
    """Part 2: the working data.dvc and dvc.lock against ``rev``'s."""
    data_then = yaml.safe_load(_committed(rev, "data.dvc"))["outs"][0]["md5"]
    data_now = yaml.safe_load((REPO_ROOT / "data.dvc").read_text())["outs"][0]["md5"]
    rows = compare_locks(_committed(rev, "dvc.lock"), (REPO_ROOT / "dvc.lock").read_text())
    return {"against": rev, "data_dvc_same": data_then == data_now, "outputs": rows}


def markdown(payload: dict[str, Any]) -> list[str]:
    """The report for people."""
    render_part, lock = payload["render"], payload["lock"]
    counts: dict[str, int] = {}
    for row in lock["outputs"]:
        counts[row["verdict"]] = counts.get(row["verdict"], 0) + 1
    lines = [
        "# Same params, same bytes on another machine", "",
        f"- command: `{payload['command']}`", f"- commit: `{payload['commit']}`",
        f"- machine: {payload['machine']['cpu']}, AVX2 {payload['machine']['avx2']}, "
        f"AVX-512 {payload['machine']['avx512f']}, AMX {payload['machine'].get('amx', 'n/a')}",
        "",
        "## 1. What the instruction-set cap changes on this CPU", "",
        f"A {render_part['subjects']}-subject render, capped vs native: "
        f"{render_part['differ']} of {render_part['files']} files differ"
        + (f" (e.g. {', '.join(f'`{e}`' for e in render_part['examples'])})."
           if render_part["differ"] else "."), "",
        f"## 2. This machine's `make repro` against the lock committed at `{lock['against']}`",
        "", f"`data.dvc`: {'same md5' if lock['data_dvc_same'] else 'DIFFERENT md5'}. "
        "Outputs: " + ", ".join(f"{n} {v}" for v, n in sorted(counts.items())) + ".", "",
        "| stage | output | verdict |", "|---|---|---|",
    ]
    lines += [f"| {r['stage']} | `{r['output']}` | {r['verdict']}"
              + (f": {', '.join(f'`{c}`' for c in r['changed_inputs'])}"
                 if r["changed_inputs"] else "") + " |" for r in lock["outputs"]]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Run both checks and write the results files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", default="HEAD",
                        help="the commit whose data.dvc and dvc.lock are the reference")
    parser.add_argument("--subjects", type=int, default=4)
    parser.add_argument("--name", default="determinism", type=results_name,
                        help="results file name: one per pair of machines compared")
    args = parser.parse_args(argv)
    if not (REPO_ROOT / "dvc.lock").is_file():
        raise SystemExit("error: no dvc.lock in the workspace: run `make repro` first")
    lock = lock_check(args.against)  # a bad --against fails before the renders
    flags = cpu_flags()
    payload = {
        "command": shlex.join(["python", "benchmarks/determinism.py", *(argv or sys.argv[1:])]),
        "commit": git_commit(REPO_ROOT),
        "machine": {"cpu": cpu_model(), "avx2": "avx2" in flags,
                    "avx512f": "avx512f" in flags, "amx": "amx_tile" in flags},
        "render": render_check(args.subjects),
        "lock": lock,
    }
    publish(args.name, payload, markdown(payload))
    unexpected = [r for r in payload["lock"]["outputs"] if r["verdict"] == "differs"]
    return 1 if unexpected or not payload["lock"]["data_dvc_same"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
