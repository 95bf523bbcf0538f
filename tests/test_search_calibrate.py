"""search --calibrate K: the trust meter before a search, stored in the journal and shown by show."""

from __future__ import annotations

import json

import pytest


def test_search_calibrate_first_stores_the_trust_meter_and_warns_below_the_threshold(run_cli, tmp_path, monkeypatch):
    import archsearch.calibrate

    common = ["--budget", "1", "--epochs", "1", "--data-fraction", "0.2", "--set", "space.layers=2",
              "--set", "final.enabled=false", "--quiet", "--calibrate", "3", "--calibrate-epochs", "2"]
    out = tmp_path / "c"
    code, _, err = run_cli("search", *common, "--out", str(out))
    assert code == 0, err
    data = json.loads(run_cli("show", str(out), "--json")[1])
    calibration = data["calibration"]
    assert len(calibration["pairs"]) == 3 and len(data["trials"]) == 1
    assert all(p["high"] > p["low"] for p in calibration["pairs"])  # 2 epochs on all data beat 1 on 20%
    assert calibration["passed"] and calibration["spearman"]["estimate"] >= 0.6  # seed 0: the same ranking
    shown = " ".join(run_cli("show", str(out))[1].split())  # rich wraps long lines
    assert "calibration: trust valid_acc @ 1 epoch, 20% data to rank like valid_acc @ 2 epochs" in shown
    # below the threshold: a warning on screen and in the journal, and the search still runs
    monkeypatch.setattr(archsearch.calibrate.CalibrationResult, "passed", property(lambda self: False))
    code, _, err = run_cli("search", *common, "--out", str(tmp_path / "w"))
    assert code == 0 and "warning: do not trust valid_acc @ 1 epoch" in err
    data = json.loads(run_cli("show", str(tmp_path / "w"), "--json")[1])
    assert data["calibration"]["passed"] is False and len(data["trials"]) == 1


@pytest.mark.parametrize("extra, match", [
    (["--calibrate", "2"], "--calibrate must be an integer >= 3"),
    (["--calibrate", "3", "--evaluator", "proxy"], "--calibrate trains architectures at two fidelities"),
    (["--calibrate", "3", "--epochs", "4", "--calibrate-epochs", "4"], "both are 4 epochs on all the data"),
])
def test_search_calibrate_bad_input_writes_nothing(run_cli, tmp_path, extra, match):
    code, _, err = run_cli("search", "--budget", "1", "--quiet", "--out", str(tmp_path / "x"), *extra)
    assert code == 2 and match in err and err.count("\n") == 1
    assert not (tmp_path / "x").exists()
