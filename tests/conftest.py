"""Suite-wide settings: a compilation cache shared by the test processes and runs, the
XLA flag of the default tier, and which registered games get the full checks only
under ``-m slow``."""

import os
from pathlib import Path

import pytest

# Programs that several tests (and their subprocesses) compile alike are compiled
# once: JAX's persistent cache, in a directory shared by the xdist workers (the
# controller sets it; workers and subprocesses inherit it) and kept between runs
# under .pytest_cache (`make clean` or `pytest --cache-clear` empties it). A fresh
# clone compiles everything once (about 6.5 minutes for the default tier on two cores);
# a rerun reads back what did not change (about 3 minutes). The cache's keys hold
# the program, the XLA flags and the jax version, so a change recompiles.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(
    Path(__file__).resolve().parents[1] / ".pytest_cache" / "jax-compilation-cache"))
# Every program counts, not only those that take a second to compile (JAX's default).
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "-1")

import envs

#: XLA flag of the default tier: LLVM's optimisation of the CPU code is skipped. About
#: two thirds of the default tier's time is XLA compiling small programs once each, and
#: this flag cuts the suite from about 10 to about 6.5 minutes on two cores. XLA's own
#: (HLO) passes still run, and LLVM does not reorder float arithmetic at any level
#: without fast-math, so the tests check the same numbers. The end-to-end tier keeps the
#: optimised code that users run. Set ``XLA_FLAGS`` with your own
#: ``--xla_backend_optimization_level`` to override.
FAST_COMPILE_FLAG = "--xla_backend_optimization_level=0"

#: Games checked in the default suite stand for the others of their family, which
#: share their code and differ in layout or scenario; compiling each JaxMARL game
#: takes 5-15 s on two cores, so the others run with ``pytest -m slow``.
REPRESENTATIVES = {"overcooked", "jaxmarl-mpe-simple-spread", "jaxmarl-mpe-simple-tag"}
SLOW_ENVS = {
    name for name in envs.registered() if envs.spec(name).family == "jaxmarl"
} - REPRESENTATIVES
#: Registered configurations of a game checked in the default suite (same code, other
#: constructor options: intersection-jax with another velocity scaling).
SLOW_ENVS |= {"intersection-jax-speed"}


