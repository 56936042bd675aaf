"""The service's worker processes: started, replaced when they die, stopped with a deadline.

They are told to stop through a pipe whose writing end only the daemon holds: closing it
reaches every worker at once, and no worker killed at the wrong moment can leave a lock
held that the others, or the daemon's shutdown, would wait on for ever (as a
multiprocessing Event's condition lock can). The same pipe reads as closed when the daemon
is gone, which is one of the ways a worker knows to die with it (`liveness.py`).
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from multiprocessing.context import SpawnProcess

import structlog

from privmask.daemon.config import Config
from privmask.daemon.delivery import Custody
from privmask.daemon.storage import Storage
from privmask.daemon.worker import claim_name, worker_main

log = structlog.get_logger("privmask.service")


class WorkerPool:
    def __init__(
        self,
        config: Config,
        password: bytes,
        custody: Custody,
        run: str,
        count: int,
        storage: Storage,
    ) -> None:
        self._config, self._password, self._run = config, password, run
        self._custody = custody
        self._storage = storage
        self._context = multiprocessing.get_context("spawn")
        self._stop_reader, self._stop_writer = self._context.Pipe(duplex=False)
        self.processes = [self._start(index) for index in range(count)]

    def _start(self, index: int) -> SpawnProcess:
        # a worker asks for SIGKILL when the *thread* that started it ends (PR_SET_PDEATHSIG):
        # only the main thread lives as long as the daemon
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("workers are started from the main thread only")
        process = self._context.Process(
            target=worker_main,
            args=(
                self._config,
                self._password,
                self._custody,
                f"w{index}",
                self._run,
                os.getpid(),
                self._stop_reader,
                self._storage,
            ),
            name=f"privmask-worker-{index}",
            daemon=False,
        )
        process.start()
        return process

    def by_claim(self) -> dict[str, SpawnProcess]:
        """The live processes, by the name they sign their journal claims with."""
        return {
            claim_name(p.pid, f"w{i}"): p for i, p in enumerate(self.processes) if p.pid is not None
        }

    def replace_dead(self) -> list[str]:
        """Start a new worker for each that died; returns the claim names of the dead."""
        dead = []
        for index, process in enumerate(self.processes):
            if not process.is_alive():
                log.error("worker_died", worker=index, exit_code=process.exitcode)
                dead.append(claim_name(process.pid or 0, f"w{index}"))
                self.processes[index] = self._start(index)
        return dead

    def kill(self) -> None:
        for process in self.processes:
            process.kill()

    def stop(self, seconds: float) -> None:
        """Let running jobs finish for up to `seconds`; then interrupt, and at last kill,
        whatever state each worker is in (idle, working, hung or stopped)."""
        self._stop_writer.close()
        deadline = time.monotonic() + seconds
        for process in self.processes:
            process.join(max(0.0, deadline - time.monotonic()))
        for process in self.processes:
            if process.is_alive():
                log.warning("worker_interrupted", pid=process.pid)
                process.terminate()  # SIGTERM: it unwinds and removes its temporary files
                process.join(10)
            if process.is_alive():  # hung in a system call, or stopped
                process.kill()
                process.join(10)
