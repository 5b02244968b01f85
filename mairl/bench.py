"""Throughput of training many learners at once: seeds, devices and grid points.

A run trains its seeds side by side in one compiled program (``jax.vmap`` over
the run axis), splits that axis over the devices of a mesh
(:mod:`mairl.sharding`), and a sweep adds the points of a hyperparameter grid
to the same axis (:mod:`mairl.sweep`). :func:`bench_scale` measures what each
costs, on MAMQL updates on Gems (random demonstrations: their content does not
change the cost of an update):

- **seeds**: seed-updates per second of the update loop vmapped over ``n``
  seeds, ``n = 1, 2, 4, ..., 64``. On one device the seeds are a batch axis
  of every matrix product, so the rate grows with ``n`` only as far as one
  seed leaves the device's matrix-multiply peak unused: with ``F`` FLOPs per
  update (XLA's count) and a peak of ``P`` FLOP/s, ``n`` seeds reach at most
  ``P / F`` seed-updates per second. The counts stop early, before a count
  whose update would take longer than ``max_update_s`` (projected linearly
  from the last count measured), and the report says where and why.
- **devices**: the same loop for ``seeds_per_device * d`` seeds over ``d``
  devices (``jax.shard_map`` over the ``seed`` axis of a mesh, nothing
  communicated). On a CPU the devices are forced host devices
  (``XLA_FLAGS=--xla_force_host_platform_device_count=d``) in a subprocess
  each: they share the same cores, so the figure checks that sharding costs
  little, not that devices help.
- **grid points**: point-updates per second of a grid of learning rates
  trained in one program (each point a traced learning rate, as
  :func:`mairl.sweep.sweep` does), ``1, 4, 16, 64`` points of one seed each.

Every timed figure is the best of ``repeats`` loops of ``lax.fori_loop``
updates, compile and the first call excluded, and every report names the
machine (:func:`machine_facts`) and the float32 matmul peak sampled in the
same process.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

# -- pieces shared with ``mairl bench mamql`` -----------------------------------------------


def timed_calls(fn, *args, repeats: int) -> list[float]:
    """Wall times of ``repeats`` calls of ``fn(*args)``, each waited for."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return times


def make_matmul_peak(n: int = 2048, repeats: int = 3):
    """``sample()``: the float32 FLOP/s of ``a @ b`` for two ``(n, n)`` matrices
    (``2 n^3`` FLOPs), best of ``repeats`` calls. Taken between the timings it is
    compared with, so that both see the same load on the machine."""
    key_a, key_b = jax.random.split(jax.random.key(0))
    a = jax.random.normal(key_a, (n, n), jnp.float32)
    b = jax.random.normal(key_b, (n, n), jnp.float32)
    matmul = jax.jit(jnp.matmul)
    matmul(a, b).block_until_ready()

    def sample() -> float:
        return 2 * n**3 / min(timed_calls(matmul, a, b, repeats=repeats))

    return sample


def cost_flops(compiled) -> float:
    """FLOPs of a compiled program by XLA's cost analysis; the body of a loop whose
    trip count is not known at compile time counts once."""
    cost = compiled.cost_analysis()
    if isinstance(cost, list | tuple):  # older JAX: one dict per computation
        cost = cost[0]
    return float(cost["flops"])


def random_demos(env, num_episodes: int, key: jax.Array):
    """Demonstrations of uniformly random actions, as ``mairl.train.TrainData``
    (their content does not change the cost of an update)."""
    from mairl.data import collect
    from mairl.train import train_data

    num_agents, num_actions = env.num_agents, env.num_actions

    def policy_fn(key, obs):
        return jax.random.randint(key, (num_agents,), 0, num_actions)

    return train_data(collect(key, env, policy_fn, num_episodes, num_envs=num_episodes))


