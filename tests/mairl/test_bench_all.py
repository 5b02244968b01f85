"""``mairl bench all`` (``mairl.bench.bench_all``): one report of every benchmark.

The plain-Python Gems it times against the JAX one is checked equal to it on
random rollouts in ``tests/envs/test_gems.py`` (``test_rollouts_match_port``).
"""

import json
import math

import pytest

from mairl.bench import (
    SECTIONS,
    AllConfig,
    AllReport,
    Section,
    bench_all,
    format_markdown,
    machine_facts,
    python_gems_steps_per_second,
    write_report,
)
from mairl.cli import main


def check_report(report: dict) -> None:
    """Every section has finite positive figures or says why a part is missing, and
    every ratio is the quotient of its two figures."""
    figures = {f["key"]: f["value"] for s in report["sections"] for f in s["figures"]}
    for s in report["sections"]:
        assert s["figures"] or s["skipped"], s["name"]
        for f in s["figures"]:
            assert math.isfinite(f["value"]) and f["value"] > 0, f
            assert f["key"].startswith(s["name"] + ".")
        for r in s["ratios"]:
            assert r["value"] == pytest.approx(figures[r["numerator"]] / figures[r["denominator"]],
                                               rel=1e-12), r
    assert len(figures) == sum(len(s["figures"]) for s in report["sections"])  # unique keys


def test_gems_section_measures_jax_and_plain_python_side_by_side(tmp_path):
    config = AllConfig.quick(sections=("gems_env",), gems_num_envs=(1, 8))
    report = bench_all(config, command="mairl bench all --quick")
    assert [s.name for s in report.sections] == ["gems_env"]
    data = report.to_dict()
    check_report(data)
    section = report.sections[0]
    keys = [f.key for f in section.figures]
    assert keys == ["gems_env.python", "gems_env.jax_1", "gems_env.jax_8"]
    assert [(r.numerator, r.denominator) for r in section.ratios] == [
        ("gems_env.jax_1", "gems_env.python"), ("gems_env.jax_8", "gems_env.python")]
    assert report.matmul_peak > 0 and report.seconds > 0
    write_report(report, tmp_path / "b.md", tmp_path / "b.json")
    text = (tmp_path / "b.md").read_text()
    m = report.machine
    for fact in (m["cpu"], f"| cores | {m['cores']} |", m["jax"], m["device_kind"],
                 "`mairl bench all --quick`", report.date, "JAX (8 envs) / plain Python"):
        assert fact in text, fact
    assert json.loads((tmp_path / "b.json").read_text())["sections"][0]["name"] == "gems_env"


def test_plain_python_gems_rate_is_positive():
    assert python_gems_steps_per_second(0.05) > 100


def test_a_missing_library_is_a_stated_skip(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("mpe2", "highway_env")
                        else real(name, *a))
    report = bench_all(AllConfig.quick(sections=("adapters",)))
    section = report.sections[0]
    assert section.figures == [] and section.ratios == []
    assert len(section.skipped) == 2
    assert "mpe2" in section.skipped[0] and "highway-env" in section.skipped[1]
    check_report(report.to_dict())
    text = format_markdown(report)
    assert "- mpe2 (PettingZoo's MPE) is not installed" in text


def test_ratios_are_quotients_and_the_page_shows_them():
    section = Section("demo", "Demo", "what it measures")
    a = section.add("a", "fast", 300.0, "steps/s")
    b = section.add("b", "slow", 40.0, "steps/s")
    r = section.ratio("fast / slow", a, b)
    assert r.value == 7.5 and (r.numerator, r.denominator) == ("demo.a", "demo.b")
    section.skipped.append("c: not reached within the cap")
    report = AllReport(AllConfig.quick(), "cmd", "2026-01-01 00:00 UTC", machine_facts(), 1e11,
                       [section], seconds=60.0)
    text = format_markdown(report)
    assert "| fast / slow | 7.5 |" in text and "- c: not reached within the cap" in text
    assert "| fast | 300 steps/s |" in text and "`cmd` on 2026-01-01 00:00 UTC" in text
    assert "| float32 matmul peak (best sampled) | 100.0 GFLOP/s |" in text


def test_config_names_the_bad_field():
    with pytest.raises(ValueError, match=r"AllConfig.sections: expected a non-empty subset"):
        AllConfig(sections=("gems",))
    with pytest.raises(ValueError, match=r"AllConfig.run_eval_every: expected a divisor"):
        AllConfig(run_updates=100, run_eval_every=30)
    with pytest.raises(ValueError, match=r"AllConfig.update_modes"):
        AllConfig(update_modes=("offline",))
    with pytest.raises(ValueError, match=r"AllConfig.python_s: expected > 0"):
        AllConfig.quick(python_s=0.0)


def test_out_and_json_belong_to_bench_all():
    with pytest.raises(SystemExit, match="--out and --json belong to 'mairl bench all'"):
        main(["bench", "envs", "--out", "x.md"])


def test_bench_all_quick_writes_every_section(tmp_path, capsys):
    out, js = tmp_path / "bench.md", tmp_path / "bench.json"
    main(["bench", "all", "--quick", "--out", str(out), "--json", str(js)])
    assert f"wrote {out} and {js}" in capsys.readouterr().out
    report = json.loads(js.read_text())
    assert [s["name"] for s in report["sections"]] == list(SECTIONS)
    check_report(report)
    by_name = {s["name"]: s for s in report["sections"]}
    mamql = {f["key"] for f in by_name["mamql_update"]["figures"]}
    for case in ("paper_value_expert", "default_value_expert"):
        assert {f"mamql_update.{case}_{k}" for k in ("s", "flops", "flops_per_s", "peak")} <= mamql
    assert any(k.startswith("scaling.seeds_") for k in
               (f["key"] for f in by_name["scaling"]["figures"]))
    ttr = by_name["time_to_return"]
    reached = any(f["key"] == "time_to_return.seconds" for f in ttr["figures"])
    assert reached or any("not reached within the cap" in why for why in ttr["skipped"])
    text = out.read_text()
    for s in report["sections"]:
        assert f"## {s['title']}" in text
    assert report["machine"]["cpu"] in text and report["command"] in text
