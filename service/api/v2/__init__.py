"""The Open Inference Protocol (KServe V2) REST adapter, with Triton's binary tensor data.

`endpoints` holds the routes, `inference` runs one request through the data plane, `codec` turns
bytes into tensors and back, `outputs` names the output tensors of each mode (see its docstring
for the full list), `metadata` answers the metadata endpoints and `schemas` are the bodies.
"""

from service.api.v2.endpoints import router

__all__ = ["router"]
