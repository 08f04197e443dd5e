"""Where independent tasks run: in this process, in local processes or as Ray tasks, with results in task order.

The heavy commands (`rank`, `evaluate`, `finetune`) hand one function and a list of items to
`make_executor(...).map`, or `.imap` to handle each result as soon as it (and every earlier one) is done.
A task must not share random state with another: every item carries what it needs (its seed included), so the
results are the same whichever executor runs them. Only the standard library is imported here (the CLI builds
its parsers from this module); Ray loads when a Ray executor is made.

The default is `local` (the cores this process may use, no Ray), or what `RECOMMENDER_EXECUTOR` names; with one
core, or one task, `local` runs in this process, so a small job never pays for starting workers.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from recommender.errors import UserError

KINDS = ("serial", "local", "ray")
DEFAULT_VARIABLE = "RECOMMENDER_EXECUTOR"
RAY_MISSING = "the ray executor needs Ray: pip install 'recommender[ray]'"


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def ray_installed() -> bool:
    """Whether Ray can be imported here (without importing it)."""
    import importlib.util

    return importlib.util.find_spec("ray") is not None


THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def thread_environment() -> dict[str, str]:
    """This process's BLAS/OpenMP thread counts (as set, else the cores available, the libraries' default), for the
    workers. A BLAS result can change in its last bits with the thread count (a ridge fit moved by 1e-15 with 1
    thread instead of 2), so workers use the parent's count, not a share of the cores (Ray's default is 1): the
    numbers stay the serial ones bit for bit, at the price of oversubscribed cores while tasks compute in BLAS."""
    default = os.environ.get("OMP_NUM_THREADS", str(available_cores()))
    return {name: os.environ.get(name, default) for name in THREAD_VARIABLES}


def _set_environment(variables: dict[str, str]) -> None:
    """Worker initializer: set variables before numpy or torch is imported in the fresh process."""
    os.environ.update(variables)


@dataclass(frozen=True)
class SerialExecutor:
    """Every task in this process, one after the other."""

    def imap(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator:
        """fn(item) for each item, lazily, in item order."""
        return (fn(item) for item in items)

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> list:
        """[fn(item) for item in items]."""
        return list(self.imap(fn, items))


@dataclass(frozen=True)
class LocalExecutor:
    """Tasks in a pool of ``workers`` fresh (spawned) processes on this machine: fn and the items must be picklable
    (fn a module-level function). Spawned, not forked, as torch and BLAS threads do not survive a fork."""

    workers: int

    def imap(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator:
        """fn over the items in the pool, each result yielded once it and every earlier one are done (item order);
        the first task error raised as is. One worker's worth of work runs in this process (no start-up cost)."""
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        items = list(items)
        if min(self.workers, len(items)) <= 1:
            yield from SerialExecutor().imap(fn, items)
            return
        with ProcessPoolExecutor(min(self.workers, len(items)), mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_set_environment, initargs=(thread_environment(),)) as pool:
            yield from pool.map(fn, items)

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> list:
        """fn over the items in the pool; results in item order, the first task error raised as is."""
        return list(self.imap(fn, items))


def _call(fn: Callable[[Any], Any], item: Any) -> Any:
    """fn(item): the one Ray remote function, so that any callable (a builtin too) can be the task."""
    return fn(item)


# An HTTP/2 client's first bytes (RFC 9113 3.4), then an empty SETTINGS frame: Ray's servers speak gRPC, which is
# HTTP/2, and answer with a SETTINGS frame of their own; a server that is not Ray answers otherwise or not at all.
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
SETTINGS_FRAME = 4


def check_address(address: str, timeout: float = 3.0) -> None:
    """Refuse, in one line, an --address that is not HOST:PORT, ray://HOST:PORT or auto, where nothing listens, or
    where the server does not answer as Ray's gRPC servers do within `timeout` seconds (ray.init would wait on such
    a server for ever)."""
    import socket

    if address == "auto":
        return  # Ray's to resolve ($RAY_ADDRESS, or the cluster `ray start` left on this machine)
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"--address {address}: expected HOST:PORT (as `ray start --head` prints), "
                        "ray://HOST:PORT or auto")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout) as conn:
            if os.environ.get("RAY_USE_TLS", "0").lower() in ("0", "false", ""):  # TLS: no plain handshake to try
                conn.sendall(HTTP2_PREFACE)
                head = b""
                while len(head) < 9 and (chunk := conn.recv(9 - len(head))):
                    head += chunk
                if len(head) < 9 or head[3] != SETTINGS_FRAME:
                    raise UserError(f"--address {address}: the server there is not Ray (it does not answer gRPC)")
    except TimeoutError:
        raise UserError(f"--address {address}: no Ray cluster answered there within {timeout:g} s") from None
    except OSError as exc:
        raise UserError(f"--address {address}: no Ray cluster answers there ({exc.strerror or exc})") from None


