"""Tests for labkit.train: real training runs on small problems, seeded, CPU only."""

import copy
import json
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from labkit.data import TensorLoader
from labkit.train import (
    EarlyStopping,
    Evaluation,
    History,
    TrainingDiverged,
    evaluate,
    fit,
    load_model,
    pick_device,
    read_metadata,
    save_model,
    set_seed,
)

XOR_X = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
XOR_Y = torch.tensor([[0.0], [1.0], [1.0], [0.0]])


def quiet_fit(model, loader, **kwargs):
    kwargs.setdefault("progress", False)
    kwargs.setdefault("device", "cpu")
    return fit(model, loader, **kwargs)


def linear_problem(seed=0, n=64):
    """Two Gaussian blobs split by the line x0 + x1 = 0: (X float32 [n, 2], y int64 [n])."""
    generator = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 2, generator=generator)
    return X, (X[:, 0] + X[:, 1] > 0).long()


def sgd_run(seed, **kwargs):
    """A short seeded run with dropout and shuffling, so every source of randomness matters."""
    set_seed(seed)
    X, y = linear_problem(seed=1)
    model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 2))
    return quiet_fit(model, TensorLoader(X, y, batch_size=16, shuffle=True), epochs=3,
                     optimizer=torch.optim.SGD(model.parameters(), lr=0.1), loss_fn=nn.CrossEntropyLoss(),
                     **kwargs)


# ----------------------------------------------------------------------------- fit learns

def test_fit_solves_xor_with_a_torch_dataloader():
    set_seed(0)
    model = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 1), nn.Sigmoid())
    loader = DataLoader(TensorDataset(XOR_X, XOR_Y), batch_size=4)
    history = quiet_fit(model, loader, epochs=100, loss_fn=nn.BCELoss(),
                        optimizer=torch.optim.Adam(model.parameters(), lr=0.05))
    # Measured with seed 0: 100 % from epoch 6 on (seeds 0-9: 8 of 10 reach it within 50 epochs;
    # seeds 2 and 6 get stuck, a known property of a 4-unit ReLU layer, hence the fixed seed).
    assert history["train_acc"][-1] == 1.0
    assert history["train_loss"][-1] < history["train_loss"][0]
    result = evaluate(model, loader)
    assert result.accuracy == 1.0
    assert result.predictions.tolist() == [0, 1, 1, 0]


@pytest.fixture(scope="module")
def mnist():
    from labkit.data import load_mnist

    return load_mnist(verbose=False)


def test_fit_learns_mnist_subset(mnist):
    train, test = mnist
    set_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 50), nn.ReLU(), nn.Linear(50, 10))
    history = quiet_fit(model, train.subset(2000, seed=0).loader(batch_size=64, shuffle=True, seed=0),
                        epochs=3, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                        loss_fn=nn.CrossEntropyLoss(),
                        val_loader=test.subset(2000, seed=0).loader(batch_size=500))
    losses = history["train_loss"]
    assert losses[0] > losses[1] > losses[2], losses
    # Measured over seeds 0-4 (subset, loader and init all seeded with the same seed):
    #   final train_loss 0.693-0.755, final train_acc 0.818-0.841, final val_acc 0.771-0.845.
    # Thresholds = worst seed minus a margin of about 0.07 for other platforms / torch versions.
    assert losses[-1] < 0.9
    assert history["train_acc"][-1] > 0.75
    assert history["val_acc"][-1] > 0.70
    assert history["epoch"] == [1, 2, 3]
    assert history["lr"] == [0.1, 0.1, 0.1]
    assert all(t > 0 for t in history["time"])


# ----------------------------------------------------------------------------- early stopping

def overfitting_setup(seed=0):
    """Train on clean labels, validate on the same points with 30 % of the labels flipped.

    Starting from zero weights the val loss first falls, then rises as the model
    grows confident on the flipped points (for seed 0: best epoch 5).
    """
    set_seed(seed)
    X, y = linear_problem(seed)
    y_val = y.clone()
    y_val[:19] = 1 - y_val[:19]
    model = nn.Linear(2, 2)
    nn.init.zeros_(model.weight)
    nn.init.zeros_(model.bias)
    loaders = TensorLoader(X, y, batch_size=16, shuffle=True, seed=0), TensorLoader(X, y_val, batch_size=64)
    return model, loaders


