"""Clients' CPU work first: background sections (the look-ahead's parse, plan and render) wait
while a client's section runs and for a grace period after it, run one at a time, and stop
waiting once a client waits for them (a client joining their flight promotes them)."""

from __future__ import annotations

import sys

import anyio
import pytest

from proxy.cache.memory import SingleFlight
from proxy.workers import BackgroundTurn, ClientsFirst, current_background

pytestmark = pytest.mark.anyio


class FakeTime:
    """A clock that moves only when someone sleeps on it."""

    def __init__(self) -> None:
        self.now = 100.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await anyio.lowlevel.checkpoint()


def lanes(grace: float = 0.0) -> tuple[ClientsFirst, FakeTime]:
    time = FakeTime()
    return ClientsFirst(grace, clock=time.clock, sleep=time.sleep), time


async def settle() -> None:
    """Let every task that can run do so."""
    for _ in range(20):
        await anyio.lowlevel.checkpoint()


async def section(cpu: ClientsFirst, log: list[str], name: str, hold: anyio.Event) -> None:
    async with cpu.turn():
        log.append(f"{name} in")
        await hold.wait()
        log.append(f"{name} out")


async def background_section(
    cpu: ClientsFirst, log: list[str], name: str, hold: anyio.Event
) -> None:
    with cpu.background():
        await section(cpu, log, name, hold)


SECTIONS = {"client": section, "look-ahead": background_section}


@pytest.mark.parametrize(
    ("first", "second", "log"),
    [
        # A background section waits for a client's that runs...
        ("client", "look-ahead", "client 1 in | client 1 out, look-ahead 2 in, look-ahead 2 out"),
        # ...and for another background section: they run one at a time.
        (
            "look-ahead",
            "look-ahead",
            "look-ahead 1 in | look-ahead 1 out, look-ahead 2 in, look-ahead 2 out",
        ),
        # A client's never waits.
        ("look-ahead", "client", "look-ahead 1 in, client 2 in, client 2 out | look-ahead 1 out"),
    ],
)
async def test_who_waits_for_whom(first: str, second: str, log: str) -> None:
    """`first` starts a section and holds it; `second` then starts one that would end at once.
    "|": the test lets `first` go."""
    cpu, _ = lanes()
    seen: list[str] = []
    hold, go = anyio.Event(), anyio.Event()
    go.set()
    async with anyio.create_task_group() as tg:
        tg.start_soon(SECTIONS[first], cpu, seen, f"{first} 1", hold)
        await settle()
        tg.start_soon(SECTIONS[second], cpu, seen, f"{second} 2", go)
        await settle()
        seen.append("|")
        hold.set()
    assert ", ".join(seen).replace(", |, ", " | ") == log


async def test_background_work_starts_only_a_grace_period_after_the_last_client_section() -> None:
    cpu, time = lanes(grace=0.005)
    log: list[str] = []
    done = anyio.Event()
    done.set()
    await section(cpu, log, "client", done)
    ended = time.now
    await background_section(cpu, log, "look-ahead", done)
    assert time.now - ended == pytest.approx(0.005)  # it slept out the rest of the grace
    time.now += 1.0  # long after: no wait
    started = time.now
    await background_section(cpu, log, "look-ahead", done)
    assert time.now == started


async def test_background_sections_that_waited_out_the_grace_together_run_one_at_a_time() -> None:
    cpu, _ = lanes(grace=0.005)
    log: list[str] = []
    done, first, second = anyio.Event(), anyio.Event(), anyio.Event()
    done.set()
    await section(cpu, log, "client", done)
    async with anyio.create_task_group() as tg:
        tg.start_soon(background_section, cpu, log, "a", first)
        tg.start_soon(background_section, cpu, log, "b", second)
        await settle()
        assert [e for e in log if e.endswith(" in")] in (
            ["client in", "a in"],
            ["client in", "b in"],
        )
        first.set()
        second.set()
    assert log[-4:] in (["a in", "a out", "b in", "b out"], ["b in", "b out", "a in", "a out"])


async def test_a_client_waiting_for_background_work_promotes_it() -> None:
    """The look-ahead's flight waits for clients' sections to end; a client that joins the
    flight (and waits for it inside a section of its own) would wait forever, were the flight
    not promoted to a client's."""
    cpu, _ = lanes()
    flights: SingleFlight[str, str] = SingleFlight()
    log: list[str] = []

    async def parse() -> str:
        async with cpu.turn():
            log.append("parsed")
        return "document"

    async def look_ahead() -> None:
        with cpu.background():
            await flights.run("fg-dep", parse)

    got: list[str] = []
    busy = anyio.Event()

    async def client() -> None:
        async with cpu.turn():  # busy with another document meanwhile
            busy.set()
            await settle()
            assert log == []  # the look-ahead's flight waits for it
            got.append(await flights.run("fg-dep", parse))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(client)
            await busy.wait()
            tg.start_soon(look_ahead)
    assert got == ["document"]
    assert log == ["parsed"]


async def test_background_work_joining_background_work_promotes_nothing() -> None:
    cpu, _ = lanes()
    flights: SingleFlight[str, object] = SingleFlight()
    seen: list[object] = []
    release = anyio.Event()

    async def work() -> object:
        turn = current_background()
        await release.wait()
        return turn

    async def look_ahead() -> None:
        with cpu.background():
            seen.append(await flights.run("fg-dep", work))

    async with anyio.create_task_group() as tg:
        tg.start_soon(look_ahead)
        await settle()
        tg.start_soon(look_ahead)
        await settle()
        release.set()
    turn = seen[0]
    assert seen == [turn, turn]
    assert isinstance(turn, BackgroundTurn)
    assert not turn.promoted


async def test_the_gil_is_handed_back_quickly_while_sections_run_and_only_then() -> None:
    usual = sys.getswitchinterval()
    cpu = ClientsFirst(0.0, switch_interval=usual / 5)
    seen: list[float] = []
    first, second = anyio.Event(), anyio.Event()

    async def client(hold: anyio.Event) -> None:
        async with cpu.turn():
            seen.append(sys.getswitchinterval())
            await hold.wait()
        seen.append(sys.getswitchinterval())

    async with anyio.create_task_group() as tg:
        tg.start_soon(client, first)
        await settle()
        tg.start_soon(client, second)
        await settle()
        first.set()  # one still runs: still short
        await settle()
        second.set()
    assert seen == [usual / 5, usual / 5, usual / 5, usual]
    with cpu.background():
        async with cpu.turn():
            assert sys.getswitchinterval() == usual / 5
    assert sys.getswitchinterval() == usual
