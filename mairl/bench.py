"""The project's benchmarks: environments, updates, seeds, devices, grids, adapters.

:func:`bench_all` (``mairl bench all``, ``make bench``) runs every benchmark in
one process and writes one report (:func:`format_markdown`,
``docs/benchmarks.md``) that names the command, the date and the machine
(:func:`machine_facts`). Each figure stands beside the one it is compared with,
measured in the same run, and each ratio is the quotient of two figures of that
run (:class:`Ratio`):

- **Gems**: environment steps per second of the JAX Gems (``jit`` of a
  ``lax.scan`` of ``vmap``-ed steps) over those of the plain-Python
  implementation of the same rules (:mod:`envs.gems_reference`), both with map
  observations, auto-reset and uniformly random actions.
- **MAMQL update**: the achieved rate ``F / t`` (``F`` FLOPs of one update by
  XLA's cost analysis, ``t`` its best time) over the float32 matmul peak ``P``
  (``2 n^3`` FLOPs of a ``2048 x 2048`` product over its best time) sampled
  between the same timed loops: the fraction of the machine's dense-algebra
  speed the update reaches, for the paper's critic and the default one.
- **scale**: :func:`bench_scale` (below).
- **adapters**: host steps per second of a game through mairl's adapter over
  the wrapped library stepping it directly (a ratio below 1 is the adapter's
  cost); a library that is not installed is a stated skip.
- **time to a return**: the wall time of a training run (``mairl.runs.run``)
  until every agent's evaluation return reaches a target, or the statement
  that it did not within the cap.

Throughput of training many learners at once: a run trains its seeds side by
side in one compiled program (``jax.vmap`` over the run axis), splits that
axis over the devices of a mesh (:mod:`mairl.sharding`), and a sweep adds the
points of a hyperparameter grid to the same axis (:mod:`mairl.sweep`).
:func:`bench_scale` measures what each costs, on MAMQL updates on Gems (random
demonstrations: their content does not change the cost of an update):

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
from pathlib import Path
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


# -- pieces shared by ``mairl bench envs``, ``mairl bench mamql`` and ``bench_all`` ------


def make_rollout(env, num_envs: int, num_steps: int):
    """A jitted rollout of ``num_steps`` vmapped steps under uniform random actions.

    Observations and rewards are summed into the carry so that none of the work
    can be removed by the compiler.
    """
    step = jax.vmap(env.step)
    if env.discrete:  # one draw for every env and agent
        shape = (num_envs, env.num_agents)
        sample = lambda key: jax.random.randint(key, shape, 0, env.num_actions)  # noqa: E731
    else:
        sample = lambda key: jax.vmap(env.sample_actions)(jax.random.split(key, num_envs))  # noqa: E731

    @jax.jit
    def rollout(key):
        key_reset, key = jax.random.split(key)
        _, state = jax.vmap(env.reset)(jax.random.split(key_reset, num_envs))

        def body(carry, key):
            state, acc = carry
            key_act, key_step = jax.random.split(key)
            actions = sample(key_act)
            obs, state, reward, _, _, _ = step(
                jax.random.split(key_step, num_envs), state, actions
            )
            # summed in float32 whatever the obs dtype (uint8 Gems maps): the same
            # consumer for every dtype
            return (state, acc + obs.sum(dtype=jnp.float32) + reward.sum()), None

        (_, acc), _ = jax.lax.scan(body, (state, jnp.float32(0)), jax.random.split(key, num_steps))
        return acc

    return rollout


def env_steps_per_second(env, num_envs: int, num_steps: int, repeats: int = 3) -> float:
    """Best of ``repeats`` timed rollouts (compile excluded), in env steps per second."""
    rollout = make_rollout(env, num_envs, num_steps)
    rollout(jax.random.key(0)).block_until_ready()
    best = float("inf")
    for i in range(repeats):
        t0 = time.perf_counter()
        rollout(jax.random.key(i + 1)).block_until_ready()
        best = min(best, time.perf_counter() - t0)
    return num_envs * num_steps / best


def flops_of(fn, *args) -> float:
    """FLOPs of one call of ``fn(*args)`` by XLA's cost analysis."""
    return cost_flops(jax.jit(fn).lower(*args).compile())


def critic_layer_flops(critic: str, view: tuple[int, ...], num_actions: int,
                       hidden: tuple[int, ...] = (256, 256)) -> list[float]:
    """Hand count of the FLOPs (2 per multiply-add) of every layer of one critic
    forward pass on one sample; biases and activations left out."""
    if critic == "mlp":
        widths = [int(np.prod(view)), *hidden, num_actions]
        return [2.0 * a * b for a, b in zip(widths[:-1], widths[1:], strict=True)]
    if critic == "gems-paper":  # conv 64 kernel 5, conv 64 kernel 3 (valid), dense 1024, 1024
        channels, x, y = view
        x1, y1, x2, y2 = x - 4, y - 4, x - 6, y - 6
        macs = [x1 * y1 * 64 * channels * 25, x2 * y2 * 64 * 64 * 9, x2 * y2 * 64 * 1024,
                1024 * 1024, 1024 * num_actions]
        return [2.0 * m for m in macs]
    raise ValueError(f"no hand count for critic {critic!r}")


def training_flops(layers: list[float]) -> float:
    """Forward, weight gradients (as much again) and input gradients (as much again,
    but none for the first layer: its input is data) of one sample."""
    return 3 * sum(layers) - layers[0]


