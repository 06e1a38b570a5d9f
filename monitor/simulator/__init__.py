"""A fake of the Claude organization upstream, for tests, benchmarks and `monitor demo`.

Build a `Simulator`, add orgs and accounts, then serve `simulator_app(sim)` with aiohttp.
"""

from monitor.simulator.app import simulator_app
from monitor.simulator.demo import DemoCredentials, DemoOrg, demo_simulator
from monitor.simulator.errors import ApiError
from monitor.simulator.faults import CLOUDFLARE_HTML, GLOBAL, Fault, FaultError
from monitor.simulator.model import SimAccount, SimOrg, SimProject
from monitor.simulator.shapes import SHAPES, Shape
from monitor.simulator.simulator import RecordedRequest, Simulator
from monitor.simulator.windows import ExtraSpec, WindowSpec

__all__ = [
    "CLOUDFLARE_HTML",
    "GLOBAL",
    "SHAPES",
    "ApiError",
    "DemoCredentials",
    "DemoOrg",
    "ExtraSpec",
    "Fault",
    "FaultError",
    "RecordedRequest",
    "Shape",
    "SimAccount",
    "SimOrg",
    "SimProject",
    "Simulator",
    "WindowSpec",
    "demo_simulator",
    "simulator_app",
]
