"""The mistakes students make with `fit` and `evaluate` get a message about their code.

Each case is a real mistake on real MNIST batches (512 training images, seed 0). The test first
shows the bare error PyTorch gives for it (or that it gives none), then that labkit's message
says what to change; the original error stays attached as the cause.
"""
import pytest
import torch
from torch import nn

import labkit as lk
from labkit.train import FirstBatchError, TrainingDiverged, evaluate, fit


@pytest.fixture(scope="module")
def batches(mnist):
    train, _ = mnist
    return train.subset(512, seed=0).loader(64, shuffle=True, seed=0)


def train(model, loader, lr=0.1, loss_fn=None):
    return fit(model, loader, epochs=1, optimizer=torch.optim.SGD(model.parameters(), lr=lr),
               loss_fn=loss_fn or nn.CrossEntropyLoss(), progress=False, device="cpu")


def raw_error(model, loader, loss_fn=None):
    """What PyTorch alone says for the first batch (None: no error)."""
    x, y = next(iter(loader))
    try:
        (loss_fn or nn.CrossEntropyLoss())(model(x), y)
    except Exception as error:  # noqa: BLE001
        return error
    return None


class FloatLabels:
    """A loader whose labels were made as float numbers (e.g. read from a CSV)."""

    def __init__(self, loader):
        self.loader = loader

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        return ((x, y.float()) for x, y in self.loader)


class ViewsTheBatchAway(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(392, 10)

    def forward(self, x):
        return self.fc(x.view(-1, 392))  # half an image per row: 128 rows for a batch of 64


def test_images_not_flattened(batches):
    model = nn.Sequential(nn.Linear(784, 10))
    assert "mat1 and mat2 shapes cannot be multiplied (1792x28 and 784x10)" in str(raw_error(model, batches))
    with pytest.raises(FirstBatchError) as info:
        train(model, batches)
    message = str(info.value)
    assert "layer `0` (Linear(in_features=784, out_features=10, bias=True)) takes 784 values per sample" in message
    assert "input of shape [64, 1, 28, 28]" in message and "1 x 28 x 28 = 784" in message
    assert "add nn.Flatten() before this layer (or x = x.flatten(1) in forward)" in message
    assert "PyTorch said: RuntimeError: mat1 and mat2" in message
    assert isinstance(info.value.__cause__, RuntimeError)


def test_a_hidden_layer_that_does_not_match(batches):
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 50), nn.ReLU(), nn.Linear(40, 10))
    assert "(64x50 and 40x10)" in str(raw_error(model, batches))
    with pytest.raises(FirstBatchError, match=r"(?s)layer `3` .* takes 40 values per sample, but got an input of "
                                              r"shape \[64, 50\].*Make in_features of this layer match what "
                                              r"reaches it \(50 here\)"):
        train(model, batches)


def test_fewer_outputs_than_classes(batches):
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 5))
    error = raw_error(model, batches)
    assert isinstance(error, IndexError) and "out of bounds" in str(error)
    with pytest.raises(FirstBatchError) as info:
        train(model, batches)
    message = str(info.value)
    x, y = next(iter(batches))
    assert message.startswith(f"the model gives 5 outputs per sample (one score per class, classes 0..4), "
                              f"but this batch has label {int(y.max())}: there are at least {int(y.max()) + 1} "
                              f"classes. Give the last layer {int(y.max()) + 1} outputs")
    with pytest.raises(FirstBatchError, match="5 outputs per sample"):  # evaluate checks the same
        evaluate(model, batches)


def test_float_labels(batches):
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    assert "expected target dtype to be Long" in str(raw_error(model, FloatLabels(batches)))
    with pytest.raises(FirstBatchError) as info:
        train(model, FloatLabels(batches))
    message = str(info.value)
    assert "the labels are float32 numbers, but a classification loss wants class indices as integers" in message
    assert "y.long()" in message and "PyTorch said: RuntimeError: expected target dtype" in message


def test_a_reshape_that_mixes_the_samples(batches):
    model = ViewsTheBatchAway()
    error = raw_error(model, batches)
    assert "Expected input batch_size (128) to match target batch_size (64)" in str(error)
    with pytest.raises(FirstBatchError, match=r"(?s)returned 128 rows of outputs for a batch of 64 samples.*"
                                              r"x\.flatten\(1\) or x\.view\(len\(x\), -1\)"):
        train(model, batches)


def test_conv_layers_name_channels_and_sizes(batches):
    rgb = nn.Sequential(nn.Conv2d(3, 6, 5))
    with pytest.raises(FirstBatchError, match=r"takes 3 input channel\(s\), but got an input of shape "
                                              r"\[64, 1, 28, 28\] with 1 channel\(s\)"):
        evaluate(rgb, batches)
    shrunk = nn.Sequential(nn.Conv2d(1, 6, 5), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.MaxPool2d(2),
                           nn.Conv2d(16, 120, 5), nn.Flatten(), nn.Linear(120, 10))
    with pytest.raises(FirstBatchError, match=r"(?s)layer `4` .* has a 5x5 kernel, but its input \[64, 16, 4, 4\] is "
                                              r"smaller than that.*lk.trace_layers"):
        train(shrunk, batches)


def test_a_failure_inside_forward_points_at_forward(batches):
    class Reshapes(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(784, 10)

        def forward(self, x):
            return self.fc(x.reshape(len(x), 28, 29))  # a wrong reshape before any layer

    with pytest.raises(FirstBatchError, match=r"(?s)came from the code of Reshapes.forward itself.*"
                                              r"PyTorch said: RuntimeError: shape '\[64, 28, 29\]'"):
        train(Reshapes(), batches)


def test_a_failed_first_batch_leaves_running_statistics_as_the_failing_pass_left_them(batches):
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.BatchNorm1d(32), nn.Linear(30, 10))
    with pytest.raises(FirstBatchError):
        train(model, batches)
    assert int(model[2].num_batches_tracked) == 1  # the pass that failed; not a second time for the diagnosis


def test_a_huge_learning_rate_explodes_with_a_message(batches):
    lk.set_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    with pytest.raises(TrainingDiverged) as info:
        train(model, batches, lr=1e30)
    message = str(info.value)
    assert message.startswith("training exploded: the loss rose from 2.")
    assert "at epoch 1, batch 2 of 8 (more than 1000 times where it started), with learning rate 1e+30" in message
    assert "lower learning rate" in message


def test_a_good_model_trains_as_before(batches):
    lk.set_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    history = train(model, batches, lr=0.5)
    after = evaluate(model, batches, nn.CrossEntropyLoss())
    assert len(history) == 1 and history.stopped_epoch is None
    assert after.loss < 1.5 and after.accuracy > 0.6  # from a loss of about 2.3 (10 classes) at the start
