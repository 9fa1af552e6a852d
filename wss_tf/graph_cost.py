"""What a traced step costs, read from its graph: the FLOPs of its dense ops and the backbone passes it runs.

FLOPs count the convolutions (forward and both backward ops, depthwise included), matmuls and einsums, at 2 per
multiply-add, from static shapes; batch norms, activations, resizes and the optimizer update are not counted, so the
figure is the dense work the step must do. Backbone passes are found by the backbone's first convolution: each
forward Conv2D that reads its kernel is a forward pass, one whose following batch norm updates its moving mean
is a training-mode pass, and each Conv2DBackpropFilter on the same input is a backward pass.
"""
from __future__ import annotations

import dataclasses
import string

import numpy as np
import tensorflow as tf

_CONV = ("Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter")
_DEPTHWISE = ("DepthwiseConv2dNative", "DepthwiseConv2dNativeBackpropInput",
              "DepthwiseConv2dNativeBackpropFilter")
_CALLS = ("PartitionedCall", "StatefulPartitionedCall")


@dataclasses.dataclass
class FlopCount:
    total: int = 0
    by_type: dict = dataclasses.field(default_factory=dict)
    unknown_shapes: list = dataclasses.field(default_factory=list)  # dense ops whose shapes were not static

    def add(self, op_type: str, flops: int):
        self.total += flops
        self.by_type[op_type] = self.by_type.get(op_type, 0) + flops


def _shape(tensor):
    shape = tensor.shape
    if shape.rank is None or any(d is None for d in shape.as_list()):
        return None
    return shape.as_list()


def _conv_flops(op) -> int | None:
    """2 * output elements * kernel window * input channels (backward ops: the forward's output is their input)."""
    if op.type == "Conv2D":
        out, kernel = _shape(op.outputs[0]), _shape(op.inputs[1])
    elif op.type == "Conv2DBackpropInput":
        out, kernel = _shape(op.inputs[2]), _shape(op.inputs[1])
    else:  # Conv2DBackpropFilter: the filter's shape is the output's
        out, kernel = _shape(op.inputs[2]), _shape(op.outputs[0])
    if out is None or kernel is None:
        return None
    return 2 * int(np.prod(out)) * kernel[0] * kernel[1] * kernel[2]


def _depthwise_flops(op) -> int | None:
    if op.type == "DepthwiseConv2dNative":
        out, kernel = _shape(op.outputs[0]), _shape(op.inputs[1])
    elif op.type == "DepthwiseConv2dNativeBackpropInput":
        out, kernel = _shape(op.inputs[2]), _shape(op.inputs[1])
    else:
        out, kernel = _shape(op.inputs[2]), _shape(op.outputs[0])
    if out is None or kernel is None:
        return None
    return 2 * int(np.prod(out)) * kernel[0] * kernel[1]


def _matmul_flops(op) -> int | None:
    out, a = _shape(op.outputs[0]), _shape(op.inputs[0])
    if out is None or a is None:
        return None
    transposed = op.get_attr("transpose_a") if op.type == "MatMul" else op.get_attr("adj_x")
    inner = a[-2] if transposed else a[-1]
    return 2 * int(np.prod(out)) * inner


def _einsum_flops(op) -> int | None:
    """2 * the product of every index's size (a contraction visits each combination once)."""
    inputs, _ = op.get_attr("equation").decode().replace(" ", "").split("->")
    sizes = {}
    for spec, tensor in zip(inputs.split(","), op.inputs):
        shape = _shape(tensor)
        if shape is None or "." in spec:
            return None
        sizes.update(zip(spec, shape))
    return 2 * int(np.prod([sizes[c] for c in sizes if c in string.ascii_letters]))


_COUNTERS = {**{t: _conv_flops for t in _CONV}, **{t: _depthwise_flops for t in _DEPTHWISE},
             "MatMul": _matmul_flops, "BatchMatMulV2": _matmul_flops, "BatchMatMulV3": _matmul_flops,
             "Einsum": _einsum_flops}


