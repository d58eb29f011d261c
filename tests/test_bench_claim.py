"""benchmarks/bench_claim.py's report: mean ± spread over seeds and the paired (a) - (b) rows."""
import pytest

from conftest import load_script


@pytest.fixture(scope="module")
def bench():
    return load_script("benchmarks/bench_claim.py")


def _report(ciou, auc, pointing, distractor):
    return {"n": 10, "value": {"ciou_at_0.5": ciou, "auc": auc}, "pointing_game": pointing,
            "distractor_accuracy": distractor}


def _run(variant, seed, auc, pointing):
    split = _report(0.01, auc, pointing, 0.8)
    return {"variant": variant, "name": f"({variant})", "seed": seed, "seconds": 1.0,
            "best": {"ciou": 0.0, "auc": auc, "pointing": pointing, "epoch": 3},
            "test": split, "unheard": split}


def _cells(text, first, second=None):
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0] == first and (second is None or cells[1] == second):
            return cells
    raise AssertionError(f"no row {first!r} {second!r} in\n{text}")


def test_report_gives_mean_spread_and_paired_differences(bench):
    runs = [_run("a", 0, 0.20, 0.50), _run("a", 1, 0.10, 0.40),
            _run("b", 0, 0.15, 0.45), _run("b", 1, 0.12, 0.40), _run("d", 0, 0.05, 0.10)]
    baselines = {s: {"centre box": _report(0.0, 0.077, 0.25, None)} for s in ("test", "unheard")}
    text = bench.report(runs, baselines, {"test": 10, "unheard": 10}, "cmd")
    name_a = bench.VARIANTS["a"][0]
    # AUC of (a): mean 0.15, sample std 0.0707
    assert _cells(text, name_a)[1:5] == ["0,1", "0.010 ± 0.000", "0.150 ± 0.071", "0.450 ± 0.071"]
    assert _cells(text, bench.VARIANTS["d"][0])[1:4] == ["0", "0.010", "0.050"]
    assert _cells(text, "centre box")[-1] == "-"  # no distractor accuracy
    assert bench.VARIANTS["c"][0] not in text  # a variant that never ran has no row
    assert _cells(text, "test", "0")[2:5] == ["+0.000", "+0.050", "+0.050"]
    assert _cells(text, "test", "1")[2:5] == ["+0.000", "-0.020", "+0.000"]
    assert _cells(text, "test", "mean")[3:5] == ["+0.015 (1/2 > 0)", "+0.025 (1/2 > 0)"]


def test_report_without_pairs_has_no_difference_table(bench):
    text = bench.report([_run("a", 0, 0.2, 0.5)], {"test": {}, "unheard": {}}, {"test": 10, "unheard": 10}, "cmd")
    assert "(a) - (b)" not in text


@pytest.mark.parametrize("argv,flag", [(["--epochs", "0"], "--epochs"), (["--split-sizes", "0", "1", "1", "1"],
                                                                        "--split-sizes"),
                                       (["--out", "FILE"], "--out")])
def test_arguments_are_checked_before_the_benchmark_is_built(argv, flag, bench, tmp_path, monkeypatch, capsys):
    import avsdk.datasets

    def no_build(*args, **kwargs):
        raise AssertionError("the benchmark was built")

    monkeypatch.setattr(avsdk.datasets, "build_benchmark", no_build)
    (tmp_path / "file").write_text("x")
    argv = ["--out", str(tmp_path / "claim")] + [a.replace("FILE", str(tmp_path / "file")) for a in argv]
    assert bench.main(argv) == 2
    assert capsys.readouterr().err.startswith(f"error: {flag}: expected ")
    assert not (tmp_path / "claim").exists()