@pytest.mark.parametrize("restore_best", [True, False])
def test_early_stopping_restores_best_weights(restore_best):
    model, (train_loader, val_loader) = overfitting_setup()
    snapshots = []
    history = quiet_fit(model, train_loader, val_loader=val_loader, epochs=50, loss_fn=nn.CrossEntropyLoss(),
                        optimizer=torch.optim.SGD(model.parameters(), lr=0.05),
                        early_stopping=EarlyStopping(patience=3, restore_best=restore_best),
                        callbacks=[lambda m, h: snapshots.append(copy.deepcopy(m.state_dict()))])
    val_loss = history["val_loss"]
    assert 1 < history.best_epoch < history.stopped_epoch < 50
    assert history.stopped_epoch == history.best_epoch + 3 == len(history) == len(snapshots)
    assert val_loss[history.best_epoch - 1] == min(val_loss)
    expected = snapshots[history.best_epoch - 1] if restore_best else snapshots[-1]
    other = snapshots[-1] if restore_best else snapshots[history.best_epoch - 1]
    for key, value in model.state_dict().items():
        assert torch.equal(value, expected[key]), key
    assert not all(torch.equal(value, other[key]) for key, value in model.state_dict().items())


def test_early_stopping_as_int_and_on_accuracy():
    model, (train_loader, val_loader) = overfitting_setup()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    history = quiet_fit(model, train_loader, val_loader=val_loader, epochs=50, optimizer=optimizer,
                        loss_fn=nn.CrossEntropyLoss(), early_stopping=3)
    assert history.stopped_epoch == history.best_epoch + 3

    stopper = EarlyStopping(monitor="val_acc", patience=2)
    assert stopper.mode == "max"
    history = quiet_fit(model, train_loader, val_loader=val_loader, epochs=50, optimizer=optimizer,
                        loss_fn=nn.CrossEntropyLoss(), early_stopping=stopper)
    assert history["val_acc"][history.best_epoch - 1] == max(history["val_acc"])


def test_early_stopping_on_val_needs_a_val_loader():
    model, (train_loader, _) = overfitting_setup()
    with pytest.raises(ValueError, match="val_loader"):
        quiet_fit(model, train_loader, epochs=2, loss_fn=nn.CrossEntropyLoss(),
                  optimizer=torch.optim.SGD(model.parameters(), lr=0.05), early_stopping=2)
    with pytest.raises(ValueError, match="val_accuracy"):
        quiet_fit(model, train_loader, epochs=2, loss_fn=nn.CrossEntropyLoss(),
                  optimizer=torch.optim.SGD(model.parameters(), lr=0.05),
                  early_stopping=EarlyStopping(monitor="val_accuracy"))


# ----------------------------------------------------------------------------- divergence

def test_huge_learning_rate_raises_training_diverged():
    set_seed(0)
    X = torch.randn(64, 3) * 10
    y = X @ torch.tensor([[1.0], [-2.0], [0.5]])
    model = nn.Linear(3, 1)
    with pytest.raises(TrainingDiverged) as info:
        quiet_fit(model, TensorLoader(X, y, batch_size=16), epochs=5, loss_fn=nn.MSELoss(),
                  optimizer=torch.optim.SGD(model.parameters(), lr=1e6))
    message = str(info.value)
    assert isinstance(info.value, FloatingPointError)
    assert re.search(r"epoch 1, batch \d+ of 4", message), message
    assert "1e+06" in message and "lower learning rate" in message and "lr=100000" in message
    assert "input scaling" in message


def test_infinite_input_raises_at_the_first_batch():
    X, y = linear_problem()
    X[3, 0] = float("inf")
    model = nn.Linear(2, 2)
    with pytest.raises(TrainingDiverged, match=r"epoch 1, batch 1 of 4(.|\n)*inputs of this batch"):
        quiet_fit(model, TensorLoader(X, y, batch_size=16), epochs=1, loss_fn=nn.CrossEntropyLoss(),
                  optimizer=torch.optim.SGD(model.parameters(), lr=0.1))


# ----------------------------------------------------------------------------- schedulers, callbacks

@pytest.mark.parametrize("interval, step_size, expected", [
    ("epoch", 1, [0.1, 0.05, 0.025]),          # halved after every epoch
    ("batch", 2, [0.1, 0.025, 0.00625]),       # 4 batches per epoch: halved twice per epoch
])
def test_step_lr_per_epoch_or_per_batch(interval, step_size, expected):
    X, y = linear_problem()
    model = nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_size, gamma=0.5)
    history = quiet_fit(model, TensorLoader(X, y, batch_size=16), epochs=3, optimizer=optimizer,
                        loss_fn=nn.CrossEntropyLoss(), scheduler=scheduler, scheduler_interval=interval)
    assert history["lr"] == pytest.approx(expected)