#: End-to-end tests: the CLI and tutorials run in-process or in subprocesses, runs
#: trained to a threshold, killed and resumed, sharded over forced devices, checked
#: in lockstep against the wrapped libraries. They run under ``-m integration``
#: (``make test-integration``), which keeps the
#: default suite to the unit tests, known answers and equivalences.
#: Each entry is a ``file::test`` prefix (every parametrisation of the test).
INTEGRATION = (
    "tests/test_docs.py::test_page_runs",
    "tests/mairl/test_runs.py::test_train_command_recovers_policy_and_reward",
    "tests/mairl/test_runs.py::test_eval_command_agrees_with_an_independent_computation",
    "tests/mairl/test_runs.py::test_killed_run_resumes_to_exactly_the_uninterrupted_numbers",
    "tests/mairl/test_runs.py::test_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint",
    "tests/mairl/test_runs.py::test_tensorboard_tracker_streams_the_curves",
    "tests/mairl/test_runs.py::test_wandb_tracker_offline",
    "tests/mairl/test_runs.py::test_load_run_acts_and_reads_back_what_the_run_wrote",
    "tests/mairl/test_runs.py::test_run_equals_the_whole_run_in_one_program",
    "tests/mairl/test_runs.py::test_resume_skips_a_half_written_checkpoint_and_refuses_changes",
    "tests/mairl/test_runs.py::test_metrics_json_records_each_measure_and_its_calibration",
    "tests/mairl/test_train.py::test_train_and_eval_commands",
    "tests/mairl/test_sharding.py::test_seeds_sharded_one_per_device_equal_the_unsharded_run",
    "tests/mairl/test_sharding.py::test_a_batch_split_over_devices_equals_the_unsharded_run",
    "tests/mairl/test_sharding.py::test_the_batch_sharded_gradient_step_equals_the_unsharded_one",
    "tests/mairl/test_sharding.py::test_a_grid_sharded_over_devices_equals_its_points_run_alone",
    "tests/mairl/test_sharding.py::test_sweep_command_writes_every_point_and_equals_the_point_run_alone",
    "tests/mairl/test_transfer.py::test_reward_transfer_runs_every_row_on_a_tiny_budget",
    "tests/mairl/test_host_training.py::test_train_command_on_a_host_env",
    "tests/mairl/test_host_training.py::test_online_training_through_the_host_loop_equals_the_jitted_loop",
    "tests/mairl/test_report.py::test_train_learners_runs_each_learner",
    "tests/mairl/test_cli.py::test_bench_envs_quick",
    "tests/mairl/test_ppo.py::test_ppo_learns_the_paying_action",
    "tests/mairl/test_mixers.py::test_offline_fiq_learns_the_cooperative_experts_policy",
    "tests/mairl/test_adversarial.py::test_ma_airl_learns_in_make_train",
    "tests/mairl/test_adversarial.py::test_train_command_learns_on_a_random_game",
    "tests/mairl/test_adversarial.py::test_host_loop_trains_on_a_host_side_game",
    "tests/mairl/test_bench.py::test_xla_cost_analysis_agrees_with_the_hand_count",
    "tests/mairl/test_bench_all.py::test_bench_all_quick_writes_every_section",
    "tests/envs/test_brax_games.py::test_scan_terminated_truncated_and_autoreset",
    "tests/envs/test_brax_games.py::test_parallel_api",
    "tests/envs/test_jaxmarl.py::test_simple_spread_matches_mpe2_in_distribution",
    "tests/envs/test_intersection_jax.py::test_lockstep_with_highway_env",
    "tests/mairl/test_bad_input.py::test_the_command_line_refuses_bad_input_in_one_line",
    "tests/mairl/test_bad_input.py::test_the_command_line_exit_status_and_stderr",
    "tests/mairl/test_reproduce.py::test_rows_are_runs_and_reruns_pick_them_up",
    "tests/mairl/test_continuous.py::test_bc_trains_through_the_cli_and_the_run_pipeline",
    "tests/mairl/test_continuous.py::test_heldout_calibration_scores_the_runs_own_heldout_transitions",
    "tests/mairl/test_multihost.py::test_two_processes_give_the_numbers_of_one_process_with_as_many_devices",
    "tests/mairl/test_multihost.py::test_only_process_zero_writes_the_run_directory",
    "tests/mairl/test_multihost.py::test_a_sweep_over_two_processes_gives_the_numbers_of_one_process",
)


def _selects_integration(markexpr: str) -> bool:
    """Whether ``-m markexpr`` selects a test marked ``integration`` (and nothing else)."""
    if not markexpr:
        return True
    from _pytest.mark.expression import Expression

    return Expression.compile(markexpr).evaluate(lambda mark: mark == "integration")


def pytest_configure(config):
    # Runs before any test touches JAX (importing the library does not start its
    # backend, which reads XLA_FLAGS once); xdist workers and subprocesses inherit it.
    flags = os.environ.get("XLA_FLAGS", "")
    if ("xla_backend_optimization_level" not in flags
            and not _selects_integration(config.getoption("markexpr"))):
        os.environ["XLA_FLAGS"] = f"{flags} {FAST_COMPILE_FLAG}".strip()


def _integration_entry(nodeid: str) -> str | None:
    for entry in INTEGRATION:
        if nodeid == entry or nodeid.startswith(entry + "["):
            return entry
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    # A listed test that no longer exists (renamed, deleted) is an error, not a silent
    # move into the default suite: checked for every file that was collected.
    files = {item.nodeid.split("::")[0] for item in items}
    matched = {_integration_entry(item.nodeid) for item in items}
    stale = [e for e in INTEGRATION if e.split("::")[0] in files and e not in matched]
    if stale:
        raise pytest.UsageError(f"tests/conftest.py INTEGRATION lists unknown tests: {stale}")
    for item in items:
        if _integration_entry(item.nodeid) is not None:
            item.add_marker(pytest.mark.integration)
        callspec = getattr(item, "callspec", None)
        if callspec is None:
            continue
        if any(isinstance(v, str) and v in SLOW_ENVS for v in callspec.params.values()):
            item.add_marker(pytest.mark.slow)
