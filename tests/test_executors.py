"""recommender.executors: every executor gives the serial results in item order, and a task's error as itself.

Task functions come from the standard library or the package: spawned processes and Ray workers import them by
name, and neither need find this test module."""

from __future__ import annotations

import json
import math
import os
import sys

import pytest

from recommender.errors import UserError
from recommender.executors import (
    THREAD_VARIABLES,
    SerialExecutor,
    available_cores,
    make_executor,
    ray_installed,
    thread_environment,
)

needs_ray = pytest.mark.skipif(not ray_installed(), reason="ray is not installed (pip install 'recommender[ray]')")

# large then small: a pool that returned results as they finish would put the small ones first
ITEMS = [30_000, 20_000, 5, 0, 10_000, 7]


# Ray runs in a process of its own (conftest's `isolated`): each call starts a local Ray of 2 CPUs, maps the task
# over the items and prints the results as JSON (integers in hex, which has no digit limit), or a task error's type
# and message
RAY_MAP = """
import importlib, json, sys
from recommender.executors import make_executor
module, name = sys.argv[1].split(":")
fn, items = getattr(importlib.import_module(module), name), json.loads(sys.argv[2])
try:
    print(json.dumps([hex(r) if type(r) is int else r for r in make_executor("ray", workers=2).map(fn, items)]))
except Exception as exc:
    print(json.dumps({"error": type(exc).__module__ + "." + type(exc).__name__, "message": str(exc)}))
"""


def ray_map(isolated, fn: str, items: list) -> object:
    """``fn`` (module:name) over the items on a local Ray in a fresh process: the results, or the error as a dict."""
    done = isolated(RAY_MAP, fn, json.dumps(items))
    assert done.code == 0, done.err
    return json.loads(done.out.splitlines()[-1])


def getpid_of(_: object) -> int:
    """The id of the process a task runs in (module level: spawned workers import it)."""
    return os.getpid()


def test_serial_is_a_plain_loop() -> None:
    assert make_executor("serial").map(math.factorial, ITEMS) == [math.factorial(i) for i in ITEMS]


def test_local_processes_keep_item_order() -> None:
    assert make_executor("local", workers=2).map(math.factorial, ITEMS) == [math.factorial(i) for i in ITEMS]
    assert make_executor("local", workers=2).map(math.factorial, []) == []


def test_local_workers_use_the_parents_blas_threads() -> None:
    # a BLAS result may move in its last bit with the thread count
    executor = make_executor("local", workers=2)
    assert executor.map(os.getenv, THREAD_VARIABLES) == [thread_environment()[v] for v in THREAD_VARIABLES]


def test_local_task_error_is_raised_as_itself() -> None:
    # make_executor itself is the task: "bogus" makes it raise the package's UserError inside the worker
    with pytest.raises(UserError, match="unknown executor 'bogus'"):
        make_executor("local", workers=2).map(make_executor, ["serial", "bogus"])


def test_default_is_local_unless_the_environment_names_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECOMMENDER_EXECUTOR", raising=False)
    assert make_executor() == make_executor("local")
    monkeypatch.setenv("RECOMMENDER_EXECUTOR", "serial")
    assert make_executor() == SerialExecutor()
    monkeypatch.setenv("RECOMMENDER_EXECUTOR", "threads")
    with pytest.raises(UserError, match="RECOMMENDER_EXECUTOR=threads: unknown executor; choose from serial, local"):
        make_executor()


def test_local_runs_one_workers_worth_in_this_process() -> None:
    # one task, or one worker: no process is started, the task sees this process's id
    assert make_executor("local", workers=4).map(getpid_of, [0]) == [os.getpid()]
    assert make_executor("local", workers=1).map(getpid_of, [0, 1]) == [os.getpid()] * 2
    assert os.getpid() not in make_executor("local", workers=2).map(getpid_of, [0, 1])


@pytest.mark.parametrize("kind", ["serial", "local"])
def test_imap_yields_each_result_in_item_order(kind: str) -> None:
    results = make_executor(kind, workers=2).imap(math.factorial, ITEMS)
    assert next(results) == math.factorial(ITEMS[0])  # available before the rest is consumed
    assert list(results) == [math.factorial(i) for i in ITEMS[1:]]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"kind": "threads"}, "unknown executor 'threads': choose from serial, local, ray"),
    ({"kind": "local", "workers": 0}, "--workers must be >= 1, got 0"),
    ({"kind": "local", "address": "10.0.0.1:6379"}, "--address joins a Ray cluster: add --executor ray"),
])
def test_bad_settings_are_one_line(kwargs: dict, message: str) -> None:
    with pytest.raises(UserError, match=message.replace("(", r"\(")):
        make_executor(**kwargs)


def test_ray_missing_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now fails as if it were not installed
    with pytest.raises(UserError, match=r"pip install 'recommender\[ray\]'"):
        make_executor("ray")


@needs_ray
@pytest.mark.exclusive("ray")
@pytest.mark.slow
def test_ray_keeps_item_order(isolated) -> None:
    assert ray_map(isolated, "math:factorial", ITEMS) == [hex(math.factorial(i)) for i in ITEMS]


@needs_ray
@pytest.mark.exclusive("ray")
@pytest.mark.slow
def test_ray_task_error_is_raised_as_itself(isolated) -> None:
    # not Ray's wrapper, whose message holds the remote traceback
    assert ray_map(isolated, "recommender.executors:make_executor", ["serial", "bogus"]) == {
        "error": "recommender.errors.UserError",
        "message": "unknown executor 'bogus': choose from serial, local, ray"}


@needs_ray
@pytest.mark.exclusive("ray")
@pytest.mark.slow
def test_ray_workers_use_the_parents_blas_threads(isolated) -> None:
    # a BLAS result may move in its last bit with the thread count: workers must not take Ray's default of 1
    assert ray_map(isolated, "os:getenv", list(THREAD_VARIABLES)) == [thread_environment()[v]
                                                                      for v in THREAD_VARIABLES]
    assert thread_environment()["OPENBLAS_NUM_THREADS"] == os.environ.get("OPENBLAS_NUM_THREADS",
                                                                          os.environ.get("OMP_NUM_THREADS",
                                                                                         str(available_cores())))


@needs_ray
def test_ray_bad_address_is_one_line() -> None:
    import ray

    ray.shutdown()  # joining happens only when no cluster is joined yet
    try:
        with pytest.raises(UserError, match="--address 127.0.0.1:1: no Ray cluster answers there"):
            make_executor("ray", address="127.0.0.1:1")
    finally:
        ray.shutdown()