def time_updates(algo, data, key: jax.Array, *, target_s: float, repeats: int,
                 peak: Callable[[], float]) -> dict:
    """Seconds per update of ``algo``: best and median of ``repeats`` timed loops of
    about ``target_s`` seconds each, compile and the first run excluded, each loop
    going on from the state the last one left; the FLOPs of one update by XLA's cost
    analysis; and the best of ``peak()`` sampled before every loop and after the last."""
    from mairl.train import demo_batches

    key_init, key_batch, key_run = jax.random.split(key, 3)
    example = demo_batches(algo.needs)(key_batch, data)
    # distinct buffers: the loop donates its state, where params may be target_params
    state = jax.tree.map(jnp.copy, jax.jit(algo.init)(key_init, example))
    _, loop = make_update_loop(algo)
    t0 = time.perf_counter()
    compiled = jax.jit(loop, donate_argnums=0).lower(state, data, key_run, 1).compile()
    compile_s = time.perf_counter() - t0
    flops = cost_flops(compiled)  # the trip count is an argument: the body counts once
    t0 = time.perf_counter()
    state = jax.block_until_ready(compiled(state, data, key_run, 1))
    first_s = time.perf_counter() - t0
    num_updates = max(1, round(target_s / first_s))
    repeats = max(1, min(repeats, round(8 * target_s / (num_updates * first_s))))
    times, peaks = [], []
    for i in range(repeats):
        peaks.append(peak())
        t0 = time.perf_counter()
        key_loop = jax.random.fold_in(key_run, i)
        state = jax.block_until_ready(compiled(state, data, key_loop, num_updates))
        times.append((time.perf_counter() - t0) / num_updates)
    peaks.append(peak())
    return {"flops": flops, "best_s": min(times), "median_s": float(np.median(times)),
            "compile_s": compile_s, "num_updates": num_updates, "repeats": repeats,
            "peak": max(peaks)}


def seed_updates_per_second(algo, data, key: jax.Array, seeds: tuple[int, ...],
                            num_updates: int, repeats: int,
                            peak: Callable[[], float]) -> tuple[dict[int, float], float]:
    """Seed-updates per second of the update loop (``make_update_loop``) vmapped over
    the states and keys of several seeds, for every seed count in ``seeds``: best of
    ``repeats`` loops of ``num_updates`` updates, compile and the first run excluded,
    the counts taking turns so that all see the same load; and the best of ``peak()``
    sampled before every loop and after the last."""
    from mairl.train import demo_batches

    key_init, key_batch, key_run = jax.random.split(key, 3)
    example = demo_batches(algo.needs)(key_batch, data)
    _, loop = make_update_loop(algo)
    init = jax.jit(jax.vmap(algo.init, in_axes=(0, None)))
    states = init(jax.random.split(key_init, max(seeds)), example)
    runs = {}
    for num_seeds in seeds:
        state = jax.tree.map(lambda x, n=num_seeds: jnp.copy(x[:n]), states)
        keys = jax.random.split(key_run, num_seeds)
        compiled = jax.jit(jax.vmap(loop, in_axes=(0, None, 0, None)), donate_argnums=0).lower(
            state, data, keys, num_updates).compile()
        runs[num_seeds] = [compiled, jax.block_until_ready(compiled(state, data, keys, 1)), keys]
    best = dict.fromkeys(seeds, float("inf"))
    peaks = []
    for _ in range(repeats):
        for num_seeds, run in runs.items():
            compiled, state, keys = run
            peaks.append(peak())
            t0 = time.perf_counter()
            run[1] = jax.block_until_ready(compiled(state, data, keys, num_updates))
            best[num_seeds] = min(best[num_seeds], time.perf_counter() - t0)
    peaks.append(peak())
    return {n: n * num_updates / t for n, t in best.items()}, max(peaks)


def mamql_update_case(env, data, peak: Callable[[], float], *, critic: str, mode: str,
                      batch: int, target_s: float, repeats: int,
                      paper: bool = False) -> dict[str, Any]:
    """Time one MAMQL update on Gems (:func:`time_updates`) and count its FLOPs.

    ``paper``: the MAMQL paper's Gems settings (``mairl.presets``, critic
    ``gems-paper`` on the global map, dropout, L2), else ``MAMQLConfig``'s defaults
    with ``critic`` on each agent's egocentric view (``env.agent_view``).

    Returns:
        ``s_per_update`` (best), ``median_s``, ``flops`` (XLA's count of one
        update), ``hand_flops`` (:func:`critic_layer_flops`: ``s`` and ``s'`` of
        every agent, online as many policy samples again and one forward pass per
        environment stepped), ``flops_per_s``, ``peak`` (the best matmul peak
        sampled between the timed loops), ``peak_fraction``, ``compile_s``,
        ``num_updates``, ``repeats``, ``view``.
    """
    from mairl.algos import MAMQLConfig, make_mamql
    from mairl.algos.common import view_shape
    from mairl.presets import paper_config

    if paper:
        config = paper_config("mamql", "gems", mode=mode, batch_size=batch)
        transform = None
    else:
        config = MAMQLConfig(mode=mode, critic=critic, batch_size=batch)
        transform = env.agent_view
    algo = make_mamql(config, num_agents=env.num_agents, obs_shape=env.obs_shape,
                      num_actions=env.num_actions, env=env, obs_transform=transform)
    r = time_updates(algo, data, jax.random.key(1), target_s=target_s, repeats=repeats,
                     peak=peak)
    view = view_shape(env.obs_shape, transform)
    layers = critic_layer_flops(config.critic, view, env.num_actions, config.hidden)
    samples = env.num_agents * 2 * batch * (2 if mode == "online" else 1)
    hand = samples * training_flops(layers)
    if mode == "online":
        hand += env.num_agents * config.num_envs * sum(layers)
    rate = r["flops"] / r["best_s"]
    return {"s_per_update": r["best_s"], "median_s": r["median_s"], "flops": r["flops"],
            "hand_flops": hand, "flops_per_s": rate, "peak": r["peak"],
            "peak_fraction": rate / r["peak"], "compile_s": r["compile_s"],
            "num_updates": r["num_updates"], "repeats": r["repeats"], "critic": config.critic,
            "view": tuple(view)}


