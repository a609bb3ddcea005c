"""`agentotel demo`: the AgentOps testing guide's support agent, run against a model server on loopback and
recorded in the embedded store. `support_agent` is importable by tests and examples."""

from .runner import MESSAGES, DemoRun, run_demo

__all__ = ["MESSAGES", "DemoRun", "run_demo"]
