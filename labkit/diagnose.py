"""What went wrong between a model and its first batch, said in terms of the student's code.

`fit` and `evaluate` send their first batch through `first_batch`: when the forward pass or the
loss fails there, or the labels cannot be the model's classes, it raises `FirstBatchError` with
what the code must change (the input shape against the first layer, the number of outputs against
the classes, the labels' dtype) instead of PyTorch's message about matrices and targets.  The
original error stays attached as the cause.  Every later batch runs without any of this.
"""
import math

import torch
from torch import nn

__all__ = ["FirstBatchError", "first_batch"]


class FirstBatchError(ValueError):
    """Raised by `fit` and `evaluate` when the model and the first batch do not fit together."""


def _shape(t) -> str:
    return f"[{', '.join(str(n) for n in t.shape)}]" if isinstance(t, torch.Tensor) else type(t).__name__


def _described(t) -> str:
    return f"shape {_shape(t)}, dtype {str(t.dtype).removeprefix('torch.')}" if isinstance(t, torch.Tensor) \
        else f"a {type(t).__name__}"


def _failing_layer(model: nn.Module, x):
    """(name, module, input) of the innermost layer whose forward raised, by running the batch again with
    hooks; (None, None, None) when the error came from the model's own forward code."""
    entered, hooks = [], []
    for name, module in model.named_modules():
        def pre(mod, args, name=name):
            entered.append((name, mod, args[0] if args else None))

        def post(mod, args, output):
            entered.pop()
        hooks += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
    buffers = [b.detach().clone() for b in model.buffers()]  # running statistics, put back afterwards
    try:
        with torch.no_grad():
            model(x)  # in the same train/eval mode as the pass that failed, so it fails the same way
    except Exception:  # noqa: BLE001 - the same error as the first pass, seen again to locate it
        pass
    finally:
        with torch.no_grad():
            for buffer, saved in zip(model.buffers(), buffers, strict=True):
                buffer.copy_(saved)
        for hook in hooks:
            hook.remove()
    # The outermost module is the model itself: its failure is "in forward" unless a layer inside failed.
    inner = [entry for entry in entered if entry[1] is not model]
    if inner:
        return inner[-1]
    return ("model", model, x) if not list(model.children()) else (None, None, None)  # a bare nn.Linear


def _layer_advice(name, layer, got, x) -> str:
    where = f"layer `{name}` ({layer if not list(layer.children()) else type(layer).__name__})"
    if not isinstance(got, torch.Tensor):
        return f"{where} got {_described(got)}, not a tensor."
    if isinstance(layer, nn.Linear) and got.shape[-1:] != (layer.in_features,):
        text = (f"{where} takes {layer.in_features} values per sample, but got an input of shape {_shape(got)}: "
                f"it multiplies the last dimension ({got.shape[-1] if got.ndim else '?'}) by its weights.")
        per_sample = math.prod(got.shape[1:]) if got.ndim > 1 else None
        if got.ndim > 2 and per_sample == layer.in_features:
            return (text + f" Each sample is {' x '.join(str(n) for n in got.shape[1:])} = {per_sample} values, "
                    f"not yet flattened: add nn.Flatten() before this layer (or x = x.flatten(1) in forward).")
        return (text + f" Make in_features of this layer match what reaches it ({got.shape[-1]} here"
                + (f", {per_sample} per sample once flattened" if got.ndim > 2 else "")
                + "), or change the layer before it.")
    if isinstance(layer, nn.modules.conv._ConvNd):
        dims = layer.weight.ndim - 2
        if got.ndim == dims + 1 and x.ndim == dims + 1:
            return (f"{where} takes a batch of shape [B, channels, ...] ({dims + 2} dimensions), but got "
                    f"{_shape(got)}: the channel dimension is missing. Add it: x.unsqueeze(1).")
        if got.ndim >= dims + 1 and got.shape[-dims - 1] != layer.in_channels:
            return (f"{where} takes {layer.in_channels} input channel(s), but got an input of shape {_shape(got)} "
                    f"with {got.shape[-dims - 1]} channel(s) (dimension 1). Make in_channels match the layer before "
                    f"it (its out_channels), or the images' channels for the first layer.")
        if any(s < k for s, k in zip(got.shape[-dims:], layer.kernel_size, strict=True)):
            return (f"{where} has a {'x'.join(map(str, layer.kernel_size))} kernel, but its input {_shape(got)} is "
                    f"smaller than that: too much pooling or too little padding before it. Print the shape after "
                    f"every layer (lk.trace_layers(model, x)) to see where it shrinks.")
    return f"{where} failed on an input of shape {_shape(got)}."