def _conv_lax(x, w):
    return jax.lax.conv_general_dilated(x, w, (1, 1), "VALID",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _conv_im2col(x, w):
    from mairl.networks import conv_as_matmul

    return conv_as_matmul(x, w, (1, 1), "VALID")


def _per_agent(fn):
    """``fn`` called once per agent (an unrolled Python loop), not vmapped."""
    def stacked(x, w):
        return jnp.stack([fn(x[a], w[a]) for a in range(x.shape[0])])
    return stacked


def paper_critic_layer_cases(peak: Callable[[], float], *, view: tuple[int, int, int] = (5, 15, 15),
                             agents: int = 2, samples: int = 1024, repeats: int = 5,
                             seed: int = 0) -> list[dict[str, Any]]:
    """Time the paper critic's first three layers alone, at one update's shapes.

    The ``gems-paper`` critic (:func:`critic_layer_flops`) is a 5x5 convolution
    with 64 filters, a 3x3 one with 64, then a dense layer of 1,024, each agent
    with its own weights. An update passes ``samples`` maps per agent through
    each (``s`` and ``s'`` of a batch of 256, online twice that). Every layer is
    timed under ``vmap`` over ``agents``, forward alone and forward with the
    gradients an update takes (the kernel's for the first convolution, whose
    input is data; the kernel's and the input's for the others), for each way
    of computing a convolution:

    - ``im2col``: :func:`mairl.networks.conv_as_matmul`, what the critics use;
    - ``lax``: ``lax.conv_general_dilated`` under ``vmap`` (a grouped convolution);
    - ``lax per agent``: ``lax.conv_general_dilated`` once per agent, unrolled.

    Returns one dict per (layer, implementation): ``layer``, ``impl``,
    ``forward_s`` and ``training_s`` (best of ``repeats``), ``flops`` (hand count
    of the forward pass; training counts three times it, twice for the first
    layer), ``forward_fraction`` and ``training_fraction`` of the matmul peak
    ``peak()`` sampled after each layer's timings, and ``max_abs_diff`` of the
    forward output against ``im2col``'s.
    """
    channels, h, w = view
    if h < 7 or w < 7:
        raise ValueError(f"view: the paper critic needs maps of at least 7 x 7, got {view}")
    h1, w1, h2, w2 = h - 4, w - 4, h - 6, w - 6
    keys = jax.random.split(jax.random.key(seed), 6)
    per_map = critic_layer_flops("gems-paper", view, num_actions=1)
    layers = [
        (f"conv 5x5, {channels}->64", (agents, samples, h, w, channels),
         (agents, 5, 5, channels, 64), samples * per_map[0], True, False),
        ("conv 3x3, 64->64", (agents, samples, h1, w1, 64), (agents, 3, 3, 64, 64),
         samples * per_map[1], True, True),
        (f"dense {h2 * w2 * 64}->1024", (agents, samples, h2 * w2 * 64),
         (agents, h2 * w2 * 64, 1024), samples * per_map[2], False, True),
    ]
    rows = []
    for i, (name, x_shape, w_shape, flops, is_conv, input_grad) in enumerate(layers):
        x = jax.random.normal(keys[2 * i], x_shape, jnp.float32)
        kernel = jax.random.normal(keys[2 * i + 1], w_shape, jnp.float32) * 0.05
        impls = ({"im2col": jax.vmap(_conv_im2col), "lax": jax.vmap(_conv_lax),
                  "lax per agent": _per_agent(_conv_lax)} if is_conv
                 else {"matmul": jax.vmap(jnp.dot)})
        reference = None
        layer_rows = []
        for impl_name, fn in impls.items():
            forward = jax.jit(fn)

            def loss(x, kernel, fn=fn):
                return jnp.sum(jax.nn.relu(fn(x, kernel)) ** 2)

            training = jax.jit(jax.grad(loss, argnums=(0, 1) if input_grad else 1))
            out = forward(x, kernel)
            reference = out if reference is None else reference
            jax.block_until_ready(training(x, kernel))
            forward_s = min(timed_calls(forward, x, kernel, repeats=repeats))
            training_s = min(timed_calls(training, x, kernel, repeats=repeats))
            layer_rows.append({
                "layer": name, "impl": impl_name, "forward_s": forward_s, "training_s": training_s,
                "flops": agents * flops,
                "max_abs_diff": float(jnp.max(jnp.abs(out - reference))),
            })
        rate = peak()
        for row in layer_rows:
            train_flops = row["flops"] * (3 if input_grad else 2)
            row["forward_fraction"] = row["flops"] / row["forward_s"] / rate
            row["training_fraction"] = train_flops / row["training_s"] / rate
            row["peak"] = rate
        rows += layer_rows
    return rows


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


def huge_pages(enabled_file: str | os.PathLike = "/sys/kernel/mm/transparent_hugepage/enabled",
               environ: dict[str, str] | None = None) -> str:
    """Whether this process's large buffers get transparent huge pages: the
    kernel's mode (``/sys/kernel/mm/transparent_hugepage/enabled``) and, where
    it is ``madvise``, whether glibc's malloc asks for them
    (``GLIBC_TUNABLES=glibc.malloc.hugetlb=1``, read when the process starts).

    On the CPU, XLA allocates each large temporary buffer anew on every call;
    with 4 KB pages the kernel faults and zeroes every page of it, which halves
    the speed of the convolutions of the paper's Gems critic (``docs/scaling.md``).
    """
    try:
        text = Path(enabled_file).read_text()
    except OSError:
        return "unknown (no transparent huge pages on this system)"
    mode = text[text.find("[") + 1 : text.find("]")] if "[" in text else text.strip()
    tunables = (os.environ if environ is None else environ).get("GLIBC_TUNABLES", "")
    asked = any(t.strip() in ("glibc.malloc.hugetlb=1", "glibc.malloc.hugetlb=2")
                for t in tunables.split(":"))
    if mode == "always":
        return "always (kernel)"
    if mode == "madvise":
        return ("madvise, asked for by malloc (GLIBC_TUNABLES=glibc.malloc.hugetlb=1)"
                if asked else "madvise, not asked for (4 KB pages; see docs/scaling.md)")
    return mode


def machine_facts() -> dict[str, Any]:
    """What a throughput figure depends on: CPU model and cores, JAX version, the
    backend and its devices, and the page size of large buffers (:func:`huge_pages`)."""
    devices = jax.devices()
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "jax": jax.__version__,
            "backend": jax.default_backend(), "device_kind": devices[0].device_kind,
            "devices": len(devices), "huge_pages": huge_pages()}


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
             f"({m['devices']} x {m['device_kind']}), huge pages: "
             f"{m.get('huge_pages', 'not recorded')}",
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


