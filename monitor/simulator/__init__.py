"""A fake of the Claude organization upstream, for tests, benchmarks and `monitor demo`.

Build a `Simulator`, add orgs and accounts, then serve `simulator_app(sim)` with aiohttp.
"""

from monitor.simulator.app import simulator_app
from monitor.simulator.demo import DemoCredentials, DemoOrg, RenewedOrg, demo_simulator
from monitor.simulator.errors import ApiError
from monitor.simulator.faults import CLOUDFLARE_HTML, GLOBAL, Fault, FaultError
from monitor.simulator.model import IssuedToken, SimAccount, SimOrg, SimProject
from monitor.simulator.renewer import renew_forever, renew_once, write_claude_credentials
from monitor.simulator.shapes import SHAPES, Shape
from monitor.simulator.simulator import ISSUED_TOKEN_PREFIX, RecordedRequest, Simulator
from monitor.simulator.windows import ExtraSpec, WindowSpec

__all__ = [
    "CLOUDFLARE_HTML",
    "GLOBAL",
    "ISSUED_TOKEN_PREFIX",
    "SHAPES",
    "ApiError",
    "DemoCredentials",
    "DemoOrg",
    "ExtraSpec",
    "Fault",
    "FaultError",
    "IssuedToken",
    "RecordedRequest",
    "RenewedOrg",
    "Shape",
    "SimAccount",
    "SimOrg",
    "SimProject",
    "Simulator",
    "WindowSpec",
    "demo_simulator",
    "renew_forever",
    "renew_once",
    "simulator_app",
    "write_claude_credentials",
]