def _forward_failed(model, x, error) -> FirstBatchError:
    name, layer, got = _failing_layer(model, x)
    if layer is not None:
        advice = _layer_advice(name or type(layer).__name__, layer, got, x)
    else:
        advice = (f"The error came from the code of {type(model).__name__}.forward itself, not from one of its "
                  f"layers: check the reshapes and operations there for a batch of shape {_shape(x)}.")
    return FirstBatchError(
        f"the model could not take the first batch (inputs of {_described(x)}).\n{advice}\n"
        f"PyTorch said: {type(error).__name__}: {error}")


def _label_problem(outputs, y):
    """A message when the labels cannot go with these outputs in any classification loss, else None."""
    if not (isinstance(outputs, torch.Tensor) and isinstance(y, torch.Tensor)) or outputs.ndim != 2:
        return None
    rows, classes = outputs.shape
    if y.ndim >= 1 and len(y) != rows:
        return (f"the model returned {rows} rows of outputs for a batch of {len(y)} samples "
                f"(outputs {_shape(outputs)}, labels {_shape(y)}): a reshape in the model mixes the samples. "
                f"Keep the batch dimension: x.flatten(1) or x.view(len(x), -1), not x.view(-1, n).")
    if y.ndim == 1 and classes > 1 and not y.is_floating_point() and y.numel():
        low, high = int(y.min()), int(y.max())
        if low < 0 or high >= classes:
            return (f"the model gives {classes} outputs per sample (one score per class, classes 0..{classes - 1}), "
                    f"but this batch has label {high if high >= classes else low}"
                    + (f": there are at least {high + 1} classes. Give the last layer {high + 1} outputs "
                       f"(e.g. nn.Linear(..., {high + 1}))" if high >= classes else
                       ": labels must be class indices 0, 1, ...") + ".")
    return None


def _loss_failed(outputs, y, loss_fn, error) -> FirstBatchError:
    name = getattr(loss_fn, "__name__", type(loss_fn).__name__)
    if isinstance(y, torch.Tensor) and isinstance(outputs, torch.Tensor):
        if outputs.ndim == 2 and outputs.shape[1] > 1 and y.ndim == 1 and y.is_floating_point():
            advice = (f"the labels are {str(y.dtype).removeprefix('torch.')} numbers, but a classification loss "
                      f"wants class indices as integers (int64). Convert them, y.long(), where the labels are made.")
        elif outputs.shape != y.shape and (outputs.is_floating_point() != y.is_floating_point()
                                           or outputs.numel() == y.numel()):
            advice = (f"this loss compares outputs {_described(outputs)} with targets {_described(y)}. For MSE or "
                      f"binary cross-entropy the targets need the outputs' shape and a float dtype "
                      f"(e.g. y.float().view_as(outputs)); for cross-entropy the outputs are [batch, classes] "
                      f"scores and the targets integer class indices [batch].")
        elif y.dtype != outputs.dtype and outputs.shape == y.shape:
            advice = f"the targets are {str(y.dtype).removeprefix('torch.')} but the outputs " \
                     f"{str(outputs.dtype).removeprefix('torch.')}: convert the targets, y.to(outputs.dtype)."
        else:
            advice = f"it got outputs of {_described(outputs)} and targets of {_described(y)}."
    else:
        advice = f"it got outputs of {_described(outputs)} and targets of {_described(y)}."
    return FirstBatchError(f"the loss ({name}) failed on the first batch: {advice}\n"
                           f"PyTorch said: {type(error).__name__}: {error}")


def first_batch(model, x, y, loss_fn=None):
    """(outputs, loss) of the first batch, as `model(x)` and `loss_fn(outputs, y)` (loss None without
    loss_fn), with every failure turned into a `FirstBatchError` that says what to change."""
    try:
        outputs = model(x)
    except Exception as error:  # noqa: BLE001 - any failure of the student's model gets explained
        raise _forward_failed(model, x, error) from error
    problem = _label_problem(outputs, y)
    if problem is not None:
        raise FirstBatchError(problem)
    if loss_fn is None:
        return outputs, None
    try:
        return outputs, loss_fn(outputs, y)
    except Exception as error:  # noqa: BLE001
        raise _loss_failed(outputs, y, loss_fn, error) from error
