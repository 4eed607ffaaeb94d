"""A lock for the CUDA simulator's shared arrays; every simulator run of the tests installs it.

The simulator (numba-cuda 0.30) runs each CUDA thread as a Python thread and hands out
`cuda.shared.array(...)` by looking the calling source line up in a dict and creating the array
when it is missing - without a lock. A thread that loses the GIL between the lookup and the
store (likelier the busier the machine) creates an array of its own: it then writes where no
other thread reads and reads uninitialised memory. In our kernels that memory holds staged
span rows, so the symptom is an IndexError on a coefficient read (seen once in
`backward_dx_kernel` with three test processes on two cores). Real hardware has no such race.

    import cudasim_shared; cudasim_shared.install()   # in the simulator process, before launches
"""
import pathlib
import sys
import threading
import traceback

# the first line of a simulator script run with `python -c` by a test
PRELUDE = (f"import sys; sys.path.insert(0, {str(pathlib.Path(__file__).parent)!r}); "
           "import cudasim_shared; cudasim_shared.install()\n")
_LOCK = threading.Lock()


def install():
    """Replace FakeCUDAShared.array by one that looks up and creates under one lock (in a
    process started with NUMBA_ENABLE_CUDASIM=1). Fails loudly if the simulator has changed."""
    import numpy as np
    from numba import types
    from numba.cuda.simulator import kernelapi
    from numba.np import numpy_support

    shared = kernelapi.FakeCUDAShared
    if not hasattr(shared(0), "_allocations"):
        raise RuntimeError("numba's CUDA simulator changed: FakeCUDAShared has no _allocations; "
                           "check whether tests/cudasim_shared.py is still needed")
    unlocked = shared.array

    def locked_array(self, shape, dtype, alignment=None):
        if shape == 0 or alignment is not None:  # dynamic shared memory: no lookup to race
            return unlocked(self, shape, dtype, alignment)
        caller = traceback.extract_stack(sys._getframe())[-2][0:2]  # the kernel's source line
        if isinstance(dtype, types.Type):
            dtype = numpy_support.as_dtype(dtype)
        with _LOCK:
            array = self._allocations.get(caller)
            if array is None:
                array = self._allocations[caller] = np.empty(shape, dtype)
        return array

    shared.array = locked_array