@pytest.mark.parametrize("with_val", [True, False])
def test_reduce_lr_on_plateau_gets_the_epoch_loss(with_val):
    class Recording(torch.optim.lr_scheduler.ReduceLROnPlateau):
        def step(self, metrics):
            seen.append(float(metrics))
            super().step(metrics)

    seen = []
    X, y = linear_problem()
    model = nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    history = quiet_fit(model, TensorLoader(X, y, batch_size=16), epochs=3, optimizer=optimizer,
                        loss_fn=nn.CrossEntropyLoss(), scheduler=Recording(optimizer),
                        val_loader=TensorLoader(X, 1 - y, batch_size=64) if with_val else None)
    assert seen == history["val_loss" if with_val else "train_loss"]
    with pytest.raises(ValueError, match="scheduler_interval='epoch'"):
        quiet_fit(model, TensorLoader(X, y), epochs=1, optimizer=optimizer, loss_fn=nn.CrossEntropyLoss(),
                  scheduler=Recording(optimizer), scheduler_interval="batch")


def test_callback_can_stop_training():
    calls = []

    def stop_after_two(model, history):
        calls.append((model, len(history)))
        return len(history) == 2

    X, y = linear_problem()
    model = nn.Linear(2, 2)
    history = quiet_fit(model, TensorLoader(X, y, batch_size=16), epochs=10, callbacks=[stop_after_two],
                        optimizer=torch.optim.SGD(model.parameters(), lr=0.1), loss_fn=nn.CrossEntropyLoss())
    assert len(history) == 2 and history.stopped_epoch == 2 and history.best_epoch is None
    assert calls == [(model, 1), (model, 2)]


# ----------------------------------------------------------------------------- evaluate, device

