"""The seed's tools served over MCP stdio: `fetch_customer_data` (the seed's function, which raises `ValueError`
for `None`) and `lookup_invoice`, on an `MCPServer`. `test_mcp.py` runs it as the subprocess of the client's stdio
transport.

Traced when the environment asks (`OTEL_TRACES_EXPORTER`, as `opentelemetry-instrument` would be): then agentotel
is set up here too and exports this process's spans (MCP's `tools/call` server spans, which join the client's trace
through the `_meta` trace context) beside the client's.

A tool failure the server expects reaches the client as an `isError` result with its text only when it is raised
as MCP's `ToolError`; any other exception is a crash, of which the client sees only `Error executing tool <name>`.
So the seed's `ValueError` is raised again as a `ToolError` (the original stays its `__cause__`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: the repository's `tests` package

if os.environ.get("OTEL_TRACES_EXPORTER"):
    import agentotel

    agentotel.init(service_name=os.environ.get("OTEL_SERVICE_NAME", "support-mcp-server"))

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from tests.frameworks import support

server = MCPServer("support")


@server.tool(name=support.FETCH_TOOL, description="The customer's record.")
def fetch_customer_data(customer_id: str | None) -> dict[str, Any]:
    try:
        return support.fetch_customer_data(customer_id)
    except ValueError as error:
        raise ToolError(str(error)) from error


@server.tool(name=support.INVOICE_TOOL, description="The customer's invoices.")
def lookup_invoice(customer_id: str) -> dict[str, Any]:
    return support.lookup_invoice(customer_id)


if __name__ == "__main__":
    server.run("stdio")
