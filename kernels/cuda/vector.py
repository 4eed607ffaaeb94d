"""Vector loads and stores for the kernels: load4/load2/store4 (LLVM intrinsics on a GPU, plain
Python with the same alignment checks under the simulator)."""
from numba import config as _numba_config
from numba import types


def vector_alignment(width, itemsize):
    """Bytes of alignment a vector load of `width` elements needs: its size, at most 16 (the
    widest load is 128 bits; a float64 load4 is two of them)."""
    return min(16, width * itemsize)


def _load4_python(a, offset):
    """The simulator's load4: four elements, and the alignment the GPU's vector load needs."""
    assert offset % 4 == 0, f"load4 at offset {offset}: not a multiple of 4 elements"
    return a[offset], a[offset + 1], a[offset + 2], a[offset + 3]


def _load2_python(a, offset):
    assert offset % 2 == 0, f"load2 at offset {offset}: not a multiple of 2 elements"
    return a[offset], a[offset + 1]


def _load_intrinsic(width):
    """load4(a, offset) -> a[offset:offset+4] as one vector load (LDG.E.128; two for float64);
    load2 likewise for two elements.

    The compiler cannot merge four scalar loads of a kernel argument by itself: it does not know
    the array's alignment. Here the load promises 4-element alignment: `offset` must be a
    multiple of 4 and the array's data aligned to vector_alignment (16 bytes; the arrays the
    kernels read this way are allocated here, and _padded_outputs copies a gradient that is not
    aligned) - every caller's offsets are multiples of RO = 4 by construction.
    """
    from llvmlite import ir
    from numba.cuda.extending import intrinsic

    @intrinsic
    def load(typingctx, a, offset):
        sig = types.UniTuple(a.dtype, width)(a, offset)

        def codegen(context, builder, signature, args):
            array = context.make_array(signature.args[0])(context, builder, args[0])
            element = context.get_value_type(signature.args[0].dtype)
            vector = ir.VectorType(element, width)
            pointer = builder.bitcast(builder.gep(array.data, [args[1]], inbounds=True),
                                      vector.as_pointer())
            itemsize = signature.args[0].dtype.bitwidth // 8
            loaded = builder.load(pointer, align=vector_alignment(width, itemsize))
            parts = [builder.extract_element(loaded, ir.Constant(ir.IntType(32), j))
                     for j in range(width)]
            return context.make_tuple(builder, signature.return_type, parts)

        return sig, codegen

    return load


def _store4_python(a, offset, v0, v1, v2, v3):
    assert offset % 4 == 0, f"store4 at offset {offset}: not a multiple of 4 elements"
    a[offset], a[offset + 1], a[offset + 2], a[offset + 3] = v0, v1, v2, v3


def _store4_intrinsic():
    """store4(a, offset, v0, v1, v2, v3): a[offset:offset+4] = v as one vector store, with
    load4's alignment contract."""
    from llvmlite import ir
    from numba.cuda.extending import intrinsic

    @intrinsic
    def store4(typingctx, a, offset, v0, v1, v2, v3):
        sig = types.void(a, offset, a.dtype, a.dtype, a.dtype, a.dtype)

        def codegen(context, builder, signature, args):
            array = context.make_array(signature.args[0])(context, builder, args[0])
            element = context.get_value_type(signature.args[0].dtype)
            vector = ir.Constant(ir.VectorType(element, 4), ir.Undefined)
            for j, value in enumerate(args[2:]):
                vector = builder.insert_element(vector, value, ir.Constant(ir.IntType(32), j))
            pointer = builder.bitcast(builder.gep(array.data, [args[1]], inbounds=True),
                                      vector.type.as_pointer())
            itemsize = signature.args[0].dtype.bitwidth // 8
            builder.store(vector, pointer, align=vector_alignment(4, itemsize))
            return context.get_dummy_value()

        return sig, codegen

    return store4



load4 = _load4_python if _numba_config.ENABLE_CUDASIM else _load_intrinsic(4)
load2 = _load2_python if _numba_config.ENABLE_CUDASIM else _load_intrinsic(2)
store4 = _store4_python if _numba_config.ENABLE_CUDASIM else _store4_intrinsic()