# -- one report of every benchmark: ``mairl bench all`` --------------------------------------

#: The sections of :func:`bench_all`, in the order they run and are written.
SECTIONS: tuple[str, ...] = ("gems_env", "mamql_update", "scaling", "adapters",
                             "time_to_return")


@dataclass(frozen=True)
class AllConfig:
    """What :func:`bench_all` measures. The defaults are the full report (about
    10-15 minutes on two CPU cores); :meth:`quick` gives tiny sizes.

    Attributes:
        sections: which of :data:`SECTIONS` to run.
        gems_num_envs: vmapped Gems environments of each JAX rollout.
        gems_steps: environment steps per timed JAX rollout (split over the envs).
        python_s: seconds of plain-Python Gems stepping per timed loop.
        repeats: timed loops per environment figure (the best is reported).
        update_batch: transitions per MAMQL update, both critics.
        update_modes: MAMQL modes timed (``value_expert``: offline;
            ``online`` adds an environment step and a replay).
        update_target_s: seconds each timed loop of updates aims at.
        update_repeats: at most this many timed loops of updates per case.
        update_demo_episodes: episodes of random Gems demonstrations the timed
            updates sample from.
        scale: the seed, device and grid measurement (:func:`bench_scale`).
        adapter_s: seconds of host stepping per adapter figure.
        intersection_jax_envs: vmapped envs of the JAX intersection rollout.
        target_return: the per-agent evaluation return the training run aims at.
        run_updates: the cap of the training run, in updates.
        run_eval_every: updates between evaluations of the training run.
        run_eval_episodes: episodes per evaluation (per seed).
        run_seeds: seeds trained at once.
        run_batch: demonstration transitions per update of the training run.
        run_demo_episodes: episodes of the shipped soft-Q expert recorded for it.
    """

    sections: tuple[str, ...] = SECTIONS
    gems_num_envs: tuple[int, ...] = (1, 64, 4096)
    gems_steps: int = 2_000_000
    python_s: float = 3.0
    repeats: int = 3
    update_batch: int = 256
    update_modes: tuple[str, ...] = ("value_expert", "online")
    update_target_s: float = 3.0
    update_repeats: int = 4
    update_demo_episodes: int = 16
    scale: ScaleConfig = ScaleConfig(seeds=(1, 2, 4, 8), devices=(1, 2), seeds_per_device=2,
                                     grid=(1, 4, 16), target_s=1.0, repeats=2,
                                     max_update_s=1.0)
    adapter_s: float = 5.0
    intersection_jax_envs: int = 256
    target_return: float = 12.5
    run_updates: int = 3000
    run_eval_every: int = 100
    run_eval_episodes: int = 32
    run_seeds: int = 1
    run_batch: int = 256
    run_demo_episodes: int = 300

    def __post_init__(self):
        from mairl.algos.common import check_fields

        check_fields(self, [
            ("sections", len(self.sections) > 0 and set(self.sections) <= set(SECTIONS),
             f"a non-empty subset of {SECTIONS}"),
            ("gems_num_envs", len(self.gems_num_envs) > 0 and min(self.gems_num_envs) >= 1,
             "counts >= 1"),
            ("gems_steps", self.gems_steps >= 1, ">= 1"),
            ("python_s", self.python_s > 0, "> 0"),
            ("repeats", self.repeats >= 1, ">= 1"),
            ("update_batch", self.update_batch >= 1, ">= 1"),
            ("update_modes", len(self.update_modes) > 0
             and set(self.update_modes) <= {"value_expert", "online"},
             "a non-empty subset of ('value_expert', 'online')"),
            ("update_target_s", self.update_target_s > 0, "> 0"),
            ("update_repeats", self.update_repeats >= 1, ">= 1"),
            ("update_demo_episodes", self.update_demo_episodes >= 1, ">= 1"),
            ("adapter_s", self.adapter_s > 0, "> 0"),
            ("intersection_jax_envs", self.intersection_jax_envs >= 1, ">= 1"),
            ("target_return", bool(np.isfinite(self.target_return)), "a finite number"),
            ("run_updates", self.run_updates >= 1, ">= 1"),
            ("run_eval_every", 1 <= self.run_eval_every <= self.run_updates
             and self.run_updates % self.run_eval_every == 0,
             "a divisor of run_updates, >= 1"),
            ("run_eval_episodes", self.run_eval_episodes >= 1, ">= 1"),
            ("run_seeds", self.run_seeds >= 1, ">= 1"),
            ("run_batch", self.run_batch >= 1, ">= 1"),
            ("run_demo_episodes", self.run_demo_episodes >= 1, ">= 1"),
        ])

    @classmethod
    def quick(cls, **overrides: Any) -> AllConfig:
        """Tiny sizes: every section runs and every figure is produced, in a
        minute or two; the figures themselves mean little."""
        values = dict(gems_num_envs=(1, 64), gems_steps=20_000, python_s=0.2, repeats=1,
                      update_batch=8, update_modes=("value_expert",), update_target_s=0.05,
                      update_repeats=1, update_demo_episodes=2,
                      scale=ScaleConfig(hidden=(16,), batch_size=8, seeds=(1, 2), devices=(1,),
                                        seeds_per_device=1, grid=(1, 2), target_s=0.02,
                                        repeats=1, demo_episodes=2),
                      adapter_s=0.2, intersection_jax_envs=4, run_updates=20,
                      run_eval_every=10, run_eval_episodes=2, run_batch=16, run_demo_episodes=4)
        return cls(**{**values, **overrides})