def make_update_loop(algo):
    """``one_update(state, data, key)`` (one sampled batch, one update) and
    ``loop(state, data, key, num_updates)`` running it ``num_updates`` times in one
    ``lax.fori_loop``, so that dispatch costs nothing and one compiled program
    serves every count (the training loop of ``mairl.train.make_train`` without its
    evaluations). ``data`` (``mairl.train.TrainData``) is an argument, never a
    constant the compiler could fold."""
    from mairl.train import demo_batches

    source = demo_batches(algo.needs)

    def one_update(state, data, key):
        key_batch, key_update = jax.random.split(key)
        return algo.update(state, source(key_batch, data), key_update)[0]

    def loop(state, data, key, num_updates):
        body = lambda i, state: one_update(state, data, jax.random.fold_in(key, i))  # noqa: E731
        return jax.lax.fori_loop(0, num_updates, body, state)

    return one_update, loop


# -- the machine -----------------------------------------------------------------------------


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else ``platform.processor()``."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_facts() -> dict[str, Any]:
    """What a throughput figure depends on: CPU model and cores, JAX version, the
    backend and its devices."""
    devices = jax.devices()
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "jax": jax.__version__,
            "backend": jax.default_backend(), "device_kind": devices[0].device_kind,
            "devices": len(devices)}


# -- configuration and results ---------------------------------------------------------------


@dataclass(frozen=True)
class ScaleConfig:
    """What :func:`bench_scale` measures.

    Attributes:
        mode: MAMQL mode (``value_expert``: offline, the update alone;
            ``online`` adds a step of ``num_envs`` environments and a replay).
        critic: critic preset (``mairl.networks``), on each agent's egocentric view.
        hidden: hidden widths of the ``mlp`` critic.
        batch_size: expert transitions per update.
        buffer_size: replay capacity per seed (``online``), in transitions.
        seeds: seed counts on one device, in increasing order.
        devices: device counts; each trains ``seeds_per_device`` seeds per device.
        seeds_per_device: seeds on every device in the device measurement.
        grid: grid sizes (points of one seed each), in increasing order.
        target_s: seconds each timed loop aims at.
        repeats: timed loops per figure (the best is reported).
        max_update_s: stop the seeds (and grid sizes) before a count whose
            update would take longer than this, projected linearly.
        demo_episodes: episodes of random Gems demonstrations to sample from.
    """

    mode: str = "value_expert"
    critic: str = "mlp"
    hidden: tuple[int, ...] = (256, 256)
    batch_size: int = 256
    buffer_size: int = 10_000
    seeds: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
    devices: tuple[int, ...] = (1, 2, 4)
    seeds_per_device: int = 4
    grid: tuple[int, ...] = (1, 4, 16, 64)
    target_s: float = 1.0
    repeats: int = 3
    max_update_s: float = 2.0
    demo_episodes: int = 16

    def __post_init__(self):
        from mairl.algos.common import check_fields

        def increasing(xs):
            return len(xs) > 0 and all(x >= 1 for x in xs) and list(xs) == sorted(set(xs))

        check_fields(self, [
            ("mode", self.mode in ("online", "value_expert", "v0"),
             "one of 'online', 'value_expert', 'v0'"),
            ("batch_size", self.batch_size >= 1, ">= 1"),
            ("buffer_size", self.buffer_size >= 1, ">= 1"),
            ("seeds", increasing(self.seeds), "increasing counts >= 1"),
            ("devices", increasing(self.devices), "increasing counts >= 1"),
            ("seeds_per_device", self.seeds_per_device >= 1, ">= 1"),
            ("grid", increasing(self.grid), "increasing sizes >= 1"),
            ("target_s", self.target_s > 0, "> 0"),
            ("repeats", self.repeats >= 1, ">= 1"),
            ("max_update_s", self.max_update_s > 0, "> 0"),
            ("demo_episodes", self.demo_episodes >= 1, ">= 1"),
        ])


@dataclass(frozen=True)
class LoopTiming:
    """One measured count: ``runs`` learners (seeds or grid points) in one program.

    Attributes:
        runs: learners trained at once.
        devices: devices the runs are split over.
        s_per_update: best seconds per update of all ``runs`` together.
        num_updates: updates per timed loop.
        compile_s: compile time of the program.
    """

    runs: int
    devices: int
    s_per_update: float
    num_updates: int
    compile_s: float

    @property
    def rate(self) -> float:
        """Learner-updates per second (seed-updates or point-updates)."""
        return self.runs / self.s_per_update


