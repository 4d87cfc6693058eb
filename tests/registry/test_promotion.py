"""Registering, gating, promoting and rolling back against a real ``mlflow server``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow.artifacts
import pytest
from mlflow import MlflowClient

from pipelines import registry as cli
from registry.lock import PromotionLock, lock_name
from registry.policy import GatePolicy, load_policy
from registry.promote import promote
from registry.register import Registered, register_candidates
from tests.registry.conftest import CLASSES, DIGEST_B, Project

REPO = Path(__file__).resolve().parents[2]


def aliases(client: MlflowClient, name: str) -> dict[str, str]:
    return {k: str(v) for k, v in client.get_registered_model(name).aliases.items()}


def policy_of(project: Project) -> GatePolicy:
    return load_policy({"registry": project.policy})


def register(project: Project) -> list[Registered]:
    return register_candidates(project.train, project.data, project.client(), policy_of(project))


def ferops_registry(project: Project, *args: str) -> int:
    return cli.main([*args, "--params", str(project.params)])


def spawn(project: Project, *args: str) -> subprocess.Popen:
    """``python -m pipelines.registry ...`` as a separate process, like CI runs it."""
    env = {**os.environ, **project.env()}
    return subprocess.Popen(
        [sys.executable, "-m", "pipelines.registry", *args, "--params", str(project.params)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def test_register_tags_card_candidate_alias_and_is_idempotent(project: Project) -> None:
    project.candidate("baseline_cnn", 0.40)
    recall = {"anger": 0.9, "happiness": 0.6, "neutral": 0.05, "surprise": 0.85}
    project.candidate("fusion_early", 0.60, recall=recall)
    (project.train / "svm_fusion").mkdir()  # tracking off: no run record, skipped
    (project.train / "svm_fusion" / "metrics.json").write_text('{"test_uar": 0.9}')

    first = register(project)
    client = project.client()
    name = project.name()
    assert [(r.arch, r.version, r.created) for r in first] == [
        ("baseline_cnn", "1", True), ("fusion_early", "2", True)]
    version = client.get_model_version(name, "2")
    tags = version.tags
    run = client.get_run(tags["run_id"])
    assert tags["architecture"] == "fusion_early" and tags["task"] == "image"
    assert tags["dataset"] == "synthetic" and tags["git_commit"] == "0123abc"
    assert float(tags["test_uar"]) == 0.60 and float(tags["test_occ25_accuracy"]) == 0.30
    assert {k for k in tags if k.startswith("recall.")} == {f"recall.{c}" for c in CLASSES}
    assert float(tags["recall.neutral"]) == 0.05
    assert len(tags["params_hash"]) == 64 and tags["test_digest"] == "a" * 64
    assert run.info.run_id == version.run_id
    card = version.description
    assert "## Per-class recall" in card and "| neutral | 0.050 |" in card
    assert "neutral (0.05)" in card.split("## Limitations")[1]  # weak class named
    assert "## Intended use" in card
    # The input contract and the exact call; the same text among the version's artifacts.
    contract = card.split("## Input contract")[1]
    assert "takes a plain photo" in contract and "chance level: 0.250" in contract
    assert f"classes, in output order: {', '.join(CLASSES)}" in contract
    assert "cropped to 48x48 px" in contract and "channel order: color (3 channels)" in contract
    assert f"ferops predict --model models:/{name}/2 photo.jpg\n" in card
    stored = mlflow.artifacts.download_artifacts(f"models:/{name}/2/MODEL_CARD.md",
                                                 tracking_uri=project.server.url)
    assert Path(stored).read_text() == card
    assert aliases(client, name) == {"candidate": "2"}

    again = register(project)
    assert [(r.version, r.created) for r in again] == [("1", False), ("2", False)]
    assert len(client.search_model_versions(f"name = '{name}'")) == 2

    project.candidate("partition_cnn", 0.45)
    assert [r.version for r in register(project) if r.created] == ["3"]
    assert aliases(client, name)["candidate"] == "3"


def test_no_champion_best_passing_candidate_becomes_champion(project: Project) -> None:
    project.candidate("baseline_cnn", 0.40)
    # The best score, but one class is below the floor: it may not become champion.
    project.candidate("hierarchical", 0.70,
                      recall={"anger": 1.0, "happiness": 1.0, "neutral": 0.05, "surprise": 0.75})
    project.candidate("fusion_early", 0.55)
    register(project)
    result = promote(project.client(), "image", policy_of(project))
    assert result.status == "promoted" and result.exit_code == 0
    assert result.decision.challenger.arch == "fusion_early"
    # Versions follow run-folder order: baseline_cnn 1, fusion_early 2, hierarchical 3.
    assert aliases(project.client(), project.name()) == {
        "candidate": "3", "staging": "2", "champion": "2"}
    assert "v2 (fusion_early) is now champion (no champion before)" in result.report
    assert ("| v3 | hierarchical | 0.7000 | class recall below the floor 0.1: neutral 0.050 |"
            in result.report)  # listed with the reason it was passed over


def test_better_challenger_passes_gate_and_aliases_move(project: Project) -> None:
    project.candidate("baseline_cnn", 0.40)
    register(project)
    client, name = project.client(), project.name()
    assert promote(client, "image", policy_of(project)).status == "promoted"
    project.candidate("fusion_early", 0.60)
    register(project)

    result = promote(client, "image", policy_of(project))

    assert result.status == "promoted"
    assert aliases(client, name) == {"candidate": "2", "staging": "2", "champion": "2",
                                     "previous-champion": "1"}
    old = client.get_model_version(name, "1")
    assert "retired" in old.tags and old.tags["retired_by"] == "2"
    assert len(client.search_model_versions(f"name = '{name}'")) == 2  # nothing deleted
    assert "| test_uar | 0.6000 | 0.4000 |" in result.report
    assert "PASS delta" in result.report

    # Promoting what already is champion changes nothing and exits 0.
    assert ferops_registry(project, "promote", "--task", "image", "--version", "2") == 0
    assert aliases(client, name)["champion"] == "2"


def test_worse_challenger_refused_with_exit_3_and_reasons(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    project.candidate("fusion_early", 0.60)
    assert ferops_registry(project, "promote", "--register", "--train", str(project.train),
                           "--data", str(project.data)) == 0
    project.candidate("baseline_cnn", 0.603)  # better, but by less than min_delta
    capsys.readouterr()
    report = project.root / "report.md"

    code = ferops_registry(project, "promote", "--task", "image", "--register",
                           "--train", str(project.train), "--report", str(report))

    out = capsys.readouterr().out
    assert code == 3
    assert "refused by the gate" in out and "does not beat the champion's 0.6000 by 0.005" in out
    assert report.read_text() in out + "\n"
    assert aliases(project.client(), project.name())["champion"] == "1"
    # The refusal and its reason stay on the version, for results files and the UI.
    tags = project.client().get_model_version(project.name(), "2").tags
    assert tags["gate.refused_against"] == "1"
    assert "does not beat the champion's 0.6000 by 0.005" in tags["gate.refusal"]
    # `ferops registry status` says so too: the state column and the reason under the table.
    assert ferops_registry(project, "status") == 0
    status = capsys.readouterr().out
    row = next(line for line in status.splitlines() if line.startswith("| v2 |"))
    assert row.endswith("| refused vs v1 |"), row
    assert "Why the gate refused:" in status
    assert "- v2: " in status and "does not beat the champion's 0.6000 by 0.005" in status
    # Nothing new since the refusal: a re-run is idempotent (unchanged, exit 0).
    assert ferops_registry(project, "promote", "--task", "image") == 0
    assert "already refused against champion v1" in capsys.readouterr().out
    # The DVC stage must not fail on a refusal, but still reports it.
    assert ferops_registry(project, "promote", "--task", "image", "--version", "2",
                           "--refused-ok") == 0
    assert "refused by the gate" in capsys.readouterr().out


def champion_then_other_test_data(project: Project, champion_uar: float,
                                  challenger_uar: float) -> MlflowClient:
    """v1 (baseline_cnn) promoted, then v2 (fusion_early) registered, scored on other test
    data (DIGEST_B)."""
    project.candidate("baseline_cnn", champion_uar)
    register(project)
    client = project.client()
    promote(client, "image", policy_of(project))
    project.candidate("fusion_early", challenger_uar, digest=DIGEST_B)
    register(project)
    return client


def test_challenger_evaluated_on_other_test_data_is_refused(project: Project) -> None:
    client = champion_then_other_test_data(project, 0.40, 0.90)

    result = promote(client, "image", policy_of(project))

    assert result.status == "refused" and result.exit_code == 3
    assert "was scored on other test data than the champion's" in result.report
    assert "bbbbbbbbbbbb vs aaaaaaaaaaaa" in result.report
    assert aliases(client, project.name())["champion"] == "1"


def test_replace_on_new_test_data_takes_over_and_rolls_back(project: Project) -> None:
    """A recipe on other test data (FER2013 after the demo) replaces the champion when
    registry.new_test_data says so, on its own checks: a lower score than the old champion's
    (scored on other data) does not matter; the old champion stays the rollback target."""
    client = champion_then_other_test_data(project, 0.90, 0.60)
    replace = load_policy({"registry": {**project.policy, "new_test_data": "replace"}})

    result = promote(client, "image", replace)

    assert result.status == "promoted", result.report
    assert "scored on new test data (digest bbbbbbbbbbbb vs aaaaaaaaaaaa)" in result.report
    assert "PASS delta" not in result.report and "FAIL" not in result.report
    now = aliases(client, project.name())
    assert (now["champion"], now["previous-champion"]) == ("2", "1")
    # Back on the old test data, the old model is set aside, not compared across data.
    assert promote(client, "image", replace).status == "unchanged"
    assert ferops_registry(project, "rollback", "--task", "image") == 0
    assert aliases(client, project.name())["champion"] == "1"


def test_class_recall_floor_refuses_a_better_challenger(project: Project) -> None:
    project.candidate("baseline_cnn", 0.40)
    register(project)
    client = project.client()
    promote(client, "image", policy_of(project))
    weak = {"anger": 1.0, "happiness": 1.0, "neutral": 0.08, "surprise": 0.92}
    project.candidate("fusion_early", 0.75, recall=weak)
    register(project)

    result = promote(client, "image", policy_of(project))

    assert result.status == "refused"
    assert "class recall below the floor 0.1: neutral 0.080" in result.report
    assert "0.0800 (below floor)" in result.report
    assert aliases(client, project.name())["champion"] == "1"


def test_latency_budget_needs_a_latency_tag_within_budget(project: Project) -> None:
    project.candidate("baseline_cnn", 0.40, latency_ms=30.0)
    project.candidate("fusion_early", 0.60)  # no latency measured
    register(project)
    project.write_params(max_latency_ms=20.0)
    result = promote(project.client(), "image", policy_of(project))
    assert result.status == "refused"
    assert "latency 30.00 ms > budget 20.0 ms" in result.report
    assert "has no latency_ms tag" in result.report  # the best one, also refused
    project.write_params(max_latency_ms=50.0)
    result = promote(project.client(), "image", policy_of(project))
    assert result.status == "promoted" and result.decision.challenger.arch == "baseline_cnn"


def test_rollback_restores_previous_champion(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    project.candidate("baseline_cnn", 0.40)
    register(project)
    client, name = project.client(), project.name()
    promote(client, "image", policy_of(project))
    project.candidate("fusion_early", 0.60)
    register(project)
    promote(client, "image", policy_of(project))

    assert ferops_registry(project, "rollback", "--task", "image") == 0

    assert "v1 is champion again; v2 tagged rolled_back" in capsys.readouterr().out
    assert aliases(client, name) == {"candidate": "2", "champion": "1"}
    assert "rolled_back" in client.get_model_version(name, "2").tags
    assert "retired" not in client.get_model_version(name, "1").tags
    # The rolled-back version does not come straight back on the next promotion.
    assert promote(client, "image", policy_of(project)).status == "unchanged"
    # Nothing left to roll back to: an error, exit 2.
    assert ferops_registry(project, "rollback", "--task", "image") == 2
    assert "no previous-champion alias" in capsys.readouterr().err
    assert aliases(client, name)["champion"] == "1"


def test_dry_run_reports_but_changes_nothing(project: Project,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    project.candidate("baseline_cnn", 0.40)
    register(project)
    client, name = project.client(), project.name()
    before = aliases(client, name)
    tags_before = client.get_model_version(name, "1").tags

    assert ferops_registry(project, "promote", "--task", "image", "--dry-run") == 0

    assert "dry run, would be promoted" in capsys.readouterr().out
    assert aliases(client, name) == before == {"candidate": "1"}
    assert client.get_model_version(name, "1").tags == tags_before


def test_every_task_is_promoted_when_task_is_omitted(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    project.candidate("baseline_cnn", 0.40, task="image")
    project.candidate("c3d_ecstfl", 0.30, task="video")
    register(project)
    assert ferops_registry(project, "promote") == 0
    out = capsys.readouterr().out
    assert f"## {project.name('image')}: promoted" in out
    assert f"## {project.name('video')}: promoted" in out
    assert ferops_registry(project, "status") == 0
    status = capsys.readouterr().out
    assert "champion v1" in status and "promotion-lock" not in status
    # The real command, as a user runs it: the report on stdout, nothing on stderr (no
    # third-party warnings, no log noise).
    done = subprocess.run([sys.executable, "-m", "pipelines.cli", "registry", "status",
                           "--params", str(project.params)], cwd=REPO,
                          env={**os.environ, **project.env()}, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and "champion v1" in done.stdout
    assert done.stderr == "", done.stderr


def race(project: Project, loser: str, winner: str) -> tuple[int, str]:
    """A promotion of ``loser`` that decides, then waits on the lock while the lock holder
    makes ``winner`` champion. Folders register in name order: v1 baseline_cnn 0.40,
    v2 fusion_early 0.70, v3 partition_cnn 0.60; v1 is champion first.

    Returns:
        The loser's exit code and output.
    """
    for arch, uar in (("baseline_cnn", 0.40), ("partition_cnn", 0.60), ("fusion_early", 0.70)):
        project.candidate(arch, uar)
    register(project)
    client, name = project.client(), project.name()
    promote(client, "image", policy_of(project), version="1")
    with PromotionLock(client, name, ttl_s=60):
        process = spawn(project, "promote", "--task", "image", "--version", loser)
        for line in process.stderr:  # the process decided and now waits for the lock
            if "held by another promotion" in line:
                break
        client.set_registered_model_alias(name, "previous-champion", "1")
        client.set_registered_model_alias(name, "champion", winner)
    out, _ = process.communicate(timeout=120)
    return process.returncode, out


def test_losing_a_race_to_a_weaker_winner_exits_3_and_says_re_run(project: Project) -> None:
    code, out = race(project, loser="2", winner="3")
    assert code == 3  # its own challenger may still be better: re-run
    assert "lost the race: champion moved from v1 to v3" in out and "re-run" in out
    client, name = project.client(), project.name()
    assert aliases(client, name)["champion"] == "3"
    assert aliases(client, name)["previous-champion"] == "1"
    assert lock_name(name) not in {m.name for m in client.search_registered_models()}


def test_losing_a_race_to_a_better_winner_exits_0_and_names_it(project: Project) -> None:
    code, out = race(project, loser="3", winner="2")
    assert code == 0
    assert "lost the race: champion moved from v1 to v2" in out and "at least" in out
    assert aliases(project.client(), project.name())["champion"] == "2"


def test_a_lock_left_by_a_dead_process_is_shown_and_broken_at_once(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket
    import subprocess
    import sys
    import time

    project.candidate("baseline_cnn", 0.40)
    register(project)
    client, name = project.client(), project.name()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    owner = f"{socket.gethostname()}:{dead}:feedbeef"
    client.create_registered_model(lock_name(name), tags={"ferops.lock_owner": owner})
    assert ferops_registry(project, "status") == 0
    status = capsys.readouterr().out
    assert f"held by {owner}" in status and "its process is gone" in status
    started = time.monotonic()
    result = promote(client, "image", policy_of(project))  # TTL 120 s: no waiting for it
    assert result.status == "promoted" and time.monotonic() - started < 30
    assert lock_name(name) not in {m.name for m in client.search_registered_models()}


def test_a_stale_lock_is_broken(project: Project) -> None:
    project.candidate("baseline_cnn", 0.40)
    register(project)
    client, name = project.client(), project.name()
    client.create_registered_model(lock_name(name), tags={"ferops.lock_owner": "dead:1"})
    project.write_params(lock_ttl_s=0.5)
    result = promote(client, "image", policy_of(project))
    assert result.status == "promoted"
    assert lock_name(name) not in {m.name for m in client.search_registered_models()}


def test_two_concurrent_promotions_leave_consistent_aliases(project: Project) -> None:
    # Two challengers within min_delta of each other: whichever wins, the other must lose.
    for arch, uar in (("baseline_cnn", 0.40), ("partition_cnn", 0.600), ("fusion_early", 0.602)):
        project.candidate(arch, uar)
    register(project)
    client, name = project.client(), project.name()
    promote(client, "image", policy_of(project), version="1")

    processes = [spawn(project, "promote", "--task", "image", "--version", v) for v in "23"]
    outputs = [p.communicate(timeout=120) for p in processes]

    # Exactly one promotes. The other either decided while the winner held the lock and
    # lost the race (exit 0 when beaten by the better v2, fusion_early 0.602: nothing left to
    # do; exit 3 when beaten by the weaker v3, partition_cnn 0.600: re-run), or decided after
    # it and was judged against the new champion: within min_delta, refused (exit 3).
    report = {v: (p.returncode, out + err)
              for v, p, (out, err) in zip("23", processes, outputs, strict=True)}
    promoted = [v for v, (code, out) in report.items() if code == 0 and ": promoted" in out]
    assert len(promoted) == 1, report
    (loser,) = set(report) - set(promoted)
    code, out = report[loser]
    if "lost the race" in out:
        assert code == (0 if promoted == ["2"] else 3), report
    else:
        assert "refused" in out and code == 3, report
    final = aliases(client, name)
    assert final["champion"] == promoted[0] and final["previous-champion"] == "1"
    assert final["champion"] != final["previous-champion"]
    assert final["staging"] == final["champion"]
    for version in final.values():
        client.get_model_version(name, version)  # every alias names an existing version