@dataclass(frozen=True)
class Figure:
    """One measured number.

    Attributes:
        key: its name, unique in the report (``section.figure``).
        label: what it is, in words.
        value: the number.
        unit: its unit (``steps/s``, ``s``, ``FLOP/s``, ...).
        note: how it was measured.
    """

    key: str
    label: str
    value: float
    unit: str
    note: str = ""


@dataclass(frozen=True)
class Ratio:
    """Two figures of the same run side by side: ``value = numerator / denominator``.

    Attributes:
        label: what the quotient says.
        numerator: the key of the figure above the line.
        denominator: the key of the figure below it.
        value: the quotient.
    """

    label: str
    numerator: str
    denominator: str
    value: float


@dataclass
class Section:
    """One benchmark of :func:`bench_all`.

    Attributes:
        name: one of :data:`SECTIONS`.
        title: its heading.
        about: what it measures and how, in words.
        figures: the numbers measured.
        ratios: quotients of those numbers.
        skipped: why a part (or all) of it was not measured, one reason each.
        lines: more detail, printed as it came (the scale report's tables).
        seconds: wall time of the section.
    """

    name: str
    title: str
    about: str
    figures: list[Figure] = field(default_factory=list)
    ratios: list[Ratio] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, key: str, label: str, value: float, unit: str, note: str = "") -> Figure:
        """Record a figure ``section.key`` and return it."""
        fig = Figure(f"{self.name}.{key}", label, float(value), unit, note)
        self.figures.append(fig)
        return fig

    def ratio(self, label: str, numerator: Figure, denominator: Figure) -> Ratio:
        """Record ``numerator.value / denominator.value`` and return it."""
        r = Ratio(label, numerator.key, denominator.key, numerator.value / denominator.value)
        self.ratios.append(r)
        return r


