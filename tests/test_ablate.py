"""labkit.ablate on a tiny real problem: 600 Fashion-MNIST images, a small MLP, one epoch."""
import pytest
import torch
from torch import nn

from labkit.ablate import Ablation, Results, make_loss, make_optimizer


def tiny_mlp(hidden=16, activation="relu", softmax=False):
    act = {"relu": nn.ReLU, "tanh": nn.Tanh}[activation]
    layers = [nn.Flatten(), nn.Linear(784, hidden), act(), nn.Linear(hidden, 10)]
    return nn.Sequential(*layers, *([nn.Softmax(dim=1)] if softmax else []))


@pytest.fixture
def data(fashion_mnist):
    return fashion_mnist.train.subset(600, seed=0), fashion_mnist.test.subset(300, seed=0)


@pytest.fixture
def ablation(data, tmp_path):
    train, test = data
    return Ablation(tiny_mlp, base={"hidden": 16, "activation": "relu", "softmax": False, "epochs": 1, "batch_size": 50,
                                    "lr": 3e-3}, train=train, test=test, cache_dir=tmp_path, progress=False)


def test_sweep_runs_one_factor_at_a_time_and_tabulates(ablation):
    results = ablation.sweep("hidden", [4, 32])
    assert [run.config["hidden"] for run in results] == [4, 32]
    assert all(run.config["activation"] == "relu" and run.config["lr"] == 3e-3 for run in results)
    assert [run.params for run in results] == [784 * 4 + 4 + 4 * 10 + 10, 784 * 32 + 32 + 32 * 10 + 10]
    assert all(0.1 < run.test_acc <= 1 and run.seconds > 0 and len(run.history["train_loss"]) == 1
               for run in results)
    table = results.table().splitlines()
    assert table[0] == "| hidden | test acc (%) | params | time (s) | epochs |" and len(table) == 4
    best_row = 2 + results.index(results.best())
    assert table[best_row].count("**") == 10
    assert results.plot().axes[0].get_xlabel() == "hidden"
    assert len(results.plot_curves().axes[0].lines) == 2


def test_grid_is_every_combination_in_order(ablation):
    results = ablation.grid(hidden=[4, 8], activation=["relu", "tanh"])
    assert [(r.config["hidden"], r.config["activation"]) for r in results] == \
        [(4, "relu"), (4, "tanh"), (8, "relu"), (8, "tanh")]
    assert isinstance(results, Results) and results.factors == ["hidden", "activation"]


def test_results_are_cached_and_reused(ablation, data, tmp_path):
    first = ablation.sweep("hidden", [4, 8])
    again = Ablation(tiny_mlp, base=ablation.base, train=data[0], test=data[1], cache_dir=tmp_path,
                     progress=False).sweep("hidden", [4, 8])
    assert [r.cached for r in first] == [False, False] and [r.cached for r in again] == [True, True]
    assert [r.test_acc for r in again] == [r.test_acc for r in first]
    assert len(list(tmp_path.glob("*.json"))) == 2


def test_a_change_to_the_model_source_invalidates_the_cache(ablation, data, tmp_path):
    ablation.run(hidden=4)

    def tiny_mlp_v2(hidden=16, activation="relu", softmax=False):  # same options, other code
        return nn.Sequential(nn.Flatten(), nn.Linear(784, hidden), nn.Tanh(), nn.Linear(hidden, 10))

    other = Ablation(tiny_mlp_v2, base=ablation.base, train=data[0], test=data[1], cache_dir=tmp_path,
                     progress=False)
    assert other.run(hidden=4).cached is False
    assert len(list(tmp_path.glob("*.json"))) == 2


def test_an_interrupted_sweep_resumes(ablation, data, tmp_path):
    calls = []

    def flaky(**options):
        calls.append(options["hidden"])
        if options["hidden"] == 8 and calls.count(8) == 1:
            raise KeyboardInterrupt  # the student stops the kernel during the second run
        return tiny_mlp(**options)

    flaky_ab = Ablation(flaky, base=ablation.base, train=data[0], test=data[1], cache_dir=tmp_path, progress=False)
    with pytest.raises(KeyboardInterrupt):
        flaky_ab.sweep("hidden", [4, 8, 12])
    resumed = flaky_ab.sweep("hidden", [4, 8, 12])
    assert [r.cached for r in resumed] == [True, False, False]


def test_a_damaged_cache_file_is_run_again(ablation, tmp_path):
    ablation.run(hidden=4)
    path = next(tmp_path.glob("*.json"))
    path.write_text("{ not json")
    assert ablation.run(hidden=4).cached is False


def test_losses_by_name_train(ablation):
    mse = ablation.run(loss="mse", softmax=True, hidden=32, epochs=2, lr=1e-2)
    hinge = ablation.run(loss="multi_margin", hidden=32, epochs=2, lr=1e-2)
    # 10 classes: chance is 10 %; both losses must learn something real in two short epochs.
    assert mse.test_acc > 0.3 and hinge.test_acc > 0.3
    assert make_loss("mse")(torch.eye(3), torch.tensor([0, 1, 2])).item() == 0.0
    with pytest.raises(ValueError, match="unknown loss 'hinge'; choose one of cross_entropy, mse, multi_margin"):
        make_loss("hinge")


def test_optimizers_by_name():
    params = [nn.Parameter(torch.zeros(2))]
    assert [type(make_optimizer(n, params, 0.1)).__name__ for n in ("adam", "SGD", "rmsprop")] == \
        ["Adam", "SGD", "RMSprop"]
    with pytest.raises(ValueError, match="unknown optimizer 'adagrad'"):
        make_optimizer("adagrad", params, 0.1)


def test_steplr_step_size_counts_iterations(ablation):
    # 600 images / batch 50 = 12 iterations per epoch; step every 5 iterations, gamma 0.5:
    # the second epoch starts after 12 iterations, i.e. 2 steps -> lr * 0.25.
    run = ablation.run(epochs=2, step_size=5, gamma=0.5, lr=1e-2, optimizer="sgd")
    assert run.history["lr"] == pytest.approx([1e-2, 2.5e-3])


def test_unknown_configuration_keys_are_refused(ablation):
    with pytest.raises(ValueError, match=r"unknown configuration key\(s\) \['dropuot'\]"):
        ablation.sweep("dropuot", [0.1])


def test_validation_curves_when_a_val_split_is_given(data, tmp_path):
    train, test = data
    rest, val = train.split(100, seed=0)
    run = Ablation(tiny_mlp, base={"epochs": 2}, train=rest, test=test, val=val, progress=False).run()
    assert len(run.history["val_acc"]) == 2 and run.cached is False