class Probe(nn.Module):
    """Returns its input (times one) and records (training, grad enabled) at each call."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.calls = []

    def forward(self, x):
        self.calls.append((self.training, torch.is_grad_enabled()))
        return x * self.scale


def test_evaluate_multiclass_accuracy_loss_and_mode():
    logits = torch.tensor([[2.0, 0, 0], [0, 3, 0], [0, 0, 1], [5, 0, 0]])
    targets = torch.tensor([0, 1, 2, 1])
    model = Probe().train()
    # batch_size=3 gives batches of 3 and 1 samples: the loss must be weighted by batch size.
    result = evaluate(model, TensorLoader(logits, targets, batch_size=3), nn.CrossEntropyLoss())
    assert isinstance(result, Evaluation)
    assert result.accuracy == 0.75
    assert result.loss == pytest.approx(F.cross_entropy(logits, targets).item())
    assert result.predictions.tolist() == [0, 1, 2, 0] and result.targets.tolist() == [0, 1, 2, 1]
    assert result.predictions.dtype == torch.int64 and result.predictions.device.type == "cpu"
    assert model.training and model.calls == [(False, False), (False, False)]
    model.eval()
    assert evaluate(model, TensorLoader(logits, targets)).loss is None
    assert not model.training
    # One-hot targets (MSE on softmax outputs, Lab 5) are compared as class indices.
    one_hot = F.one_hot(targets, 3).float()
    assert evaluate(model, TensorLoader(logits, one_hot), nn.MSELoss()).accuracy == 0.75


def test_evaluate_single_output_thresholds():
    outputs = torch.tensor([[-1.0], [0.2], [0.7], [3.0]])
    targets = torch.tensor([[0.0], [1.0], [1.0], [1.0]])
    loader = TensorLoader(outputs, targets, batch_size=4)
    probabilities = evaluate(Probe(), loader)  # no loss_fn: outputs read as probabilities, threshold 0.5
    assert probabilities.predictions.tolist() == [0, 0, 1, 1] and probabilities.accuracy == 0.75
    logits = evaluate(Probe(), loader, nn.BCEWithLogitsLoss())  # threshold 0
    assert logits.predictions.tolist() == [0, 1, 1, 1] and logits.accuracy == 1.0


def test_pick_device():
    assert pick_device().type in ("cpu", "cuda", "mps")
    assert pick_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert pick_device("cuda") == pick_device()  # falls back when the preferred one is missing


# ----------------------------------------------------------------------------- seeding

def test_set_seed_makes_runs_repeatable():
    assert set_seed(123) == 123
    first, second, other = sgd_run(123).to_dict(), sgd_run(123).to_dict(), sgd_run(7).to_dict()
    for run in (first, second, other):
        del run["time"]
    assert first == second
    assert first != other


# ----------------------------------------------------------------------------- checkpoints

class MLP(nn.Module):
    def __init__(self, hidden=8):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(4, hidden), nn.Linear(hidden, 3)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


def test_save_and_load_round_trip(tmp_path):
    set_seed(0)
    model, x = MLP(), torch.randn(5, 4)
    path = save_model(model, tmp_path / "checkpoints" / "mlp.pt", epoch=3,
                      metrics={"val_acc": np.float32(0.5), "val_loss": torch.tensor(1.25)}, lr=0.1)
    loaded = load_model(path, MLP())
    assert torch.equal(loaded(x), model(x))

    meta = read_metadata(path)
    assert meta["arch"] == "MLP" and meta["epoch"] == 3
    assert meta["metrics"] == {"val_acc": 0.5, "val_loss": 1.25}
    assert meta["extra"] == {"lr": 0.1} and meta["torch_version"] == torch.__version__
    checkpoint = torch.load(path, weights_only=True)
    assert set(checkpoint) == {"state_dict", "meta"}

    # A custom arch label is kept and does not stop loading into the same class.
    save_model(model, tmp_path / "wide.pt", arch="MLP(hidden=8)")
    assert read_metadata(tmp_path / "wide.pt")["arch"] == "MLP(hidden=8)"
    assert torch.equal(load_model(tmp_path / "wide.pt", MLP())(x), model(x))

    # A bare state_dict saved by hand loads too.
    torch.save(model.state_dict(), tmp_path / "bare.pt")
    assert torch.equal(load_model(tmp_path / "bare.pt", MLP())(x), model(x))


def test_load_into_wrong_architecture_explains_the_mismatch(tmp_path):
    path = save_model(MLP(hidden=8), tmp_path / "mlp.pt")
    with pytest.raises(ValueError) as info:
        load_model(path, MLP(hidden=16))
    message = str(info.value)
    assert "fc1.weight: expected (16, 4), found (8, 4)" in message
    assert "same arguments" in message
    with pytest.raises(ValueError, match="holds a MLP but you passed a Sequential"):
        load_model(path, nn.Sequential(nn.Linear(4, 8)))


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.pt"):
        load_model(tmp_path / "nowhere.pt", MLP())
    with pytest.raises(FileNotFoundError, match="nowhere.pt"):
        read_metadata(tmp_path / "nowhere.pt")


# ----------------------------------------------------------------------------- history, progress

def test_history_round_trip_and_errors():
    history = sgd_run(0, val_loader=TensorLoader(*linear_problem(seed=2)))
    history.name = "sgd"
    d = history.to_dict()
    assert list(d) == ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "time", "lr"]
    again = History.from_dict(json.loads(json.dumps(d)), name="sgd")
    assert again.to_dict() == d and again.epochs == history.epochs and again.name == "sgd"
    assert len(again) == 3 and again["epoch"] == [1, 2, 3]
    assert re.match(r"History\('sgd', 3 epochs, last: train_loss=", repr(history))

    with pytest.raises(KeyError, match="available keys: epoch, train_loss, train_acc"):
        history["accuracy"]
    no_val = History.from_dict({"epoch": [1], "train_loss": [0.5]})
    with pytest.raises(KeyError, match="val_loader"):
        no_val["val_loss"]
    with pytest.raises(ValueError, match="same length"):
        History.from_dict({"epoch": [1, 2], "train_loss": [0.5]})


def test_progress_false_prints_nothing_and_true_shows_bars(capsys):
    sgd_run(0, progress=False)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    sgd_run(0, progress=True)
    assert "epochs" in capsys.readouterr().err


def test_set_seed_on_the_cpu_imports_no_compiler():
    """torch.use_deterministic_algorithms imports torch._inductor (1-4 s in every grading kernel); on the CPU,
    where the labs' kernels are deterministic anyway, set_seed leaves it alone."""
    import subprocess
    import sys

    script = ("import sys, torch, labkit as lk\nlk.set_seed(0)\n"
              "print(torch.cuda.is_available(), 'torch._inductor' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    cuda, inductor = done.stdout.split()
    assert inductor == cuda, done.stdout + done.stderr  # only with a GPU is the switch thrown
