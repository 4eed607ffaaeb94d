"""The buffers of repeated evaluations of one network on one batch size (training).

    ws = Workspace(net, n_rows)
    params = ws.load(point)                  # the point's groups, per layer, in ws's own buffer
    acts = net.forward_all(x, params, ws)    # outputs into ws.acts, bases into ws.tapes
    net.backward(acts, g, ws.grads, params, ws, need_dx=False)
    grad = ws.grad.copy()                    # dL/dparams, flat, aligned with net.params

A workspace is what makes an evaluation cheap to repeat: every layer's output and dL/dx buffer,
the parameters of the point being evaluated and their gradient (flat, with every layer's views
bound once), and on the CPU every layer's basis tape, which forward fills and backward and the
regulariser reuse. Evaluating at a point copies it into the workspace: the network's own
parameters are never written.

The first layer's input is the batch itself, the same rows at every evaluation until other rows
are selected (new_rows()): its tape is kept while the first layer's knots and the input scaling
stay what they were when it was filled (first_tape_current).
"""
import numpy as np


class Workspace:
    def __init__(self, net, n_rows):
        xp, dtype = net.backend.xp, net.np_dtype
        self.n_rows = n_rows
        self.acts = [xp.empty((n_rows, layer.out_dim), dtype=dtype) for layer in net.layers]
        self.dx = [xp.empty((n_rows, layer.in_dim), dtype=dtype) for layer in net.layers]
        self.point = xp.empty(net.num_params, dtype=dtype)
        self.grad = xp.empty(net.num_params, dtype=dtype)
        self.params = net.views(self.point)
        self.grads = net.views(self.grad)
        kernels = net.backend.kernels
        self.tapes = None if net.backend.device != "cpu" else [
            kernels.new_basis_tape(n_rows, layer.in_dim, layer.knots.shape[1], layer.k, dtype)
            for layer in net.layers]
        self._first_key = None

    def load(self, point):
        """Copy the flat parameter vector `point` into the workspace -> its per-layer views."""
        self.point[...] = point
        return self.params

    def tape(self, l):
        """Layer l's basis tape (None off the CPU)."""
        return None if self.tapes is None else self.tapes[l]

    def new_rows(self):
        """The batch changed: the first layer's tape no longer holds it."""
        self._first_key = None

    def first_tape_current(self, net):
        """True when tapes[0] holds the first layer's basis of this batch, so forward may skip
        filling it."""
        return self._first_key is not None and self._first_key == _key_of(net)

    def first_tape_filled(self, net):
        """Record that forward filled tapes[0] for this batch at the network's current knots."""
        if self.tapes is not None:
            self._first_key = _key_of(net)


def _key_of(net):
    """What the first layer's tape depends on besides the rows: its knots and the input map, as
    (shape, dtype, bytes) of each (equal bytes: the same tape; a byte compare is cheaper per call
    than np.array_equal)."""
    shift, scale = net.input_scaling if net.input_scaling is not None else (np.zeros(0), np.zeros(0))
    return tuple((a.shape, a.dtype.str, a.tobytes()) for a in (net.layers[0].knots, shift, scale))
