"""``mairl bench mamql``: the FLOP counts it divides by, and the printed figures."""

import jax
import numpy as np
import pytest

import envs
from mairl.algos import MAMQLConfig, make_mamql
from mairl.algos.common import view_shape
from mairl.bench import paper_critic_layer_cases
from mairl.cli import main
from mairl.cli.benchmarks import (
    cost_flops,
    critic_layer_flops,
    flops_of,
    make_update_loop,
    training_flops,
)
from mairl.data import Demonstrations
from mairl.train import sample_batch, train_data


def test_hand_count_of_the_paper_critic():
    # (5, 15, 15) -> conv 5x5 valid (11, 11, 64) -> conv 3x3 valid (9, 9, 64) -> 5184
    # -> 1024 -> 1024 -> 5: multiply-adds per output element times outputs.
    layers = critic_layer_flops("gems-paper", (5, 15, 15), 5)
    macs = [11 * 11 * 64 * 5 * 25, 9 * 9 * 64 * 64 * 9, 5184 * 1024, 1024 * 1024, 1024 * 5]
    assert layers == [2.0 * m for m in macs]
    assert training_flops([1.0, 2.0]) == 3 * 3.0 - 1.0  # no input gradient for the first layer


def test_xla_cost_analysis_agrees_with_the_hand_count():
    gems = envs.make("gems")
    batch = 32
    algo = make_mamql(MAMQLConfig(mode="value_expert", batch_size=batch), num_agents=2,
                      obs_shape=gems.obs_shape, num_actions=5, obs_transform=gems.agent_view)
    t = 8  # transitions: their content does not change the cost
    obs = np.zeros((t, 2, *gems.obs_shape), np.float32)
    done = np.arange(t) == t - 1
    data = train_data(Demonstrations.create(obs, np.zeros((t, 2), np.int32), obs, done, ~done))
    state = algo.init(jax.random.key(1), sample_batch(jax.random.key(2), data, batch, False))
    one_update, loop = make_update_loop(algo)
    layers = critic_layer_flops("mlp", view_shape(gems.obs_shape, gems.agent_view), 5)
    hand = 2 * 2 * batch * training_flops(layers)  # agents x (s, s') x batch
    flops = flops_of(one_update, state, data, jax.random.key(3))
    assert flops == pytest.approx(hand, rel=0.1)
    # the loop's trip count is an argument: XLA counts its body, one update, once
    loop_flops = cost_flops(jax.jit(loop).lower(state, data, jax.random.key(3), 1).compile())
    assert loop_flops == pytest.approx(flops, rel=0.01)


@pytest.mark.slow
def test_bench_mamql_quick_prints_every_figure(capsys):
    main(["bench", "mamql", "--quick"])
    out = capsys.readouterr().out
    assert "machine:" in out
    assert "float32 matmul peak" in out
    for critic in ("gems-paper", "mlp"):
        assert f"mamql value_expert, critic {critic}, batch" in out
    assert out.count("GFLOP/update by XLA cost analysis") == 2
    assert out.count("seed-updates/s") == 2
    assert "8 seeds / 1 seed" in out


def test_the_paper_critic_layers_agree_across_convolution_implementations():
    rows = paper_critic_layer_cases(lambda: 1e11, view=(5, 7, 7), samples=3, repeats=1)
    assert [(r["layer"], r["impl"]) for r in rows] == [
        ("conv 5x5, 5->64", "im2col"), ("conv 5x5, 5->64", "lax"),
        ("conv 5x5, 5->64", "lax per agent"), ("conv 3x3, 64->64", "im2col"),
        ("conv 3x3, 64->64", "lax"), ("conv 3x3, 64->64", "lax per agent"),
        ("dense 64->1024", "matmul")]
    for r in rows:
        assert r["max_abs_diff"] < 1e-4, r
        assert r["forward_s"] > 0 and r["training_s"] > 0
    # hand counts, 2 agents x 3 maps x: 3 x 3 outputs x 25 x 5 x 64,
    # then 1 x 1 x 9 x 64 x 64, then 64 x 1024
    assert rows[0]["flops"] == 2 * 3 * 2 * 9 * 25 * 5 * 64
    assert rows[3]["flops"] == 2 * 3 * 2 * 9 * 64 * 64
    assert rows[6]["flops"] == 2 * 3 * 2 * 64 * 1024
    # training counts the kernel gradient only for the first layer, both for the others
    for i, passes in ((0, 2), (3, 3)):
        rate = passes * rows[i]["flops"] / rows[i]["training_s"]
        assert rows[i]["training_fraction"] == pytest.approx(rate / 1e11)
    with pytest.raises(ValueError, match="view"):
        paper_critic_layer_cases(lambda: 1e11, view=(5, 6, 6), samples=1, repeats=1)


def test_the_machine_facts_say_whether_large_buffers_get_huge_pages(tmp_path):
    from mairl.bench import huge_pages

    f = tmp_path / "enabled"
    f.write_text("always [madvise] never\n")
    asked = {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=1:glibc.malloc.hugetlb=1"}
    assert huge_pages(f, asked).startswith("madvise, asked for")
    assert huge_pages(f, {}).startswith("madvise, not asked for")
    assert huge_pages(f, {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}).startswith("madvise, not")
    f.write_text("[always] madvise never\n")
    assert huge_pages(f, {}) == "always (kernel)"
    f.write_text("always madvise [never]\n")
    assert huge_pages(f, asked) == "never"
    assert huge_pages(tmp_path / "missing", asked).startswith("unknown")
