"""Serving under load and abuse: latency, throughput and memory of ``mlflow models serve``.

    python benchmarks/serve_load.py [--model RUN_FOLDER|URI] [--data artifacts/preprocess]
                                    [--requests 200] [--clients 8] [--body-mb 100]
                                    [--workers 1 2]

Serves the model the way the README tells users to (``mlflow models serve -m URI
--env-manager local --workers N`` on 127.0.0.1) once per ``--workers`` count. A training run
folder (the default, ``artifacts/train/baseline_cnn``) is first saved as a serving model with
this checkout's code, so the figures describe the code at the commit they name; an MLflow URI
(``models:/ferops-image@champion``) serves with the code it was logged with. For each count:

1. sends ``--requests`` valid photo requests one after another, then the same number from
   ``--clients`` concurrent clients: p50 / p95 / p99 latency and requests per second;
2. sends the bad-payload battery: not an image, truncated base64, a decompression bomb (a
   PNG whose header claims 30000x30000 pixels), a ``--body-mb`` body, malformed JSON, the
   wrong modality, a server-side path that exists and one that does not;
3. sends the valid requests again (sequentially).

The server's resident memory (the whole process tree) is read before and after the battery.
Targets: no 5xx for bad input, every bad request answered 4xx with a message, the two path
requests answered alike, RSS growth under 10 % across the battery, the server still
answering. Results go to ``benchmarks/results/serve_load.{json,md}``.
"""

from __future__ import annotations

import argparse
import base64
import json
import shlex
import struct
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.predict_latency import bench_photo, encoded  # noqa: E402
from benchmarks.report import git_commit, machine_facts, publish  # noqa: E402
from components.config import load_params  # noqa: E402
from components.serving.pyfunc import (  # noqa: E402
    is_run_folder,
    run_task_dir,
    save_serving_model,
)
from components.serving.server import (  # noqa: E402
    free_port,
    model_server_command,
    model_server_env,
    running,
)

DEFAULT_MODEL = "artifacts/train/baseline_cnn"
DEFAULT_DATA = Path("artifacts/preprocess")
RSS_GROWTH_LIMIT = 0.10


def servable(model: str, data: Path, scratch: Path) -> tuple[str, str]:
    """What to serve for ``model`` and the commit of the serving code it will run.

    A training run folder is saved as a serving model with this checkout's code; an MLflow
    URI serves with the code it was logged with (named by its run's ``git_commit`` tag).
    """
    if is_run_folder(Path(model)):
        params = load_params(REPO_ROOT / "params.yaml")
        saved = save_serving_model(Path(model), run_task_dir(Path(model), data),
                                   params.get("preprocess"), params.get("serving"),
                                   scratch / "model")
        return str(saved), git_commit(REPO_ROOT)
    return model, logged_commit(model)


def tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its children."""
    import psutil

    root = psutil.Process(pid)
    total = 0
    for proc in [root, *root.children(recursive=True)]:
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total


def post(url: str, body: bytes, timeout: float = 120.0) -> tuple[int, dict[str, Any], float]:
    """POST ``body`` to ``/invocations``: (status, parsed answer, seconds)."""
    request = urllib.request.Request(f"{url}/invocations", data=body,
                                     headers={"Content-Type": "application/json"})
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    seconds = time.perf_counter() - start
    try:
        answer = json.loads(raw or b"{}")
    except json.JSONDecodeError:
        answer = {"message": raw[:200].decode("utf-8", "replace")}
    return status, answer if isinstance(answer, dict) else {"body": answer}, seconds


def request_body(rows: list[dict[str, Any]]) -> bytes:
    """The ``dataframe_split`` JSON MLflow's scoring server takes."""
    columns = sorted({key for row in rows for key in row})
    return json.dumps({"dataframe_split": {
        "columns": columns, "data": [[row.get(c) for c in columns] for row in rows]}}).encode()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def model_inputs(model: str) -> tuple[str, ...]:
    """What the served model reads (``image``, ``depth``, ``frames``), from its metadata."""
    from mlflow.models import get_model_info

    return tuple((get_model_info(model).metadata or {}).get("inputs") or ("image",))