@dataclass
class ScaleReport:
    """The figures of :func:`bench_scale`; ``stopped_*`` say why a sequence of counts
    ended before its last (``None``: it did not)."""

    config: ScaleConfig
    machine: dict[str, Any]
    matmul_peak: float
    flops_per_update: float
    seeds: list[LoopTiming] = field(default_factory=list)
    stopped_seeds: str | None = None
    devices: list[LoopTiming] = field(default_factory=list)
    devices_note: str = ""
    grid: list[LoopTiming] = field(default_factory=list)
    stopped_grid: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-ready), each timing with its ``rate``."""
        def rows(timings):
            return [{**dataclasses.asdict(t), "rate": t.rate} for t in timings]

        return {"config": dataclasses.asdict(self.config), "machine": self.machine,
                "matmul_peak": self.matmul_peak, "flops_per_update": self.flops_per_update,
                "seeds": rows(self.seeds), "stopped_seeds": self.stopped_seeds,
                "devices": rows(self.devices), "devices_note": self.devices_note,
                "grid": rows(self.grid), "stopped_grid": self.stopped_grid}


# -- measurements ----------------------------------------------------------------------------


def _problem(config: ScaleConfig):
    """``(env, run_config, data)``: Gems, the MAMQL run on each agent's view, demos."""
    from mairl import runs
    from mairl.algos import MAMQLConfig

    env = runs.make_env("gems")
    algo = MAMQLConfig(mode=config.mode, critic=config.critic, hidden=tuple(config.hidden),
                       batch_size=config.batch_size, buffer_size=config.buffer_size)
    run_config = runs.RunConfig(algo=algo, env=runs.EnvConfig("gems"))
    data = random_demos(env, config.demo_episodes, jax.random.key(0))
    return env, run_config, data


def time_loop(fn: Callable, state: Any, args: Sequence[Any], *, runs: int, devices: int = 1,
              target_s: float, repeats: int) -> tuple[LoopTiming, Any]:
    """Time ``fn(state, *args, num_updates) -> state`` (jitted, state donated): compile,
    one update (not timed), then ``repeats`` loops of about ``target_s`` seconds each
    going on from the last state. Returns the timing and the final state."""
    t0 = time.perf_counter()
    compiled = jax.jit(fn, donate_argnums=0).lower(state, *args, 1).compile()
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    state = jax.block_until_ready(compiled(state, *args, 1))
    first_s = time.perf_counter() - t0
    num_updates = max(2, round(target_s / max(first_s, 1e-6)))
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        state = jax.block_until_ready(compiled(state, *args, num_updates))
        best = min(best, (time.perf_counter() - t0) / num_updates)
    return LoopTiming(runs, devices, best, num_updates, compile_s), state


def _too_slow(last: LoopTiming | None, count: int, max_update_s: float) -> str | None:
    """Why ``count`` runs are not measured after ``last`` (``None``: they are)."""
    if last is None:
        return None
    projected = last.s_per_update * count / last.runs
    if projected <= max_update_s:
        return None
    return (f"stopped before {count}: {last.runs} took {last.s_per_update:.3g} s per update, "
            f"so {count} would take about {projected:.3g} s > max_update_s = {max_update_s:g}")


def seed_scaling(config: ScaleConfig, env, run_config, data) -> tuple[list[LoopTiming],
                                                                      str | None]:
    """Seed-updates per second for every count of ``config.seeds`` on one device."""
    from mairl import runs
    from mairl.train import demo_batches

    algo = runs.build_algo(run_config, env)
    _, loop = make_update_loop(algo)
    example = demo_batches(algo.needs)(jax.random.key(1), data)
    init = jax.jit(jax.vmap(algo.init, in_axes=(0, None)))
    looped = jax.vmap(loop, in_axes=(0, None, 0, None))
    timings: list[LoopTiming] = []
    for n in config.seeds:
        why = _too_slow(timings[-1] if timings else None, n, config.max_update_s)
        if why:
            return timings, why
        keys = jax.random.split(jax.random.key(2), n)
        state = init(keys, example)
        timing, state = time_loop(looped, state, (data, keys), runs=n,
                                  target_s=config.target_s, repeats=config.repeats)
        del state
        timings.append(timing)
    return timings, None


