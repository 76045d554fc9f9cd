"""Rematerialisation per residual block: a model's forward pass in which each NF block
(``stageS_blockB_*`` layers, ``x + α·f(x/β)``) runs under ``keras.remat``, so the backward pass
recomputes the block's inner activations instead of keeping them; only block inputs and outputs
stay in memory (as timm's ``set_grad_checkpointing``, which checkpoints each block).

Random draws inside a block (stochastic depth) are replayed exactly: the block function starts by
setting its seed generators to their states before the block and hands back the advanced states,
so the recomputation draws the same masks and the gradients equal the plain pass's.
"""

import re

import keras

from keras_nfnets import _compat

# (the seed states are copied: PyTorch's checkpoint refuses tensors it saved being changed in place)

_BLOCK = re.compile(r"^(stage\d+_block\d+)_")


def _block_of(node):
    match = _BLOCK.match(node.operation.name)
    return match.group(1) if match else None


class _Segment:
    """Consecutive graph nodes of one block, with the tensors it takes from outside and the
    tensors it hands on."""

    def __init__(self, name, nodes):
        self.name, self.nodes = name, nodes
        produced = {id(t) for node in nodes for t in node.outputs}
        self.inputs, seen = [], set()
        for node in nodes:
            for tensor in node.input_tensors:
                if id(tensor) not in produced and id(tensor) not in seen:
                    seen.add(id(tensor))
                    self.inputs.append(tensor)
        self.outputs = []
        layers = {id(node.operation): node.operation for node in nodes}.values()
        self.seed_states = [layer.seed_generator.state for layer in layers
                            if isinstance(getattr(layer, "seed_generator", None), keras.random.SeedGenerator)]

    def finish(self, consumed_outside):
        self.outputs = [t for node in self.nodes for t in node.outputs if id(t) in consumed_outside]


def segments(model):
    """The model's graph as a list of single nodes and block :class:`_Segment` s, in run order."""
    groups = []  # (block name or None, [nodes]): consecutive nodes of one block together
    for node in _compat.graph_nodes(model):
        block = _block_of(node)
        if block is not None and groups and groups[-1][0] == block:
            groups[-1][1].append(node)
        else:
            groups.append((block, [node]))
    plan = [_Segment(block, nodes) if block is not None else nodes[0] for block, nodes in groups]
    for index, step in enumerate(plan):
        if not isinstance(step, _Segment):
            continue
        consumed_outside = {id(t) for t in model.outputs}
        for other_index, other in enumerate(plan):
            if other_index != index:
                for node in other.nodes if isinstance(other, _Segment) else [other]:
                    consumed_outside.update(id(t) for t in node.input_tensors)
        step.finish(consumed_outside)
    return plan


def run_with_remat(model, plan, inputs, operation_fn):
    """``model``'s forward pass on ``inputs`` (flat list) with each block of ``plan`` under
    ``keras.remat``."""
    tensors = {id(x): y for x, y in zip(model.inputs, inputs)}
    for step in plan:
        if not isinstance(step, _Segment):
            _compat.run_graph_node(model, step, tensors, operation_fn)
            continue
        before = [keras.ops.copy(s.value) for s in step.seed_states]  # (closed over, not an input: no gradient)

        def block(*args, step=step, before=before):
            local = {id(t): value for t, value in zip(step.inputs, args)}
            for state, value in zip(step.seed_states, before):
                state.assign(value)  # the recomputation draws what the first pass drew
            for node in step.nodes:
                _compat.run_graph_node(model, node, local, operation_fn)
            return tuple(local[id(t)] for t in step.outputs) + tuple(keras.ops.copy(s.value) for s in step.seed_states)

        values = keras.remat(block)(*[tensors[id(t)] for t in step.inputs])
        for state, value in zip(step.seed_states, values[len(step.outputs):]):
            state.assign(value)  # (JAX: the state as the outer trace sees it)
        tensors.update({id(t): value for t, value in zip(step.outputs, values)})
    return _compat.graph_outputs(model, tensors)