@dataclass(frozen=True)
class RayExecutor:
    """Tasks as Ray tasks (one CPU each) on the cluster that `ray.init` joined: ``address`` (e.g. `ray://host:10001`
    or `host:6379`, as `ray start --head` prints) or a local one of ``workers`` CPUs started on first use."""

    address: str | None = None
    workers: int | None = None

    def __post_init__(self) -> None:
        try:
            import ray
        except ImportError:
            raise UserError(RAY_MISSING) from None
        if not ray.is_initialized():  # an earlier executor in this process already joined a cluster: reuse it
            if self.address:
                check_address(self.address)
                try:
                    # Ray annotates logging_level as int, though its own default is the string "info"
                    ray.init(address=self.address, logging_level="warning")  # type: ignore[arg-type]
                except ConnectionError as exc:
                    raise UserError(f"--address {self.address}: no Ray cluster answers there ({exc})") from None
            else:
                # "local": a new Ray of its own, never one that `ray start` left running on this machine
                ray.init(address="local", num_cpus=self.workers or available_cores(), include_dashboard=False,
                         logging_level="warning")  # type: ignore[arg-type]  # as above: Ray's int annotation

    def imap(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator:
        """fn over the items as Ray tasks (all submitted at once), each result yielded once it and every earlier one
        are done (item order); a task's own error re-raised without Ray's wrapper. The other tasks are not cancelled:
        `ray.cancel` on tasks that are finishing aborts the driver process in Ray 2.x ("Tried to complete task that
        was not pending"), which would lose the error; a local Ray stops with the command, and on a cluster they run
        to their end and their results are dropped."""
        import ray
        from ray.exceptions import RayTaskError

        task = ray.remote(num_cpus=1, max_retries=0, runtime_env={"env_vars": thread_environment()})(_call)
        shared = ray.put(fn)  # fn with what it binds (a dataset) goes into the object store once, not once per task
        refs = [task.remote(shared, item) for item in items]
        try:
            for ref in refs:
                yield ray.get(ref)
        except RayTaskError as exc:
            raise exc.cause from None

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> list:
        """fn over the items as Ray tasks; results in item order, a task's own error re-raised without Ray's wrapper."""
        return list(self.imap(fn, items))


Executor = SerialExecutor | LocalExecutor | RayExecutor


def default_kind() -> str:
    """The executor used when none is asked for: `RECOMMENDER_EXECUTOR` if set, else "local"."""
    return os.environ.get(DEFAULT_VARIABLE, "").strip() or "local"


def make_executor(kind: str | None = None, address: str | None = None, workers: int | None = None) -> Executor:
    """The executor named ``kind`` (default: `default_kind()`): "serial", "local" (``workers`` processes, default:
    the cores available) or "ray" (joins ``address``, else starts a local Ray of ``workers`` CPUs). ``address``
    needs "ray"."""
    if kind is None:
        kind = default_kind()
        if kind not in KINDS:
            raise UserError(f"{DEFAULT_VARIABLE}={kind}: unknown executor; choose from {', '.join(KINDS)}")
    if kind not in KINDS:
        raise UserError(f"unknown executor {kind!r}: choose from {', '.join(KINDS)}")
    if workers is not None and workers < 1:
        raise UserError(f"--workers must be >= 1, got {workers}")
    if address and kind != "ray":
        raise UserError(f"--address joins a Ray cluster: add --executor ray (not {kind})")
    if kind == "serial":
        return SerialExecutor()
    if kind == "local":
        return LocalExecutor(workers or available_cores())
    return RayExecutor(address, workers)


def add_executor_arguments(parser: argparse.ArgumentParser, task: str) -> None:
    """--executor, --workers and --address on a command whose ``task`` (e.g. "one model") runs as a unit."""
    parser.add_argument("--executor", choices=KINDS, default=None,
                        help=f"where each task ({task}) runs: serial (this process), local (processes on the cores "
                             "available; in this process when one core or one task) or ray (a Ray cluster; pip "
                             f"install 'recommender[ray]'); results are the same (default: ${DEFAULT_VARIABLE}, else "
                             "local)")
    parser.add_argument("--workers", type=int, default=None,
                        help="processes (local) or CPUs of a Ray started here (default: the cores available)")
    parser.add_argument("--address", default=None,
                        help="join this Ray cluster (as `ray start --head` prints, e.g. 10.0.0.1:6379) instead of "
                             "starting one; needs --executor ray")


def executor_from_args(args: argparse.Namespace) -> Executor:
    """The executor the command's --executor, --workers and --address ask for."""
    return make_executor(args.executor, args.address, args.workers)