def grid_scaling(config: ScaleConfig, env, run_config, data) -> tuple[list[LoopTiming],
                                                                      str | None]:
    """Point-updates per second of learning-rate grids of ``config.grid`` sizes, one
    seed per point, every point's step size a traced scalar (``mairl.sweep``)."""
    from mairl import sweep
    from mairl.train import demo_batches

    algo_of = sweep.traced_algo(run_config, env)
    base = algo_of({})
    example = demo_batches(base.needs)(jax.random.key(1), data)
    init = jax.jit(jax.vmap(base.init, in_axes=(0, None)))

    def point_loop(state, data, key, lr, num_updates):
        return make_update_loop(algo_of({"learning_rate": lr}))[1](state, data, key,
                                                                   num_updates)

    looped = jax.vmap(point_loop, in_axes=(0, None, 0, 0, None))
    lr0 = run_config.algo.learning_rate
    timings: list[LoopTiming] = []
    for n in config.grid:
        why = _too_slow(timings[-1] if timings else None, n, config.max_update_s)
        if why:
            return timings, why
        lrs = jnp.asarray(lr0 * np.logspace(-0.5, 0.5, n) if n > 1 else [lr0], jnp.float32)
        keys = jax.random.split(jax.random.key(3), n)
        state = init(keys, example)
        timing, state = time_loop(looped, state, (data, keys, lrs), runs=n,
                                  target_s=config.target_s, repeats=config.repeats)
        del state
        timings.append(timing)
    return timings, None


def sharded_timing(config: ScaleConfig, devices: int, problem: tuple | None = None
                   ) -> LoopTiming:
    """``seeds_per_device * devices`` seeds split over the first ``devices`` devices of
    this process (a ``(seed, batch)`` mesh, ``mairl.sharding.seed_map``); ``problem``:
    ``(env, run_config, data)`` when already built."""
    from mairl import runs, sharding
    from mairl.train import demo_batches

    env, run_config, data = problem or _problem(config)
    algo = runs.build_algo(run_config, env)
    _, loop = make_update_loop(algo)
    mesh = sharding.make_mesh(devices)
    n = config.seeds_per_device * devices
    example = demo_batches(algo.needs)(jax.random.key(1), data)
    keys = jax.random.split(jax.random.key(2), n)
    state = jax.jit(jax.vmap(algo.init, in_axes=(0, None)))(keys, example)
    state = sharding.put(state, mesh, True)
    keys = sharding.put(keys, mesh, True)
    data = sharding.put(data, mesh, False)
    looped = sharding.seed_map(loop, mesh, (0, None, 0, None))
    timing, _ = time_loop(looped, state, (data, keys), runs=n, devices=devices,
                          target_s=config.target_s, repeats=config.repeats)
    return timing


def device_scaling(config: ScaleConfig, problem: tuple | None = None
                   ) -> tuple[list[LoopTiming], str]:
    """:func:`sharded_timing` for every count of ``config.devices``: in this process
    on the devices there are; on a CPU, counts above them in a subprocess each with
    that many forced host devices; elsewhere such counts are skipped and said so."""
    timings = []
    available = len(jax.devices())
    if jax.default_backend() == "cpu":
        for d in config.devices:
            timings.append(sharded_timing(config, d, problem) if d <= available
                           else _forced_devices_timing(config, d))
        return timings, (f"{jax.devices()[0].device_kind} host devices on {os.cpu_count()} "
                         f"cores, counts above {available} forced in a subprocess each: they "
                         "share the cores, so the rate checks the cost of sharding, not a "
                         "speed-up")
    for d in config.devices:
        if d <= available:
            timings.append(sharded_timing(config, d, problem))
    skipped = [d for d in config.devices if d > available]
    note = f"{available} {jax.devices()[0].device_kind} devices"
    return timings, note + (f"; counts {skipped} skipped" if skipped else "")