def logged_commit(model: str) -> str:
    """The commit of the run that logged ``model``: a served model runs the serving code it
    was logged with, not the working tree's."""
    from mlflow import MlflowClient
    from mlflow.models import get_model_info

    try:
        run_id = get_model_info(model).run_id
        return MlflowClient().get_run(run_id).data.tags.get("git_commit", "unknown")
    except Exception:  # noqa: BLE001 - a model logged outside a run: say so, measure anyway
        return "unknown"


def valid_row(inputs: tuple[str, ...]) -> dict[str, Any]:
    """One 640x480 JPEG photo with a face (and its depth map when the model reads one)."""
    colour, depth = bench_photo()
    row: dict[str, Any] = {"image": b64(encoded(colour, "jpeg"))}
    if "depth" in inputs:
        row["depth"] = b64(encoded(depth, "png"))
    return row


def bomb_png(side: int = 30000) -> bytes:
    """A small PNG whose header claims ``side`` x ``side`` grey pixels (data cut short)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (side + 1) * 64, 9)  # the first 64 rows only
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows)
            + chunk(b"IEND", b""))


def battery(inputs: tuple[str, ...], body_mb: int, existing_path: str) -> dict[str, bytes]:
    """The bad requests, by name."""
    good = valid_row(inputs)
    extra = {k: v for k, v in good.items() if k != "image"}
    still = "frames" not in inputs
    wrong_modality = ({"frames": [good["image"], good["image"]]} if still
                      else {"image": good["image"]})
    return {
        "not an image": request_body([{**extra, "image": b64(b"hello, not an image")}]),
        "truncated base64": request_body([{**extra, "image": good["image"][:1001]}]),
        "decompression bomb (30000x30000 PNG)": request_body([{**extra,
                                                               "image": b64(bomb_png())}]),
        f"{body_mb} MB body": request_body([{**extra, "image": "A" * (body_mb << 20)}]),
        "malformed JSON": b'{"dataframe_split": {"columns": ["image"], "data": [["',
        "wrong modality": request_body([wrong_modality]),
        "server-side path (exists)": request_body([{**extra, "image": existing_path}]),
        "server-side path (missing)": request_body([{**extra,
                                                     "image": existing_path + ".missing"}]),
    }


def latency(url: str, body: bytes, count: int, clients: int) -> dict[str, Any]:
    """``count`` requests from ``clients`` concurrent clients: percentiles, rate, statuses."""
    def one(_: int) -> tuple[int, float]:
        status, _answer, seconds = post(url, body)
        return status, seconds

    start = time.perf_counter()
    if clients == 1:
        results = [one(i) for i in range(count)]
    else:
        with ThreadPoolExecutor(max_workers=clients) as pool:
            results = list(pool.map(one, range(count)))
    wall = time.perf_counter() - start
    seconds = np.array([s for _, s in results])
    statuses = [s for s, _ in results]
    return {"clients": clients, "requests": count, "ok": statuses.count(200),
            "p50_ms": 1000 * float(np.percentile(seconds, 50)),
            "p95_ms": 1000 * float(np.percentile(seconds, 95)),
            "p99_ms": 1000 * float(np.percentile(seconds, 99)),
            "requests_per_s": count / wall}


def run_load(model: str, env: dict[str, str], *, requests: int, clients: int, body_mb: int,
             workers: int = 1, data: Path = DEFAULT_DATA) -> dict[str, Any]:
    """The whole measurement (see module doc); returns everything measured."""
    scratch = Path(tempfile.mkdtemp(prefix="ferops-serve-load-"))
    served, serving_commit = servable(model, data, scratch)
    inputs = model_inputs(served)
    good = request_body([valid_row(inputs)])
    existing = scratch / "secret.png"
    existing.write_bytes(encoded(bench_photo()[0], "png"))
    bad = battery(inputs, body_mb, str(existing))
    port = free_port()
    with running(model_server_command(served, port, workers), port, scratch / "serve.log",
                 {**model_server_env(), **env}) as (url, pid):
        post(url, good)  # warm-up: the first request loads lazily-built parts
        load = [latency(url, good, requests, 1), latency(url, good, requests, clients)]
        rss_before = tree_rss(pid)
        answers = []
        for name, body in bad.items():
            status, answer, seconds = post(url, body)
            message = str(answer.get("message", ""))
            answers.append({"payload": name, "status": status,
                            "message": message.splitlines()[0][:160] if message else "",
                            "ms": 1000 * seconds})
        rss_after = tree_rss(pid)
        load.append(latency(url, good, requests, 1) | {"after_battery": True})
    paths = [a for a in answers if a["payload"].startswith("server-side path")]
    checks = {
        "no 5xx for bad input": all(a["status"] < 500 for a in answers),
        "every bad request 4xx with a message": all(400 <= a["status"] < 500 and a["message"]
                                                    for a in answers),
        "existing and missing paths answered alike": len({(a["status"], a["message"])
                                                          for a in paths}) == 1,
        f"RSS growth under {RSS_GROWTH_LIMIT:.0%}": rss_after <= rss_before
        * (1 + RSS_GROWTH_LIMIT),
        "still answering after the battery": load[-1]["ok"] == requests,
    }
    return {"model": model, "serving_code_commit": serving_commit, "inputs": list(inputs),
            "workers": workers, "load": load,
            "battery": answers, "rss_before_mb": rss_before / 2**20,
            "rss_after_mb": rss_after / 2**20, "checks": checks}


def markdown(results: list[dict[str, Any]], command: str, commit: str, facts: dict
             ) -> list[str]:
    """The results file for people: one section per worker count."""
    first = results[0]
    lines = ["# Serving under load and abuse", "", f"- command: `{command}`",
             f"- commit: `{commit}`",
             f"- machine: {facts['cpu']}, {facts['cpu_count']} cores",
             f"- model: `{first['model']}` (reads {', '.join(first['inputs'])}; it serves "
             f"with the code of commit `{first['serving_code_commit']}`), "
             "`mlflow models serve` on 127.0.0.1; a 640x480 JPEG photo with one face per "
             "request"]
    for result in results:
        lines += ["", f"## --workers {result['workers']}", "",
                  "| clients | requests | ok | p50 ms | p95 ms | p99 ms | requests/s |",
                  "|---|---|---|---|---|---|---|"]
        for row in result["load"]:
            label = f"{row['clients']}" + (" (after the battery)" if row.get("after_battery")
                                           else "")
            lines.append(f"| {label} | {row['requests']} | {row['ok']} | "
                         f"{row['p50_ms']:.1f} | {row['p95_ms']:.1f} | {row['p99_ms']:.1f} | "
                         f"{row['requests_per_s']:.1f} |")
        lines += ["", "| bad payload | status | message | ms |", "|---|---|---|---|"]
        for row in result["battery"]:
            message = row["message"].replace("|", "\\|")
            lines.append(f"| {row['payload']} | {row['status']} | {message} | "
                         f"{row['ms']:.0f} |")
        lines += ["", f"Server RSS (process tree): {result['rss_before_mb']:.0f} MB before "
                  f"the battery, {result['rss_after_mb']:.0f} MB after.", "",
                  "| check | met |", "|---|---|"]
        lines += [f"| {name} | {'yes' if ok else 'NO'} |"
                  for name, ok in result["checks"].items()]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help="training run folder (served with this checkout's code) or "
                             "MLflow model URI (default: %(default)s)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="preprocessed data of a run folder (default: %(default)s)")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--body-mb", type=int, default=100)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    from components.tracking.store import check_reachable, configure_tracking

    uri = configure_tracking()
    check_reachable(uri)
    results = [run_load(args.model, {"MLFLOW_TRACKING_URI": uri}, requests=args.requests,
                        clients=args.clients, body_mb=args.body_mb, workers=workers,
                        data=args.data)
               for workers in args.workers]
    command = shlex.join(["python", "benchmarks/serve_load.py", *sys.argv[1:]])
    commit, facts = git_commit(REPO_ROOT), machine_facts()
    publish("serve_load", {"command": command, "commit": commit, "machine": facts,
                           "runs": results},
            markdown(results, command, commit, facts))
    return 0 if all(all(r["checks"].values()) for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