@dataclass
class AllReport:
    """What :func:`bench_all` measured, with the machine and the command.

    Attributes:
        config: the :class:`AllConfig`.
        command: the command line that produced it.
        date: when it started (UTC, ISO 8601).
        machine: :func:`machine_facts`.
        matmul_peak: the best float32 matmul FLOP/s sampled during the run.
        sections: one :class:`Section` per benchmark run.
        seconds: wall time of the whole run.
    """

    config: AllConfig
    command: str
    date: str
    machine: dict[str, Any]
    matmul_peak: float
    sections: list[Section] = field(default_factory=list)
    seconds: float = 0.0

    def figures(self) -> dict[str, Figure]:
        """Every figure by its key."""
        return {f.key: f for s in self.sections for f in s.figures}

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-ready)."""
        return {"config": dataclasses.asdict(self.config), "command": self.command,
                "date": self.date, "machine": self.machine, "matmul_peak": self.matmul_peak,
                "seconds": self.seconds,
                "sections": [dataclasses.asdict(s) for s in self.sections]}


def _host_rate(step: Callable[[int], Any], seconds: float, warmup: int = 3,
               min_steps: int = 10) -> tuple[float, int]:
    """``(steps per second, steps)`` of ``step(i)`` called in a loop for about
    ``seconds`` after ``warmup`` untimed calls (at least ``min_steps`` timed)."""
    for i in range(warmup):
        jax.block_until_ready(step(i))
    i, t0 = warmup, time.perf_counter()
    while True:
        jax.block_until_ready(step(i))
        i += 1
        elapsed = time.perf_counter() - t0
        if i - warmup >= min_steps and elapsed >= seconds:
            return (i - warmup) / elapsed, i - warmup


def python_gems_steps_per_second(seconds: float, repeats: int = 1, seed: int = 0) -> float:
    """Steps/s of the plain-Python Gems (:class:`envs.gems_reference.GemsReference`,
    map observations, auto-reset) under uniformly random actions drawn in the loop;
    best of ``repeats`` loops of about ``seconds`` each."""
    from envs.gems_reference import GemsReference

    env = GemsReference(seed=seed)
    env.reset()
    draw = env.rng.randrange

    def step(_):
        env.step((draw(5), draw(5)))

    return max(_host_rate(step, seconds)[0] for _ in range(repeats))


def _gems_env_section(config: AllConfig, section: Section) -> None:
    import envs

    gems = envs.make("gems")
    python = section.add("python", "plain-Python Gems (envs.gems_reference), 1 env",
                         python_gems_steps_per_second(config.python_s, config.repeats),
                         "steps/s", f"random actions, best of {config.repeats} loops of "
                         f"{config.python_s:g} s, map observations built each step")
    for n in config.gems_num_envs:
        steps = max(min(config.gems_steps // n, 100_000), 20)
        jax_fig = section.add(f"jax_{n}", f"JAX Gems, {n} vmapped env{'s' if n > 1 else ''}",
                              env_steps_per_second(gems, n, steps, repeats=config.repeats),
                              "steps/s", f"jit of lax.scan over {steps} steps, random actions, "
                              f"best of {config.repeats}")
        section.ratio(f"JAX ({n} env{'s' if n > 1 else ''}) / plain Python", jax_fig, python)


def _mamql_update_section(config: AllConfig, section: Section,
                          peak: Callable[[], float]) -> None:
    import envs

    gems = envs.make("gems")
    data = random_demos(gems, config.update_demo_episodes, jax.random.key(0))
    peak_fig = None
    for paper in (True, False):
        for mode in config.update_modes:
            critic = "gems-paper" if paper else "mlp"
            r = mamql_update_case(gems, data, peak, critic=critic, mode=mode,
                                  batch=config.update_batch, target_s=config.update_target_s,
                                  repeats=config.update_repeats, paper=paper)
            what = ("paper critic (gems-paper preset, global map)" if paper
                    else "default critic (mlp 256, 256, egocentric view)") + f", {mode}"
            key = f"{'paper' if paper else 'default'}_{mode}"
            section.add(f"{key}_s", f"{what}: seconds per update", r["s_per_update"], "s",
                        f"batch {config.update_batch}, best of {r['repeats']} loops of "
                        f"{r['num_updates']} updates (median {r['median_s']:.4g} s), compile "
                        f"{r['compile_s']:.1f} s")
            section.add(f"{key}_flops", f"{what}: FLOPs per update", r["flops"], "FLOP",
                        f"XLA cost analysis (hand count {r['hand_flops']:.4g})")
            rate = section.add(f"{key}_flops_per_s", f"{what}: FLOP/s", r["flops_per_s"],
                               "FLOP/s", "XLA's FLOPs over the best time")
            peak_fig = section.add(f"{key}_peak", f"{what}: float32 matmul peak beside it",
                                   r["peak"], "FLOP/s", "best 2048 x 2048 a @ b sampled "
                                   "between its timed loops")
            section.ratio(f"{what}: fraction of the matmul peak", rate, peak_fig)


def _scaling_section(config: AllConfig, section: Section) -> None:
    report = bench_scale(config.scale)
    section.lines = format_scale(report)
    c = config.scale
    section.add("flops_per_update", f"one update (mamql {c.mode}, critic {c.critic} "
                f"{list(c.hidden)}, batch {c.batch_size})", report.flops_per_update, "FLOP",
                "XLA cost analysis")
    section.add("matmul_peak", "float32 matmul peak", report.matmul_peak, "FLOP/s",
                "sampled before and after")
    ceiling = section.add("ceiling", "ceiling: peak / FLOPs per update",
                          report.matmul_peak / report.flops_per_update, "updates/s")
    for kind, timings, unit in (("seeds", report.seeds, "seed-updates/s"),
                                ("devices", report.devices, "seed-updates/s"),
                                ("grid", report.grid, "point-updates/s")):
        first = None
        for t in timings:
            where = f" on {t.devices} device{'s' if t.devices > 1 else ''}"
            fig = section.add(f"{kind}_{t.runs}_{t.devices}",
                              f"{kind}: {t.runs} {'point' if kind == 'grid' else 'seed'}"
                              f"{'s' if t.runs > 1 else ''}{where}", t.rate, unit,
                              f"{t.num_updates} updates per loop, compile {t.compile_s:.1f} s")
            if first is None:
                first = fig
                if kind == "seeds":
                    section.ratio("ceiling / 1 seed's rate", ceiling, fig)
            else:
                section.ratio(f"{kind}: {t.runs} / {first.label.split(': ')[1]}", fig, first)
    for stopped in (report.stopped_seeds, report.stopped_grid):
        if stopped:
            section.skipped.append(stopped)
    section.skipped.extend([f"devices: {report.devices_note}"] if report.devices_note else [])


def _adapter_section(config: AllConfig, section: Section) -> None:
    import importlib.util

    from mairl.report import random_actions

    def adapter_rate(env) -> tuple[float, int]:
        actions = random_actions(env, 100_000)
        keys = jax.random.split(jax.random.key(1), 4096)
        state = [env.reset(jax.random.key(0))[1]]

        def step(i):
            state[0] = env.step(keys[i % len(keys)], state[0], actions[i % len(actions)])[1]

        return _host_rate(step, config.adapter_s)

    # PettingZoo / mpe2
    if importlib.util.find_spec("mpe2") is None:
        section.skipped.append("mpe2 (PettingZoo's MPE) is not installed: pip install "
                               "'mairl[pettingzoo]' measures the PettingZoo adapter")
    else:
        import envs

        module = importlib.import_module("mpe2.simple_spread_v3")
        raw = module.parallel_env()
        raw.reset(seed=0)
        agents = list(raw.possible_agents)
        rng = np.random.default_rng(0)
        actions = rng.integers(0, 5, (100_000, len(agents)))

        def raw_step(i):
            if not raw.agents:
                raw.reset(seed=i)
            raw.step({a: int(actions[i % len(actions), j]) for j, a in enumerate(agents)})

        rate, n = _host_rate(raw_step, config.adapter_s)
        raw_fig = section.add("mpe2_raw", "mpe2 simple_spread_v3 parallel_env.step (raw)", rate,
                              "steps/s", f"{n} random steps, reset when the episode ends")
        env = envs.make("mpe2-simple-spread")
        rate, n = adapter_rate(env)
        ad_fig = section.add("mpe2_adapter", "the same game through mairl (envs.make("
                             "'mpe2-simple-spread').step)", rate, "steps/s",
                             f"{n} random steps, JAX keys, auto-reset")
        section.ratio("mpe2: adapter / raw", ad_fig, raw_fig)
    # highway-env
    if importlib.util.find_spec("highway_env") is None:
        section.skipped.append("highway-env is not installed: pip install 'mairl[highway]' "
                               "measures the intersection adapter")
        return
    from highway_env.envs.intersection_env import MultiAgentIntersectionEnv

    import envs

    env = envs.make("intersection")
    raw = MultiAgentIntersectionEnv(config=env.config)
    raw.reset(seed=0)
    rng = np.random.default_rng(0)
    actions = rng.integers(0, 3, (100_000, env.num_agents))

    def raw_highway(i):
        _, _, terminated, truncated, _ = raw.step(tuple(int(a) for a in actions[i % len(actions)]))
        if terminated or truncated:
            raw.reset(seed=i)

    rate, n = _host_rate(raw_highway, config.adapter_s)
    raw_fig = section.add("highway_raw", "highway-env MultiAgentIntersectionEnv.step (raw, its "
                          "own Kinematics observation)", rate, "steps/s",
                          f"{n} random steps, 4 vehicles, reset when the episode ends")
    rate, n = adapter_rate(env)
    ad_fig = section.add("highway_adapter", "the intersection through mairl (envs.make("
                         "'intersection').step)", rate, "steps/s",
                         f"{n} random steps, JAX keys, auto-reset; the same observation "
                         "computed in NumPy (Intersection's fast_observations)")
    section.ratio("intersection: adapter / raw highway-env", ad_fig, raw_fig)
    jax_env = envs.make("intersection-jax")
    n_envs = config.intersection_jax_envs
    steps = 4 * jax_env.max_steps
    jax_fig = section.add("intersection_jax", f"intersection-jax (the JAX port), {n_envs} "
                          "vmapped envs", env_steps_per_second(jax_env, n_envs, steps,
                                                               repeats=config.repeats),
                          "steps/s", f"jit of lax.scan over {steps} steps, random actions")
    section.ratio("intersection-jax / raw highway-env", jax_fig, raw_fig)


def _time_to_return_section(config: AllConfig, section: Section, workdir: Path) -> None:
    import envs
    from mairl import data as mdata
    from mairl import runs
    from mairl.algos import MAMQLConfig
    from mairl.experts import expert_alpha_gamma, make_expert

    env = envs.make("gems")
    t0 = time.perf_counter()
    alpha, gamma = expert_alpha_gamma("soft-q")
    demos = mdata.collect(jax.random.key(0), env, make_expert(env, "soft-q"),
                          config.run_demo_episodes, num_envs=min(250, config.run_demo_episodes),
                          expert_alpha=alpha, expert_gamma=gamma)
    path = workdir / "gems_expert_demos.npz"
    demos.save(path)
    expert_return = mdata.episode_returns(demos).mean(axis=0)
    section.add("demos_s", f"recording {config.run_demo_episodes} expert episodes",
                time.perf_counter() - t0, "s", "the shipped soft-Q expert "
                f"(alpha {alpha:g}, gamma {gamma:g}); not counted below")
    run_config = runs.RunConfig(
        algo=MAMQLConfig(mode="value_expert", learning_rate=5e-4, hidden=(128, 128),
                         batch_size=config.run_batch,
                         alpha=float(alpha), gamma=float(gamma)),
        env=runs.EnvConfig("gems"),
        data=runs.DataConfig(demos=str(path)),
        schedule=runs.ScheduleConfig(seeds=config.run_seeds, updates=config.run_updates,
                                     eval_every=config.run_eval_every),
        eval=runs.EvalConfig(eval_episodes=config.run_eval_episodes,
                             final_episodes=config.run_eval_episodes))

    class Clock:
        """Tracker: the wall time and the per-agent return of every evaluation."""

        def __init__(self):
            self.start = time.perf_counter()
            self.rows: list[tuple[int, float, np.ndarray]] = []

        def log(self, curves, updates):
            ret = np.asarray(curves["return"])[:, -1].mean(axis=0)  # (agent,), mean of seeds
            self.rows.append((int(np.asarray(updates)[-1]), time.perf_counter() - self.start,
                              ret))

        def close(self):
            pass

    clock = Clock()
    runs.run(run_config, workdir / "run", trackers=[clock], overwrite=True)
    total = time.perf_counter() - clock.start
    section.add("run_s", f"the whole run: {config.run_updates} updates, {config.run_seeds} "
                f"seed{'s' if config.run_seeds > 1 else ''}", total, "s",
                f"evaluation every {config.run_eval_every} updates "
                f"({config.run_eval_episodes} episodes), data loading, compile and the final "
                "evaluation included")
    section.add("expert_return", "the expert's mean return per agent in the demonstrations",
                float(expert_return.mean()), "return")
    best_updates, _, best = max(clock.rows, key=lambda row: float(row[2].min()))
    reached = [row for row in clock.rows if float(row[2].min()) >= config.target_return]
    if reached:
        updates, seconds, ret = reached[0]
        section.add("seconds", f"wall time to per-agent return {config.target_return:g}",
                    seconds, "s", f"from the call of mairl.runs.run (data loading and compile "
                    f"included) to the evaluation after {updates} updates, returns "
                    f"{', '.join(f'{r:.2f}' for r in ret)}")
        section.add("updates", f"updates to per-agent return {config.target_return:g}",
                    updates, "updates")
    else:
        section.skipped.append(
            f"per-agent return {config.target_return:g} not reached within the cap of "
            f"{config.run_updates} updates ({total:.1f} s): the best evaluation, after "
            f"{best_updates} updates, gave {', '.join(f'{r:.2f}' for r in best)}")
    if float(best.min()) > 0:
        section.add("best_return", "the best evaluation's lowest per-agent return",
                    float(best.min()), "return", f"after {best_updates} updates")


_TITLES = {
    "gems_env": ("Gems environment: JAX against plain Python",
                 "Environment steps per second of Gems (map observations, auto-reset, uniformly "
                 "random actions): the JAX environment jitted and vmapped over environments, "
                 "and the plain-Python implementation of the same rules "
                 "(`envs.gems_reference`, tested equal to the JAX one on random rollouts) "
                 "stepping one environment, in the same process."),
    "mamql_update": ("MAMQL update against the matmul peak",
                     "Seconds per two-agent MAMQL update on Gems (random demonstrations), "
                     "its FLOPs by XLA's cost analysis and FLOP/s, against the float32 matmul "
                     "peak sampled between the same timed loops; for the paper's critic "
                     "(`gems-paper` preset: two convolutions and two dense layers of 1024 on "
                     "the global map, dropout, L2) and the default MLP critic on each agent's "
                     "egocentric view."),
    "scaling": ("Seeds, devices and grid points",
                "`mairl.bench.bench_scale`: seed-updates per second of the update loop vmapped "
                "over seeds, split over devices, and learning-rate grid points in one program."),
    "adapters": ("Adapters against the wrapped libraries",
                 "Host steps per second of third-party games stepped directly and through "
                 "mairl's adapters (`env.step(key, state, actions)`, with JAX keys and "
                 "auto-reset), uniformly random actions, one environment."),
    "time_to_return": ("Time to per-agent return on Gems",
                       "Offline MAMQL (`value_expert`, MLP 128, 128 on the egocentric view, "
                       "lr 5e-4, the expert's alpha and gamma) trained by `mairl.runs.run` on "
                       "demonstrations of the shipped soft-Q expert; the wall time until the "
                       "evaluation's return of every agent (mean over seeds) reaches the "
                       "target, within a cap."),
}


def bench_all(config: AllConfig = AllConfig(), command: str = "mairl bench all",
              progress: Callable[[str], None] | None = None) -> AllReport:
    """Run every benchmark of :data:`SECTIONS` chosen by ``config`` in this process
    and return their figures and ratios (:class:`AllReport`).

    A section whose library is missing records why in ``skipped``; nothing is
    left out silently. ``progress(message)`` hears each section as it starts.
    """
    import datetime
    import tempfile

    say = progress or (lambda message: None)
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    t_all = time.perf_counter()
    sample = make_matmul_peak()
    peaks = [sample()]

    def peak() -> float:
        peaks.append(sample())
        return peaks[-1]

    report = AllReport(config=config, command=command, date=date, machine=machine_facts(),
                       matmul_peak=peaks[0])
    with tempfile.TemporaryDirectory(prefix="mairl-bench-") as tmp:
        for name in SECTIONS:
            if name not in config.sections:
                continue
            say(name)
            title, about = _TITLES[name]
            section = Section(name, title, about)
            t0 = time.perf_counter()
            if name == "gems_env":
                _gems_env_section(config, section)
            elif name == "mamql_update":
                _mamql_update_section(config, section, peak)
            elif name == "scaling":
                _scaling_section(config, section)
            elif name == "adapters":
                _adapter_section(config, section)
            else:
                _time_to_return_section(config, section, Path(tmp))
            section.seconds = time.perf_counter() - t0
            report.sections.append(section)
            peak()
    report.matmul_peak = max(peaks)
    report.seconds = time.perf_counter() - t_all
    return report


def _number(value: float, unit: str) -> str:
    if unit in ("FLOP", "FLOP/s"):
        return f"{value / 1e9:,.3g} G{unit}"
    if unit == "s":
        return f"{value:,.4g} s" if value >= 1e-3 else f"{value * 1e3:,.3g} ms"
    if unit in ("updates", "return"):
        return f"{value:,.4g}" + (" updates" if unit == "updates" else "")
    return f"{value:,.4g} {unit}" if value < 1000 else f"{value:,.0f} {unit}"


def format_markdown(report: AllReport) -> str:
    """The report as a markdown page: the command, date and machine, then one table
    of figures and one of ratios per section, and every reason a part was skipped."""
    m = report.machine
    out = ["# Benchmarks", "",
           f"Generated by `{report.command}` on {report.date} in {report.seconds / 60:.1f} "
           "minutes; every figure and ratio below comes from that one process.", "",
           "| machine | |", "|---|---|",
           f"| CPU | {m['cpu']} |", f"| cores | {m['cores']} |", f"| JAX | {m['jax']} |",
           f"| device | {m['devices']} x {m['device_kind']} ({m['backend']}) |",
           f"| transparent huge pages | {m.get('huge_pages', 'not recorded')} |",
           f"| float32 matmul peak (best sampled) | {report.matmul_peak / 1e9:,.1f} GFLOP/s |",
           ""]
    for s in report.sections:
        out += [f"## {s.title}", "", s.about, "", f"Section wall time: {s.seconds:.0f} s.", ""]
        if s.figures:
            out += ["| figure | value | how |", "|---|---:|---|"]
            out += [f"| {f.label} | {_number(f.value, f.unit)} | {f.note} |" for f in s.figures]
            out.append("")
        if s.ratios:
            out += ["| ratio | value |", "|---|---:|"]
            out += [f"| {r.label} | {r.value:,.3g} |" for r in s.ratios]
            out.append("")
        if s.skipped:
            out += [f"- {why}" for why in s.skipped]
            out.append("")
        if s.lines:
            out += ["```", *s.lines, "```", ""]
    return "\n".join(out)


def write_report(report: AllReport, out: str | os.PathLike | None = None,
                 json_path: str | os.PathLike | None = None) -> None:
    """Write the markdown page (:func:`format_markdown`) to ``out`` and the plain data
    (:meth:`AllReport.to_dict`) to ``json_path``, where given."""
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(format_markdown(report) + "\n")
    if json_path is not None:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(report.to_dict(), indent=2) + "\n")