def _forced_devices_timing(config: ScaleConfig, devices: int) -> LoopTiming:
    env = dict(os.environ)
    flags = [f for f in env.get("XLA_FLAGS", "").split()
             if not f.startswith("--xla_force_host_platform_device_count")]
    env["XLA_FLAGS"] = " ".join([*flags, f"--xla_force_host_platform_device_count={devices}"])
    env["JAX_PLATFORMS"] = "cpu"
    code = "import sys; from mairl.bench import _child; _child(sys.argv[1], int(sys.argv[2]))"
    spec = json.dumps(dataclasses.asdict(config))
    done = subprocess.run([sys.executable, "-c", code, spec, str(devices)], env=env,
                          capture_output=True, text=True, check=False)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"bench scale: the subprocess with {devices} forced host devices "
                           f"failed (exit {done.returncode}): {done.stderr[-2000:]}")
    return LoopTiming(**json.loads(lines[-1]))


def _child(spec: str, devices: int) -> None:
    """Subprocess entry of :func:`device_scaling`: print one timing as JSON."""
    raw = json.loads(spec)
    config = ScaleConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})
    print(json.dumps(dataclasses.asdict(sharded_timing(config, devices))), flush=True)


def bench_scale(config: ScaleConfig = ScaleConfig(),
                progress: Callable[[str], None] | None = None) -> ScaleReport:
    """Seed-updates per second against seeds and devices, and grid point-updates per
    second, on this machine (module docstring). ``progress(message)`` hears each
    stage as it starts."""
    say = progress or (lambda message: None)
    from mairl import runs
    from mairl.train import demo_batches

    env, run_config, data = _problem(config)
    peak = make_matmul_peak()
    say("flops of one update")
    algo = runs.build_algo(run_config, env)
    one_update, _ = make_update_loop(algo)
    example = demo_batches(algo.needs)(jax.random.key(1), data)
    state = jax.jit(algo.init)(jax.random.key(2), example)
    flops = cost_flops(jax.jit(one_update).lower(state, data, jax.random.key(3)).compile())
    del state
    report = ScaleReport(config=config, machine=machine_facts(), matmul_peak=peak(),
                         flops_per_update=flops)
    say("seeds")
    report.seeds, report.stopped_seeds = seed_scaling(config, env, run_config, data)
    say("devices")
    report.devices, report.devices_note = device_scaling(config, (env, run_config, data))
    say("grid points")
    report.grid, report.stopped_grid = grid_scaling(config, env, run_config, data)
    report.matmul_peak = max(report.matmul_peak, peak())
    return report


def format_scale(report: ScaleReport) -> list[str]:
    """The report as printed lines: the machine, then one table per measurement with
    each rate, its ratio to one learner and its fraction of the matmul peak."""
    m, c = report.machine, report.config
    lines = [f"machine: {m['cpu']}, {m['cores']} cores, jax {m['jax']} on {m['backend']} "
             f"({m['devices']} x {m['device_kind']})",
             f"float32 matmul peak: {report.matmul_peak / 1e9:.1f} GFLOP/s; one update "
             f"(mamql {c.mode}, critic {c.critic}, batch {c.batch_size}, 2 agents): "
             f"{report.flops_per_update / 1e9:.3f} GFLOP by XLA's count"]

    def table(title, unit, timings, stopped):
        lines.append(title)
        if not timings:
            lines.append("  (none measured)")
        for t in timings:
            share = t.rate * report.flops_per_update / report.matmul_peak
            where = f" on {t.devices} device{'s' if t.devices > 1 else ''}"
            lines.append(f"  {t.runs:>3} {unit}{'s' if t.runs > 1 else ' '}{where}: "
                         f"{t.rate:10,.1f} {unit}-updates/s ({t.rate / timings[0].rate:5.2f}x "
                         f"the first row), {share:6.1%} of the matmul peak, "
                         f"{t.num_updates} updates per loop, compile {t.compile_s:.1f} s")
        if stopped:
            lines.append(f"  {stopped}")

    table("seeds, vmapped on one device:", "seed", report.seeds, report.stopped_seeds)
    table(f"devices, {c.seeds_per_device} seeds per device ({report.devices_note}):", "seed",
          report.devices, None)
    table("grid of learning rates in one program, one seed per point:", "point", report.grid,
          report.stopped_grid)
    if report.seeds:
        ceiling = report.matmul_peak / report.flops_per_update
        lines.append(f"ceiling: the matmul peak over one update's FLOPs = {ceiling:,.0f} "
                     f"updates per second ({ceiling / report.seeds[0].rate:.1f}x one seed)")
    return lines
