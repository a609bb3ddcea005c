"""The content encoder never runs the app's code and never pays for more than it keeps (issue 13, item 7): with
content capture on, a `Mock` argument took 11 s, a `MagicMock` 27-70 s, an xmlrpc `ServerProxy` argument sent a
real `model_dump` RPC to the app's server, and a million-key dict cost seconds per call though only 16 KB is kept."""

from __future__ import annotations

import threading
import xmlrpc.client
import xmlrpc.server
from typing import Any

import agentotel
from agentotel.testing import capture


def test_to_json_converts_only_real_models_and_dataclasses() -> None:
    """Issue 13, item 7: no method of the app's objects is called but a pydantic model's `model_dump` and a
    dataclass's fields: a `Mock` (which answers any attribute) and a remote proxy are written by their repr."""
    import dataclasses
    from unittest import mock

    import pydantic

    from agentotel._content import to_json

    class Account(pydantic.BaseModel):
        id: int

    @dataclasses.dataclass
    class Order:
        id: int
        lines: list[str]

    class DuckTyped:
        called = False

        def model_dump(self) -> dict[str, Any]:
            DuckTyped.called = True
            return {}

        def __repr__(self) -> str:
            return "<duck>"

    assert to_json(Account(id=1), 100) == ('{"id":1}', False)
    assert to_json(Order(2, ["a"]), 100) == ('{"id":2,"lines":["a"]}', False)
    assert to_json(DuckTyped(), 100) == ('"<duck>"', False) and not DuckTyped.called
    text, cut = to_json({"arg": mock.MagicMock()}, 100)
    assert text.startswith('{"arg":"<MagicMock id=') and not cut


def test_to_json_cuts_a_huge_value_before_encoding_it() -> None:
    """A million-key dict, or a million-item list inside the arguments: cut to the limit first (only what is kept
    is converted: counted by the objects' reprs), marked as cut."""
    from agentotel._content import to_json

    class Counted:
        made = 0

        def __repr__(self) -> str:
            Counted.made += 1
            return "c"

    item = Counted()
    for value in ({f"k{i}": item for i in range(1_000_000)}, {"rows": [item] * 1_000_000}):
        Counted.made = 0
        text, cut = to_json(value, 16_384)
        assert cut and len(text) <= 16_384
        assert Counted.made < 20_000, f"{Counted.made} items converted to keep 16 KB"
    assert to_json({f"k{i}": i for i in range(100_000)}, 64)[0].startswith('{"k0":0,"k1":1,')


def test_a_remote_proxy_argument_sends_no_call_to_its_server() -> None:
    """An xmlrpc `ServerProxy` answers every attribute with a remote method: recording it must not call one."""
    calls: list[str] = []
    server = xmlrpc.server.SimpleXMLRPCServer(("127.0.0.1", 0), logRequests=False, allow_none=True)
    server.register_function(lambda *a: calls.append("model_dump") or {}, "model_dump")
    server.register_function(lambda *a: calls.append("to_dict") or {}, "to_dict")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        proxy = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{server.server_address[1]}", allow_none=True)

        @agentotel.tool
        def sync_accounts(client: Any) -> str:
            return "ok"

        with capture(capture_content=True) as cap, agentotel.session("proxy"):
            assert sync_accounts(proxy) == "ok"
        (step,) = cap.session("proxy").tool_calls
        assert str(step.params["client"]).startswith("<ServerProxy for 127.0.0.1:")
        assert calls == [], f"the tool's argument was called remotely: {calls}"
    finally:
        server.shutdown()
        server.server_close()
