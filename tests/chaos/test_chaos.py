"""Chaos (Q2): under a steady signal load, one fault at a time; after each, every signal has
exactly one terminal outcome, the venue has no duplicate order, the ledger holds exactly the
venue's fills and the stream lost nothing.

`make test` runs the short version (a kill -9 of the gateway and a nats-server restart);
`make chaos` runs every scenario and prints the table (TRADEBUS_CHAOS=full).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from tradebus_common.cli.services import SERVICE_NAMES

from .harness import ChaosStack, Load, Verdict, set_price, table, verify

pytestmark = pytest.mark.e2e
FULL = os.environ.get("TRADEBUS_CHAOS") == "full"
RATE = 20.0  # signals/s: steady, well inside what the pipeline sustains on 2 cores
WARM, AFTER = (40, 60) if FULL else (20, 30)  # signals before the fault, and after it
ACK_WAIT_S = 5  # tests/support/procs.py write_config

Fault = Callable[[ChaosStack], Awaitable[None]]


def _kill9(name: str) -> Fault:
    async def fault(stack: ChaosStack) -> None:
        await stack.kill9_and_restart(name)

    return fault


async def _restart_nats(stack: ChaosStack) -> None:
    stack.restart_nats()


async def _restart_postgres(stack: ChaosStack) -> None:
    stack.restart_postgres()


async def _pause_gateway(stack: ChaosStack) -> None:
    await stack.pause("execution-gateway", ACK_WAIT_S + 2)


async def _venue_faults(stack: ChaosStack) -> None:
    """Through the exchange emulator, on the binance (ccxt) load: 5xx on create (ambiguous:
    UNKNOWN, resolved by client id), 429 with Retry-After, and creates that are placed but
    whose answer never comes."""
    emu = stack.emulator
    assert emu is not None
    emu.fail_next("create", 503, count=2)
    emu.fail_next("create", 429, count=1, retry_after_s=1)
    emu.accept_then_hang(count=2)


SCENARIOS: dict[str, Fault] = {
    **{f"kill -9 {name}": _kill9(name) for name in SERVICE_NAMES},
    "restart nats-server": _restart_nats,
    "restart postgresql": _restart_postgres,
    "SIGSTOP gateway past ack_wait": _pause_gateway,
    "venue faults (emulator)": _venue_faults,
}
VENUE = {"venue faults (emulator)": "binance"}  # scenarios whose load goes elsewhere than paper
QUICK = ("kill -9 execution-gateway", "restart nats-server", "venue faults (emulator)")
VERDICTS: list[Verdict] = []


@pytest.fixture(scope="module")
async def chaos_stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ChaosStack]:
    stack = ChaosStack(Path(tmp_path_factory.mktemp("chaos")))
    await stack.start()
    await set_price(stack.url)
    yield stack
    await stack.stop()
    if VERDICTS:
        print("\n" + table(VERDICTS))


@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if FULL or s in QUICK])
async def test_nothing_lost_or_doubled_under(scenario: str, chaos_stack: ChaosStack) -> None:
    prefix = scenario.replace(" ", "_").replace("-", "")
    async with Load(chaos_stack.url, prefix, RATE, VENUE.get(scenario, "paper")) as load:
        await load.reached(WARM)
        fault_at = load.mark_fault()
        await SCENARIOS[scenario](chaos_stack)
        await chaos_stack.healthy(list(SERVICE_NAMES))
        await load.reached(AFTER)
        await load.recovered()
    verdict = await verify(chaos_stack, scenario, load, fault_at)
    VERDICTS.append(verdict)
    assert not verdict.problems, "\n".join(verdict.problems[:20])
    assert verdict.lost == 0 and verdict.duplicates == 0
    assert verdict.recover_s is not None, "no signal sent after the fault completed"
