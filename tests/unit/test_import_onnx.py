"""Reading ONNX graphs as dropout MLPs: what tf2onnx writes, and every graph that is refused."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from service.errors import ModelImportError
from service.importers.network import ImportedNetwork, dropout_rates
from service.importers.onnx_chain import read_chain
from service.importers.onnx_graph import index_graph, parse_model
from service.importers.onnx_reference import onnx_reference
from tests.onnx_graphs import dense_graph


def read(model: onnx.ModelProto) -> ImportedNetwork:
    return read_chain(index_graph(model))


def weights_of(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}


@pytest.mark.parametrize("as_nodes", [False, True])
def test_tf2onnx_dense_stack_is_read_with_its_rates_and_prefix(as_nodes: bool) -> None:
    mean, std = np.array([1.0, -2.0, 0.5]), np.array([2.0, 4.0, 0.25])
    model = dense_graph(
        (3, 6, 5, 2), rates=(0.0, 0.1, 0.2), prefix=(mean, std), constants_as_nodes=as_nodes
    )
    network = read(model)
    assert network.hidden == (6, 5)
    assert network.rates == (0.0, 0.1, 0.2)
    assert network.activation == "relu"
    assert network.head is None
    # x -> (x - mean) / std is x * (1 / std) + (-mean / std)
    np.testing.assert_allclose(network.input_scale, 1.0 / std.astype(np.float32), rtol=1e-6)
    np.testing.assert_allclose(network.input_shift, -mean / std, rtol=1e-6)
    if not as_nodes:
        kernel = weights_of(model)["dense_1/kernel"]
        np.testing.assert_array_equal(network.weights[1], kernel.T)  # stored (out, in)


def test_eval_mode_graph_has_no_rates_and_needs_them_from_the_flags() -> None:
    network = read(dense_graph((3, 6, 5, 1)))
    assert network.rates is None
    with pytest.raises(
        ModelImportError, match=r"pass --dropout with one rate per hidden layer \(2"
    ):
        dropout_rates(network, None, None)
    assert dropout_rates(network, (0.1,), 0.05) == (0.05, (0.1, 0.1))
    with pytest.raises(
        ModelImportError, match=r"gives 3 rate\(s\).*2 hidden layer\(s\) of widths 6, 5"
    ):
        dropout_rates(network, (0.1, 0.2, 0.3), None)


def test_flags_may_not_contradict_the_graphs_dropout_nodes() -> None:
    network = read(dense_graph((3, 6, 1), rates=(0.0, 0.25)))
    with pytest.raises(ModelImportError, match="leave out --dropout"):
        dropout_rates(network, (0.1,), None)


@pytest.mark.parametrize(
    ("op", "opset", "name"),
    [("Relu", 13, "relu"), ("Tanh", 13, "tanh"), ("Sigmoid", 13, "sigmoid"), ("Gelu", 20, "gelu")],
)
def test_each_activation_op_is_read(op: str, opset: int, name: str) -> None:
    assert read(dense_graph((3, 4, 4, 1), activation=op, opset=opset)).activation == name


def test_mixed_activations_are_refused() -> None:
    model = dense_graph((3, 4, 4, 1))
    next(n for n in model.graph.node if n.name == "dense_1/Relu").op_type = "Tanh"
    with pytest.raises(ModelImportError, match=r"mix activations \(relu at node 'dense_0/Relu'"):
        read(model)


@pytest.mark.parametrize("head", ["Softmax", "LogSoftmax"])
def test_trailing_softmax_means_classification(head: str) -> None:
    network = read(dense_graph((3, 4, 3), head=head))
    assert network.head == ("softmax" if head == "Softmax" else "log_softmax")


def _erf_gelu_graph(style: str) -> onnx.ModelProto:
    """One hidden layer whose GELU is spelled out with Erf, the way torch or tf2onnx write it."""
    rng = np.random.default_rng(1)
    inits = [
        numpy_helper.from_array(rng.normal(size=(4, 3)).astype(np.float32), "w0"),
        numpy_helper.from_array(np.zeros(4, np.float32), "b0"),
        numpy_helper.from_array(rng.normal(size=(1, 4)).astype(np.float32), "w1"),
        numpy_helper.from_array(np.zeros(1, np.float32), "b1"),
        numpy_helper.from_array(np.array(math.sqrt(2.0), np.float32), "sqrt2"),
        numpy_helper.from_array(np.array(1 / math.sqrt(2.0), np.float32), "inv_sqrt2"),
        numpy_helper.from_array(np.array(1.0, np.float32), "one"),
        numpy_helper.from_array(np.array(0.5, np.float32), "half"),
    ]
    gemm = [helper.make_node("Gemm", ["x", "w0", "b0"], ["h"], transB=1, name="fc0")]
    if style == "torch":  # Div by sqrt 2, times x, then times 0.5
        gelu = [
            helper.make_node("Div", ["h", "sqrt2"], ["d"]),
            helper.make_node("Erf", ["d"], ["e"]),
            helper.make_node("Add", ["e", "one"], ["a"]),
            helper.make_node("Mul", ["h", "a"], ["m"]),
            helper.make_node("Mul", ["m", "half"], ["g"]),
        ]
    else:  # tf2onnx: half of x first
        gelu = [
            helper.make_node("Mul", ["h", "half"], ["hx"]),
            helper.make_node("Mul", ["h", "inv_sqrt2"], ["d"]),
            helper.make_node("Erf", ["d"], ["e"]),
            helper.make_node("Add", ["e", "one"], ["a"]),
            helper.make_node("Mul", ["hx", "a"], ["g"]),
        ]
    out = [helper.make_node("Gemm", ["g", "w1", "b1"], ["y"], transB=1, name="fc1")]
    graph = helper.make_graph(
        gemm + gelu + out,
        "gelu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 1])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("style", ["torch", "tf2onnx"])
def test_erf_spelling_of_gelu_is_recognised(style: str) -> None:
    network = read(_erf_gelu_graph(style))
    assert network.activation == "gelu"
    assert network.hidden == (4,)


def test_erf_subgraph_that_is_not_gelu_is_refused() -> None:
    model = _erf_gelu_graph("torch")
    # Drop the final * 0.5: the subgraph now computes 2 GELU(x), and "m" feeds the next Gemm.
    del model.graph.node[5]
    model.graph.node[5].input[0] = "m"
    with pytest.raises(ModelImportError, match="branches"):
        read(model)


# Each bad graph: (edit of a good tf2onnx graph, what the message must say).
def _conv(model: onnx.ModelProto) -> None:
    model.graph.node[2].op_type = "Conv"  # the first Relu


def _elu(model: onnx.ModelProto) -> None:
    model.graph.node[2].op_type = "Elu"


def _branch(model: onnx.ModelProto) -> None:
    # A second reader of the first Dense output: a skip connection.
    model.graph.node.insert(3, helper.make_node("Relu", ["dense_0/out"], ["skip"], name="skip"))


def _outside(model: onnx.ModelProto) -> None:
    model.graph.initializer.append(numpy_helper.from_array(np.ones(2, np.float32), "orphan"))
    model.graph.node.append(helper.make_node("Neg", ["orphan"], ["orphan_out"], name="lost"))


def _second_input(model: onnx.ModelProto) -> None:
    model.graph.input.append(helper.make_tensor_value_info("mask", TensorProto.FLOAT, [1, 3]))


def _computed_weight(model: onnx.ModelProto) -> None:
    kernel = model.graph.node[0].input[1]
    model.graph.node.insert(0, helper.make_node("Neg", [kernel], ["negated"], name="make_w"))
    model.graph.node[1].input[1] = "negated"


def _mismatched(model: onnx.ModelProto) -> None:
    inits = model.graph.initializer
    index = next(i for i, init in enumerate(inits) if init.name == "dense_1/kernel")
    inits[index].CopyFrom(numpy_helper.from_array(np.ones((5, 1), np.float32), "dense_1/kernel"))


def _missing(model: onnx.ModelProto) -> None:
    inits = model.graph.initializer
    del inits[next(i for i, init in enumerate(inits) if init.name == "dense_1/bias")]


def _batched_weight(model: onnx.ModelProto) -> None:
    inits = model.graph.initializer
    index = next(i for i, init in enumerate(inits) if init.name == "dense_0/kernel")
    inits[index].CopyFrom(numpy_helper.from_array(np.ones((2, 3, 8), np.float32), "dense_0/kernel"))


def _random_ratio(model: onnx.ModelProto) -> None:
    ratio = helper.make_node("RandomUniform", [], ["r"], name="rng", shape=[1], dtype=1)
    model.graph.node.insert(0, ratio)
    dropout = next(n for n in model.graph.node if n.op_type == "Dropout")
    dropout.input[1] = "r"


def _dropout_after_last(model: onnx.ModelProto) -> None:
    identity = model.graph.node[-1]
    model.graph.initializer.append(numpy_helper.from_array(np.array(0.1, np.float32), "late_r"))
    model.graph.node.insert(
        len(model.graph.node) - 1,
        helper.make_node("Dropout", [identity.input[0], "late_r"], ["late"], name="late"),
    )
    identity.input[0] = "late"


BAD_GRAPHS = {
    "conv": (_conv, r"node 'dense_0/Relu' \(Conv, index 2\): it is not part of an MLP chain"),
    "elu": (_elu, r"node 'dense_0/Relu' \(Elu, index 2\).*Relu, Tanh, Sigmoid, Gelu"),
    "branch": (_branch, r"the graph branches: tensor 'dense_0/out' is read by 2 nodes"),
    "outside": (_outside, r"node 'lost' \(Neg, index \d+\): it lies outside the chain"),
    "second input": (_second_input, r"2 data inputs \('input_1', 'mask'\)"),
    "computed weight": (
        _computed_weight,
        r"'dense_0/MatMul'.*computed at run time by node 'make_w'",
    ),
    "mismatched": (
        _mismatched,
        r"'dense_1/MatMul' \(MatMul, index \d+\): its weight takes 5 inputs, "
        r"but the layer before gives 8",
    ),
    "missing": (_missing, r"'dense_1/BiasAdd'.*reads tensor 'dense_1/bias'.*missing initializer"),
    "batched weight": (_batched_weight, r"'dense_0/MatMul'.*shape \[2, 3, 8\].*2-D"),
    "random ratio": (
        _random_ratio,
        r"'dropout_1/Dropout' \(Dropout, index \d+\): its ratio 'r' is computed at run time "
        r"by node 'rng'",
    ),
    "dropout after last": (
        _dropout_after_last,
        r"node 'late' \(Dropout, index \d+\): it follows an affine layer directly",
    ),
}


@pytest.mark.parametrize("case", list(BAD_GRAPHS))
def test_bad_graph_is_refused_naming_the_node(case: str) -> None:
    edit, message = BAD_GRAPHS[case]
    model = dense_graph((3, 8, 1), rates=(0.0, 0.1))
    edit(model)
    with pytest.raises(ModelImportError, match=message):
        read(model)


def test_tanh_approximate_gelu_is_refused() -> None:
    model = dense_graph((3, 8, 1), activation="Gelu", opset=20)
    model.graph.node[2].attribute.append(helper.make_attribute("approximate", "tanh"))
    with pytest.raises(ModelImportError, match="tanh-approximate GELU"):
        read(model)


def test_bytes_that_are_not_onnx_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelImportError, match=r"model\.onnx is not an ONNX model"):
        parse_model(b"this is a CSV file,\n1,2,3\n", tmp_path / "model.onnx")


def test_opset_onnx_runtime_cannot_run_is_refused() -> None:
    model = dense_graph((3, 4, 1))
    model.opset_import[0].version = 99
    with pytest.raises(
        ModelImportError, match=r"ONNX Runtime .* cannot run m.onnx \(opsets: ai.onnx 99\)"
    ):
        onnx_reference(model, [], "m.onnx")


def test_train_mode_dropout_runs_deterministically_in_the_reference() -> None:
    model = dense_graph((3, 8, 1), rates=(0.5, 0.5))
    for node in model.graph.node:  # what torch writes in train mode: training_mode = True
        if node.op_type == "Dropout":
            node.input.append("training")
    model.graph.initializer.append(numpy_helper.from_array(np.array(True), "training"))
    run = onnx_reference(model, [], "m.onnx")
    rows = np.random.default_rng(0).normal(size=(16, 3))
    without_dropout = onnx_reference(dense_graph((3, 8, 1)), [], "same weights, no Dropout")
    np.testing.assert_array_equal(run(rows), without_dropout(rows))