def _live_operations(graph):
    """The ops of `graph` that run: those its outputs or its stateful ops (variable updates) depend on; gradient
    ops nobody reads (an input gradient of the first convolution) are pruned at run time, so they are left out.
    Functions it calls are walked in full."""
    roots = [t.op for t in graph.outputs] + [op for op in graph.get_operations() if op.op_def.is_stateful]
    live, stack = set(), list(roots)
    while stack:
        op = stack.pop()
        if op in live:
            continue
        live.add(op)
        stack.extend(t.op for t in op.inputs)
        stack.extend(op.control_inputs)
    for op in graph.get_operations():
        if op not in live:
            continue
        yield op
        if op.type in _CALLS:
            function = graph._get_function(op.get_attr("f").name)  # noqa: SLF001 (no public route to the body)
            if function is not None and getattr(function, "graph", None) is not None:
                yield from _live_operations(function.graph)


def _function_graphs(graph):
    for op in graph.get_operations():
        if op.type in _CALLS:
            function = graph._get_function(op.get_attr("f").name)  # noqa: SLF001
            if function is not None and getattr(function, "graph", None) is not None:
                yield function.graph
                yield from _function_graphs(function.graph)


def count_flops(graph: tf.Graph) -> FlopCount:
    count = FlopCount()
    for op in _live_operations(graph):
        counter = _COUNTERS.get(op.type)
        if counter is None:
            continue
        flops = counter(op)
        if flops is None:
            count.unknown_shapes.append(op.name)
        else:
            count.add(op.type, flops)
    return count


@dataclasses.dataclass(frozen=True)
class BackbonePasses:
    training: int  # forward passes with batch statistics (they update the moving mean)
    inference: int  # forward passes with the moving statistics
    backward: int  # passes whose gradient reaches the first convolution's kernel

    def __str__(self):
        return f"{self.training} training-mode + {self.inference} inference-mode forward, {self.backward} backward"


def _source_variable_handle(tensor):
    """The captured resource a ReadVariableOp (through casts and identities) reads, or None."""
    op = tensor.op
    while op.type in ("Identity", "Cast", "IdentityN"):
        op = op.inputs[0].op
    if op.type != "ReadVariableOp":
        return None
    return op.inputs[0]


def count_backbone_passes(concrete_function, backbone) -> BackbonePasses:
    """Backbone passes in a traced function (every replica's, when it runs under a strategy)."""
    layers = [layer for layer in backbone._flatten_layers(include_self=False, recursive=True)]  # noqa: SLF001
    first_conv = next(layer for layer in layers if getattr(layer, "kernel", None) is not None
                      and len(layer.kernel.shape) == 4)
    first_norm = next(layer for layer in layers if getattr(layer, "moving_mean", None) is not None)
    graph = concrete_function.graph
    graphs = [graph] + [g for g in _function_graphs(graph)]  # a jit-compiled pass is a nested function
    internal = {}
    for g in graphs:
        for external, placeholder in g.captures:
            internal.setdefault(id(external), []).append(placeholder)

    def handles(variable):
        found = set()
        for component in getattr(variable, "values", (variable,)):
            component = getattr(component, "_variable", component)  # Keras variable -> tf.Variable
            found.update(p.ref() for p in internal.get(id(component.handle), ()))
        return found

    kernels, means = handles(first_conv.kernel), handles(first_norm.moving_mean)
    ops = list(_live_operations(graph))
    forward = [op for op in ops if op.type == "Conv2D"
               and (h := _source_variable_handle(op.inputs[1])) is not None and h.ref() in kernels]
    conv_inputs = {op.inputs[0].ref() for op in forward}
    backward = [op for op in ops if op.type == "Conv2DBackpropFilter" and op.inputs[0].ref() in conv_inputs]
    training = [op for op in ops if op.type in ("AssignVariableOp", "AssignSubVariableOp", "AssignAddVariableOp")
                and op.inputs[0].ref() in means]
    return BackbonePasses(training=len(training), inference=len(forward) - len(training), backward=len(backward))
