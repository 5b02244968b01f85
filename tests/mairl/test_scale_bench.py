"""``mairl bench scale`` (mairl.bench): seeds, devices and grid points, on tiny sizes."""

import numpy as np
import pytest

from mairl.bench import (
    LoopTiming,
    ScaleConfig,
    ScaleReport,
    _problem,
    _too_slow,
    bench_scale,
    format_scale,
    grid_scaling,
    machine_facts,
    seed_scaling,
)

TINY = dict(hidden=(8,), batch_size=4, seeds_per_device=1, target_s=0.01, repeats=1,
            demo_episodes=2)


@pytest.mark.slow
def test_bench_scale_measures_every_count_and_names_the_machine():
    config = ScaleConfig(seeds=(1, 3), devices=(1,), grid=(2,), **TINY)
    report = bench_scale(config)
    assert [t.runs for t in report.seeds] == [1, 3]
    assert [(t.runs, t.devices) for t in report.devices] == [(1, 1)]
    assert [t.runs for t in report.grid] == [2]
    assert report.stopped_seeds is None and report.stopped_grid is None
    for t in report.seeds + report.devices + report.grid:
        assert t.s_per_update > 0 and t.num_updates >= 2 and np.isfinite(t.rate)
    assert report.flops_per_update > 0 and report.matmul_peak > 0
    assert {"cpu", "cores", "jax", "backend", "device_kind"} <= set(report.machine)
    text = "\n".join(format_scale(report))
    assert "machine: " in text and report.machine["jax"] in text
    assert text.count("seed-updates/s") == 3 and text.count("point-updates/s") == 1
    assert report.to_dict()["seeds"][1]["rate"] == pytest.approx(report.seeds[1].rate)


def test_counts_stop_before_an_update_would_take_too_long():
    last = LoopTiming(runs=4, devices=1, s_per_update=0.5, num_updates=2, compile_s=1.0)
    # 8 seeds: 0.5 s * 8 / 4 = 1 s per update, within 1.5 s; 16 would take 2 s
    assert _too_slow(last, 8, max_update_s=1.5) is None
    why = _too_slow(last, 16, max_update_s=1.5)
    assert why.startswith("stopped before 16: 4 took 0.5 s per update") and "2 s > " in why
    assert _too_slow(None, 64, max_update_s=1e-9) is None
    config = ScaleConfig(seeds=(1, 2), grid=(1, 2), max_update_s=1e-9, **TINY)
    problem = _problem(config)
    seeds, stopped = seed_scaling(config, *problem)
    assert [t.runs for t in seeds] == [1] and stopped.startswith("stopped before 2: 1 took")
    points, stopped_grid = grid_scaling(config, *problem)
    assert [t.runs for t in points] == [1] and stopped_grid.startswith("stopped before 2: 1 took")
    for t in seeds + points:
        assert t.s_per_update > 0 and t.num_updates >= 2 and np.isfinite(t.rate)
    # what `mairl bench scale` prints of such a report
    report = ScaleReport(config, machine_facts(), matmul_peak=1e11, flops_per_update=1e9,
                         seeds=seeds, stopped_seeds=stopped, grid=points,
                         stopped_grid=stopped_grid)
    text = "\n".join(format_scale(report))
    assert f"jax {report.machine['jax']}" in text and report.machine["cpu"] in text
    assert text.count("seed-updates/s") == 1 and text.count("point-updates/s") == 1
    assert text.count("stopped before 2") == 2 and "(none measured)" in text  # no devices
    assert report.to_dict()["grid"][0]["rate"] == pytest.approx(points[0].rate)


def test_scale_config_names_the_bad_field():
    with pytest.raises(ValueError, match=r"ScaleConfig.seeds: expected increasing counts"):
        ScaleConfig(seeds=(4, 2))
    with pytest.raises(ValueError, match=r"ScaleConfig.mode: expected one of"):
        ScaleConfig(mode="offline")


@pytest.mark.slow
def test_forced_host_devices_run_in_a_subprocess():
    report = bench_scale(ScaleConfig(seeds=(1,), devices=(1, 2), grid=(1,), **TINY))
    assert [(t.runs, t.devices) for t in report.devices] == [(1, 1), (2, 2)]
    assert "forced in a subprocess" in report.devices_note
